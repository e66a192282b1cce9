"""The search-space interface: a flat set of labelled choices, kept apart from the weight-sharing modules.

Algorithms only see ``choices``, ``sample(rng)``, ``mutate``, ``distance`` and ``parse``; only
``supernet()`` / ``build(arch)`` know about weights.
"""

from __future__ import annotations

import contextlib
import itertools
import random
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Iterator, TypeVar

import torch
from torch import nn

from ..config import ConfigError, from_dict
from ..registry import Registry

if TYPE_CHECKING:
    from ..data import Splits

__all__ = ["SPACES", "SearchSpace", "build_space_config", "check_data", "read_archs", "count_params", "count_flops",
           "create_space", "seeded"]

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


def build_space_config(name: str, options: dict[str, Any], where: str = "space") -> Any:
    """The registered space's ``Config`` dataclass from ``options`` (``name`` key ignored)."""
    cls = SPACES.get(name)
    opts = {k: v for k, v in options.items() if k != "name"}
    return from_dict(cls.Config, opts, where)


def check_data(space: SearchSpace[Any], data: Splits, dataset: str) -> None:
    """One-line ConfigError when the dataset ``dataset`` does not fit the space's input or classes."""
    want, have = space.input_shape(), data.input_shape
    if want != have:
        raise ConfigError(
            f"space expects inputs {want} but {dataset} gives {have}; set space.in_channels={have[0]} "
            f"space.input_size={have[1]}")
    nc = getattr(space.cfg, "num_classes", data.num_classes)
    if nc != data.num_classes:
        raise ConfigError(f"space.num_classes={nc} but {dataset} has {data.num_classes} classes")


def read_archs(path: str | Path, space: SearchSpace[Any]) -> list[Any]:
    """Architectures of ``space`` from a file of one string per line (blank lines and ``#`` comments
    skipped); a missing file or a malformed line is a one-line ConfigError naming ``file:line``."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"architecture file {p} is a directory; pass a file with one architecture string per line")
    if not p.is_file():
        raise ConfigError(f"architecture file {p} not found (one architecture string per line)")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark (some editors write one) is not text
    except UnicodeDecodeError:
        raise ConfigError(f"architecture file {p} is not a UTF-8 text file; pass one architecture string per line") from None
    archs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                archs.append(space.parse(line))
            except ValueError as e:
                raise ConfigError(f"{p}:{n}: {e}") from None
    if not archs:
        raise ConfigError(f"architecture file {p} holds no architectures (one string per line; blank lines and "
                          f"# comments are skipped)")
    return archs
