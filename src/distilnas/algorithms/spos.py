"""SPOS: Single Path One-Shot (Guo et al., ECCV 2020).

Each step trains one path drawn uniformly from the space (Guo et al., sec. 3.2: a uniform prior over
single paths), with an ordinary cross-entropy loss on that path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import ALGORITHMS, Algorithm, StepOutput, path_rng

__all__ = ["SPOS"]


@ALGORITHMS.register("spos")
class SPOS(Algorithm):
    name = "spos"

    @dataclass
    class Config:
        pass

    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int, num_epochs: int) -> StepOutput:
        arch = self.space.sample(path_rng(self.seed, step))
        logits = self.supernet(x, arch)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        loss.backward()
        return StepOutput(loss.item(), int((logits.argmax(1) == y).sum()), len(y), passes=1)
