"""The algorithm interface: a small object driven by the one shared training loop.

Lifecycle (see :mod:`distilnas.train.loop`):

0. ``build_supernet(space, cfg)`` (a classmethod) builds the weight-sharing model the loop trains: the
   space's supernet by default (DNA trains blockwise student cells instead);
1. ``setup(data, device, optimizer)`` once before training: the data splits (e.g. Cream's held-out validation
   batches) and the training device;
2. ``training_step`` for each batch: it does its own forward(s) and backward(s); the loop zeroes the
   gradients before, all-reduces, clips and steps the optimiser after;
3. ``on_epoch_end`` after each epoch (its dict goes into that epoch's metrics line);
4. ``state_dict`` / ``load_state_dict`` for checkpoints (everything needed to resume exactly);
5. ``candidates`` for the architectures the trained supernet scores, ``score`` to score them (validation
   accuracy and loss after BN recalibration by default) and ``finalize`` to pick the result from those
   scores (best validation accuracy by default; Cream picks from its board).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from ..registry import Registry
from ..spaces.base import SearchSpace

if TYPE_CHECKING:
    from ..data import Splits
    from ..evaluate.scoring import ScoreConfig

__all__ = ["ALGORITHMS", "Algorithm", "StepOutput", "distinct_samples", "path_rng"]

ALGORITHMS: Registry[type["Algorithm"]] = Registry("algorithm")


def path_rng(seed: int, step: int) -> random.Random:
    """The explicit generator for path sampling at ``step``: a function of (seed, step) only, so every
    data-parallel rank and a resumed run draw the same paths."""
    return random.Random(f"distilnas-path:{seed}:{step}")


@dataclass
class StepOutput:
    """What one training step reports: the mean loss, correct predictions and samples seen, the number
    of forward/backward passes of one path on one training batch it cost (the compute budget unit shared
    by all algorithms), and the extra forward-only passes (teachers, board evaluation), counted in
    images so that batches of any size add up."""

    loss: float
    correct: int | None  # None: the step does not classify (e.g. DNA's feature regression)
    samples: int
    passes: int
    forward_images: int = 0


def distinct_samples(n: int, draw: Callable[[], Any], admit: Callable[[Any], bool] | None = None,
                     tries: int = 100) -> list[Any]:
    """Up to ``n`` architectures of distinct strings from ``draw()`` that ``admit`` accepts (default: all),
    at most ``tries * n`` draws, in the order first drawn."""
    seen: dict[str, Any] = {}
    for _ in range(tries * n):
        if len(seen) == n:
            break
        a = draw()
        if str(a) not in seen and (admit is None or admit(a)):
            seen[str(a)] = a
    return list(seen.values())


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
        self.data: "Splits | None" = None
        self.device = torch.device("cpu")
        self.optimizer: torch.optim.Optimizer | None = None

    @classmethod
    def build_supernet(cls, space: SearchSpace[Any], cfg: Any) -> nn.Module:
        """The model the loop trains (initialised under the run's seed): ``space.supernet()``."""
        return space.supernet()

    def setup(self, data: "Splits", device: torch.device, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Called once before training with the dataset splits, the training device and the supernet's
        optimiser (read-only: e.g. Cream's unrolled meta step uses its current learning rate)."""
        self.data, self.device, self.optimizer = data, device, optimizer

    def candidates(self, n: int, rng: random.Random) -> list[Any]:
        """Architectures to score for the final selection: ``n`` distinct uniform samples by default
        (methods with their own candidate pool, such as Cream's board, override this)."""
        return distinct_samples(n, lambda: self.space.sample(rng))

    def score(self, archs: list[Any], data: "Splits", cfg: "ScoreConfig", progress: bool | None = None,
              channels_last: bool = False) -> Iterator[dict[str, Any]]:
        """Score the trained supernet's ``archs``: ``{"arch", "accuracy", "loss"}`` each, by default the
        validation accuracy and loss of each path after BatchNorm recalibration."""
        from ..evaluate.scoring import score_archs

        return score_archs(self.supernet, archs, data, cfg, self.device, progress, channels_last=channels_last)

    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int, num_epochs: int) -> StepOutput:
        raise NotImplementedError

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        return {}

    def finalize(self, scores: list[dict[str, Any]], top: int) -> dict[str, Any]:
        """The search result from the supernet's ``scores`` (``{"arch", "accuracy", "loss"}`` each):
        ``{"ranked": [the best ``top`` rows]}`` plus anything the method adds to ``result.json``.
        Default: rank by validation accuracy, loss as the tie-break."""
        return {"ranked": sorted(scores, key=lambda r: (-r["accuracy"], r["loss"]))[:top]}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
