"""The search-space interface: a flat set of labelled choices, kept apart from the weight-sharing modules.

Algorithms only see ``choices``, ``sample(rng)``, ``mutate``, ``distance`` and ``parse``; only
``supernet()`` / ``build(arch)`` know about weights.
"""

from __future__ import annotations

import contextlib
import itertools
import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, Iterator, TypeVar

import torch
from torch import nn

from ..registry import Registry

__all__ = ["SPACES", "SearchSpace", "count_params", "count_flops", "create_space", "seeded"]

A = TypeVar("A")
SPACES: Registry[type["SearchSpace[Any]"]] = Registry("space")


class SearchSpace(ABC, Generic[A]):
    """Base class of every registered search space."""

    name: ClassVar[str]
    Config: ClassVar[type]
    cfg: Any

    @property
    @abstractmethod
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """``{label: options}`` for every decision of the space."""

    @abstractmethod
    def parse(self, text: str) -> A: ...

    @abstractmethod
    def sample(self, rng: random.Random) -> A: ...

    def from_choices(self, sample: dict[str, Any]) -> A:
        """The architecture with option ``sample[label]`` for every label of :attr:`choices`."""
        raise NotImplementedError(f"space {self.name!r} cannot build an architecture from choices")

    def to_choices(self, arch: A) -> dict[str, Any]:
        """``{label: option}`` of ``arch`` (the inverse of :meth:`from_choices`)."""
        raise NotImplementedError(f"space {self.name!r} cannot list an architecture's choices")

    @abstractmethod
    def mutate(self, arch: A, rng: random.Random) -> A: ...

    @abstractmethod
    def distance(self, a: A, b: A) -> float: ...

    @abstractmethod
    def supernet(self) -> nn.Module: ...

    @abstractmethod
    def build(self, arch: A, seed: int | None = None) -> nn.Module: ...

    @abstractmethod
    def input_shape(self) -> tuple[int, int, int]: ...

    def largest(self) -> A:
        """The architecture with the most capacity (sandwich rule); spaces that have one override this."""
        raise NotImplementedError(f"space {self.name!r} has no largest architecture")

    def smallest(self) -> A:
        """The architecture with the least capacity (sandwich rule)."""
        raise NotImplementedError(f"space {self.name!r} has no smallest architecture")

    def enumerate(self) -> Iterator[A]:
        raise NotImplementedError(f"space {self.name!r} is too large to enumerate")

    def cost(self, arch: A) -> dict[str, float]:
        """Parameters and FLOPs of the standalone network at the configured input size."""
        model = self.build(arch, seed=0)
        return {"params": count_params(model), "flops": count_flops(model, self.input_shape())}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of a single input, by ``torch.utils.flop_counter``.

    The counter counts 2 FLOPs per multiply-add of convolutions and matrix products (BN, ReLU and pooling
    are not counted), so this is twice the "MACs" that NB201 and many papers call FLOPs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        first = next(itertools.chain(model.parameters(), model.buffers()), None)
        x = torch.zeros(1, *input_shape, device=first.device if first is not None else "cpu")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def create_space(name: str, cfg: Any = None) -> "SearchSpace[Any]":
    return SPACES.get(name)(cfg)


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Initialise modules built inside the block from ``seed`` without touching the caller's global RNG
    (``None``: use and advance the global RNG as usual)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
