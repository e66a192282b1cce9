"""The zero-cost proxy registry and the API that scores architectures with it.

A zero-cost proxy scores an untrained network from one batch (or no data at all); a higher score predicts
a better architecture. Sources: Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021
(the protocol: one batch of 64, default initialisation, fixed seed; sums over Conv and Linear weights),
and NASLib's ``@measure`` decorator registry. The proxies themselves live in ``pruning.py``,
``naswot.py``, ``zen.py`` and ``cost.py`` and cite their own papers.

Contract of every registered :class:`Proxy` (``proxy(model, batch, generator) -> float``):

- it never changes the model it scores: it scores a deep copy, so weights, gradients, BatchNorm running
  statistics, ``requires_grad`` flags and train/eval modes of the caller's model are untouched;
- a numerical failure (NaN/inf score, a failed eigen-decomposition, a singular kernel) gives
  ``float('nan')``, never an exception; :func:`compute` and :func:`score_archs` warn naming the
  architecture, and :func:`score_archs` reports ``"score": None`` with an ``"error"``;
- data-free proxies (``data=False``) read only the *shape* of ``batch[0]``; with ``batch=None`` they need
  ``input_shape`` (:func:`compute` takes it from the space);
- gradients are taken with ``torch.enable_grad()``, so calling from a ``no_grad`` block is fine.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from ..data import DataConfig, DataError, Splits, gather, load_dataset
from ..registry import Registry
from ..spaces import SearchSpace

__all__ = [
    "PROXIES", "Proxy", "ProxyError", "NumericalFailure", "register_proxy", "compute", "score_archs",
    "fixed_batch", "sample_batch", "weight_layers", "train_mode", "DEFAULT_BATCH_SIZE",
]

DEFAULT_BATCH_SIZE = 64
"""Batch size of the reference code (and of the shape-only input of data-free proxies by default)."""

ProxyFn = Callable[[nn.Module, torch.Tensor, "torch.Tensor | None", torch.Generator], float]


class ProxyError(ValueError):
    """A proxy used wrongly (a data proxy without a batch, a data-free one without an input shape)."""


class NumericalFailure(ArithmeticError):
    """Raised inside a proxy for a numerical failure; the registered :class:`Proxy` turns it into NaN."""


@dataclass(frozen=True)
class Proxy:
    """One registered zero-cost proxy.

    Attributes:
        name: registry name.
        fn: ``fn(model, x, y, generator) -> float`` on a private copy of the model that it may change;
            ``x`` is on the model's device; for data-free proxies ``x`` is a zero tensor of the input
            shape and ``y`` is None.
        data: whether the proxy reads images and labels.
        cost: for ``params`` / ``flops``: the key of ``space.cost(arch)`` that gives the same number
            without building the network.
    """

    name: str
    fn: ProxyFn
    data: bool
    cost: str | None = None

    def __call__(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor] | None,
                 generator: torch.Generator, *, input_shape: tuple[int, ...] | None = None) -> float:
        """The score of ``model`` (higher = predicted better); NaN on a numerical failure."""
        return self.run(model, batch, generator, input_shape=input_shape)[0]

    def run(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor] | None,
            generator: torch.Generator, *, input_shape: tuple[int, ...] | None = None
            ) -> tuple[float, str | None]:
        """``(score, None)``, or ``(nan, reason)`` on a numerical failure.

        Args:
            model: the network; it is deep-copied and never changed.
            batch: ``(images, labels)``; data-free proxies read only ``images.shape``.
            generator: the only source of randomness (CPU generator).
            input_shape: ``(B, C, H, W)`` for a data-free proxy called with ``batch=None``.

        Raises:
            ProxyError: a data proxy without a batch, or a data-free proxy without any input shape.
        """
        x, y = self._inputs(batch, input_shape)
        net = copy.deepcopy(model)
        for p in net.parameters():
            p.grad = None
        net.requires_grad_(True)
        first = next(iter(net.parameters()), None)
        if first is not None:
            x = x.to(first.device)
            y = y.to(first.device) if y is not None else None
        try:
            with torch.enable_grad():
                value = float(self.fn(net, x, y, generator))
        except (NumericalFailure, torch.linalg.LinAlgError) as e:
            return math.nan, f"{self.name}: {e}".splitlines()[0]
        if not math.isfinite(value):
            return math.nan, f"{self.name}: non-finite score {value}"
        return value, None

    def _inputs(self, batch: tuple[torch.Tensor, torch.Tensor] | None,
                input_shape: tuple[int, ...] | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.data:
            if batch is None:
                raise ProxyError(f"proxy {self.name!r} needs a batch of data (images, labels); "
                                 f"see distilnas.proxies.fixed_batch")
            return batch[0], batch[1]
        shape = tuple(batch[0].shape) if batch is not None else input_shape
        if shape is None:
            raise ProxyError(f"data-free proxy {self.name!r} needs an input shape: pass a batch or "
                             f"input_shape=(B, C, H, W)")
        return torch.zeros(shape), None


PROXIES: Registry[Proxy] = Registry("proxy")


def register_proxy(name: str, data: bool = True, cost: str | None = None) -> Callable[[ProxyFn], Proxy]:
    """Register ``fn(model, x, y, generator) -> float`` as proxy ``name`` (duplicates are an error).

    The decorated name becomes the registered :class:`Proxy`, called as ``proxy(model, batch, generator)``.

    Example:
        >>> @register_proxy("synflow", data=False)
        ... def synflow(model, x, y, generator): ...
    """

    def deco(fn: ProxyFn) -> Proxy:
        return PROXIES.register(name)(Proxy(name, fn, data, cost))

    return deco


# -- helpers shared by the proxies ---------------------------------------------------------------------
def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The Conv and Linear layers whose weights the proxies sum over, in module order."""
    return [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


def train_mode(model: nn.Module) -> None:
    """Train mode (BatchNorm normalises with the batch's statistics, as in the reference NB201 models,
    whose BN keeps no running statistics) but dropout off, so that no global RNG is drawn."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()


# -- scoring architectures -----------------------------------------------------------------------------
def compute(name: str, space: SearchSpace[Any], arch: Any, batch: tuple[torch.Tensor, torch.Tensor] | None,
            seed: int = 0, device: str | torch.device = "cpu") -> float:
    """Proxy ``name`` of the standalone network ``space.build(arch, seed=seed)`` on ``device``.

    ``params`` / ``flops`` come from ``space.cost(arch)`` (an exact table for NB201). The proxy's
    generator is seeded with ``seed`` too. A numerical failure returns NaN and warns naming ``arch``.
    """
    record = _score_one(PROXIES.get(name), space, arch, batch, seed, device)
    if "error" in record:
        warnings.warn(f"proxy {name} failed on {record['arch']}: {record['error']}", RuntimeWarning, stacklevel=2)
        return math.nan
    return float(record["score"])


def score_archs(name: str, space: SearchSpace[Any], archs: Iterable[Any],
                batch: tuple[torch.Tensor, torch.Tensor] | None, seed: int = 0,
                device: str | torch.device = "cpu", workers: int = 1) -> Iterator[dict[str, Any]]:
    """Score each architecture with proxy ``name``, in order.

    Yields JSON-ready records ``{"arch": str, "score": float | None, "seconds": float}`` plus
    ``"error"`` when the score failed (``score`` is then None and a warning names the architecture).
    ``params`` / ``flops`` read the space's cost table for every architecture; other proxies use the one
    fixed ``batch`` for all architectures, in this process (``workers=1``) or in a pool of ``workers``
    spawned processes, one torch thread each.
    """
    proxy = PROXIES.get(name)
    archs = list(archs)
    if workers > 1 and proxy.cost is None and len(archs) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(name, space, batch, seed, str(device))) as pool:
            records: Iterable[dict[str, Any]] = pool.map(_worker_score, archs,
                                                         chunksize=max(1, len(archs) // (4 * workers)))
            yield from _reported(name, records)
    else:
        yield from _reported(name, (_score_one(proxy, space, a, batch, seed, device) for a in archs))


def _reported(name: str, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in records:
        if "error" in r:
            warnings.warn(f"proxy {name} failed on {r['arch']}: {r['error']}", RuntimeWarning, stacklevel=3)
        yield r


def _score_one(proxy: Proxy, space: SearchSpace[Any], arch: Any, batch: tuple[torch.Tensor, torch.Tensor] | None,
               seed: int, device: str | torch.device) -> dict[str, Any]:
    t0 = time.perf_counter()
    if proxy.cost is not None:
        score, error = float(space.cost(arch)[proxy.cost]), None
    else:
        model = space.build(arch, seed=seed).to(device)
        shape = (DEFAULT_BATCH_SIZE, *space.input_shape())
        score, error = proxy.run(model, batch, torch.Generator().manual_seed(seed), input_shape=shape)
    record: dict[str, Any] = {"arch": str(arch), "score": None if error else score,
                              "seconds": round(time.perf_counter() - t0, 4)}
    if error:
        record["error"] = error
    return record


_WORKER: dict[str, Any] = {}


def _init_worker(name: str, space: SearchSpace[Any], batch: tuple[torch.Tensor, torch.Tensor] | None,
                 seed: int, device: str) -> None:
    torch.set_num_threads(1)  # a worker process of our own pool: one core each
    _WORKER.update(proxy=PROXIES.get(name), space=space, batch=batch, seed=seed, device=device)


def _worker_score(arch: Any) -> dict[str, Any]:
    w = _WORKER
    return _score_one(w["proxy"], w["space"], arch, w["batch"], w["seed"], w["device"])


# -- data ---------------------------------------------------------------------------------------------------
def sample_batch(data: Splits, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` images and labels of ``data``'s training split, picked by a seeded permutation."""
    n = len(data.train_x)
    if not 0 < batch_size <= n:
        raise DataError(f"batch_size={batch_size} must be in [1, {n}] (the training split's size)")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:batch_size]
    return gather(data.train_x, idx).clone(), data.train_y[idx].clone()


def fixed_batch(data_cfg: DataConfig, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded batch ``(x, y)`` from the training split of the dataset ``data_cfg``."""
    return sample_batch(load_dataset(data_cfg), batch_size, seed)
