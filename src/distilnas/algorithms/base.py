"""The algorithm interface: a small object driven by the one shared training loop.

Lifecycle (see :mod:`distilnas.train.loop`): ``training_step`` for each batch (it does its own forward
and backward; the loop zeroes gradients before, clips and steps the optimiser after), ``on_epoch_end``,
``state_dict`` / ``load_state_dict`` for checkpoints, and ``select`` for the final architectures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..registry import Registry
from ..spaces.base import SearchSpace

__all__ = ["ALGORITHMS", "Algorithm", "StepOutput", "path_rng"]

ALGORITHMS: Registry[type["Algorithm"]] = Registry("algorithm")


def path_rng(seed: int, step: int) -> random.Random:
    """The explicit generator for path sampling at ``step``: a function of (seed, step) only, so every
    data-parallel rank and a resumed run draw the same paths."""
    return random.Random(f"distilnas-path:{seed}:{step}")


@dataclass
class StepOutput:
    """What one training step reports: the mean loss, correct predictions and samples seen, and the
    number of forward/backward passes it cost (the compute budget unit shared by all algorithms)."""

    loss: float
    correct: int
    samples: int
    passes: int


class Algorithm:
    """Base class; subclasses register with ``@ALGORITHMS.register(name)`` and define ``Config``."""

    name: ClassVar[str]

    @dataclass
    class Config:
        pass

    def __init__(self, space: SearchSpace[Any], supernet: nn.Module, cfg: Any, seed: int,
                 label_smoothing: float = 0.0) -> None:
        self.space, self.supernet, self.cfg, self.seed = space, supernet, cfg, seed
        self.label_smoothing = label_smoothing

    def candidates(self, n: int, rng: random.Random) -> list[Any]:
        """Architectures to score for the final selection: ``n`` distinct uniform samples by default
        (methods with their own candidate pool, such as Cream's board, override this)."""
        seen: dict[str, Any] = {}
        for _ in range(100 * n):
            if len(seen) == n:
                break
            a = self.space.sample(rng)
            seen.setdefault(str(a), a)
        return list(seen.values())

    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int, num_epochs: int) -> StepOutput:
        raise NotImplementedError

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
