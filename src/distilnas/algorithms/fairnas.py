"""FairNAS with strict fairness (Chu et al., ICCV 2021, sec. 3.2 and Alg. 1).

Each step draws, for every choice, an independent random permutation of its options and builds m paths,
path k taking the k-th option of every permutation, where m is the number of options: every op of every
edge is trained exactly once per step. The m paths see the same batch; their gradients are accumulated
and the supernet takes one optimiser step. A step therefore costs m forward/backward passes, which is
what the compute budget counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import ALGORITHMS, Algorithm, StepOutput, path_rng

__all__ = ["FairNAS", "fair_paths"]


def fair_paths(choices: dict[str, tuple], rng) -> list[dict[str, object]]:
    """m = |options| paths such that every option of every choice appears in exactly one path."""
    sizes = {len(opts) for opts in choices.values()}
    if len(sizes) != 1:
        raise ValueError("strict fairness needs every choice to have the same number of options")
    m = sizes.pop()
    perms = {label: rng.sample(list(opts), m) for label, opts in choices.items()}
    return [{label: perms[label][k] for label in choices} for k in range(m)]


@ALGORITHMS.register("fairnas")
class FairNAS(Algorithm):
    name = "fairnas"

    @dataclass
    class Config:
        pass

    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int, num_epochs: int) -> StepOutput:
        paths = fair_paths(self.space.choices, path_rng(self.seed, step))
        total, correct = 0.0, 0
        for sample in paths:
            arch = self.space.from_choices(sample)
            logits = self.supernet(x, arch)
            loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
            loss.backward()  # gradients accumulate over the m paths (Alg. 1, line 9)
            total += loss.item()
            correct += int((logits.argmax(1) == y).sum())
        m = len(paths)
        return StepOutput(total / m, correct, m * len(y), passes=m)
