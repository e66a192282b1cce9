"""The sandwich rule with in-place distillation (Yu & Huang, "Universally Slimmable Networks", ICCV 2019,
sec. 3.2-3.3; BigNAS, Yu et al., ECCV 2020), as used for RD-NAS's ResNet-space baseline (Dong et al.,
ICASSP 2023, table 1: "sandwich").

Per step, on one batch:

1. the largest subnet is trained on the labels: L = CE(f_big(x), y) (with the run's label smoothing);
2. the smallest subnet and ``num_random`` uniformly drawn subnets are trained on the largest one's
   prediction: L = T^2 * CE_soft(softmax(f_big(x) / T), f_a(x) / T), the teacher probabilities
   detached, so no distillation gradient reaches the teacher's forward pass (T = 1 gives the plain soft
   cross-entropy of in-place distillation; the T^2 factor (Hinton et al., 2015) keeps gradient scales
   comparable for other temperatures).

Each loss is back-propagated on its own; the gradients accumulate and the loop takes one optimiser step.
A step costs ``2 + num_random`` forward/backward passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, opt
from ..spaces.base import SearchSpace
from .base import ALGORITHMS, Algorithm, StepOutput, path_rng

__all__ = ["Sandwich", "soft_cross_entropy"]


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T^2 * mean over the batch of -sum_c p_c log softmax(logits / T)_c, for fixed target probabilities."""
    log_q = F.log_softmax(logits / temperature, dim=1)  # (B, classes)
    return -(target_probs * log_q).sum(dim=1).mean() * temperature ** 2


@ALGORITHMS.register("sandwich")
class Sandwich(Algorithm):
    name = "sandwich"

    @dataclass
    class Config:
        num_random: int = opt(2, ge=0)  # random subnets per step besides the smallest (RD-NAS, BigNAS: 2)
        temperature: float = opt(1.0, gt=0)  # softmax temperature of the in-place distillation (1 = plain soft CE)

    def __init__(self, space: SearchSpace[Any], supernet: nn.Module, cfg: Any, seed: int,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(space, supernet, cfg, seed, label_smoothing)
        try:
            self.big, self.small = space.largest(), space.smallest()
        except NotImplementedError:
            raise ConfigError(f"algorithm 'sandwich' needs a space with largest()/smallest() subnets; space "
                              f"{space.name!r} has none (use e.g. spos, or the resnet space)") from None
        if cfg.num_random < 0 or cfg.temperature <= 0:
            raise ConfigError(f"algorithm.num_random must be >= 0 and algorithm.temperature > 0, got "
                              f"{cfg.num_random} and {cfg.temperature}")

    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int, num_epochs: int) -> StepOutput:
        rng = path_rng(self.seed, step)
        T = self.cfg.temperature
        # 1. the largest subnet learns from the labels and becomes the teacher
        logits = self.supernet(x, self.big)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        loss.backward()
        teacher = F.softmax(logits.detach() / T, dim=1)  # (B, classes), no gradient
        total, correct = loss.item(), int((logits.argmax(1) == y).sum())
        # 2. the smallest and num_random random subnets learn from the teacher
        students = [self.small] + [self.space.sample(rng) for _ in range(self.cfg.num_random)]
        for arch in students:
            logits = self.supernet(x, arch)
            loss = soft_cross_entropy(logits, teacher, T)
            loss.backward()
            total += loss.item()
            correct += int((logits.argmax(1) == y).sum())
        passes = 1 + len(students)
        return StepOutput(total / passes, correct, passes * len(y), passes=passes)
