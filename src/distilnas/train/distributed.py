"""Data parallelism for ``torchrun`` that reproduces the one-process run with the same global batch.

- ``train.batch_size`` is the global batch: rank r of W gets the r-th contiguous part (B / W images) of
  every batch the one process would see, augmented with the one process's random draws
  (``make_loader(shard=(rank, world))``);
- every rank samples the same path (the path generator is a function of (seed, step));
- BatchNorm normalises over the global batch: inside :func:`global_batch` the layers converted by
  :func:`convert_batchnorm` all-reduce their batch statistics, through an all-reduce that autograd
  differentiates (so gradients flow across ranks exactly as in the one-process graph, including a
  double backward); :func:`local_batch` turns this off for forwards on data that every rank holds in
  full (e.g. Cream's board slices and validation images);
- gradients are averaged by all-reduce. This is done by hand rather than through
  DistributedDataParallel because a single-path step leaves most supernet parameters unused.

With equal per-rank batches the mean of the per-rank mean losses is the mean over the global batch, so
the averaged gradient is the one-process gradient: in float64 the weights agree to about 1e-15
(tests/test_distributed.py). In float32 the sums round differently, and a ReLU input that rounding moves
across zero changes that element's gradient, so the runs drift apart over the steps as far as two
one-process runs with and without ``train.channels_last`` do. For a single process nothing here acts:
it trains bit for bit as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from typing import Any, Iterator

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..ops.slimmable import SlimBatchNorm2d

__all__ = ["setup", "is_distributed", "rank", "world_size", "local_rank", "all_reduce_grads",
           "all_reduce_sum", "all_gather_cat", "convert_batchnorm", "global_batch", "local_batch",
           "global_batch_norm", "reduce_step", "check_same"]


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> None:
    """Join the process group started by torchrun (no-op for a single process)."""
    if is_distributed() and not tdist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        tdist.init_process_group(backend)


def rank() -> int:
    return tdist.get_rank() if tdist.is_initialized() else 0


def world_size() -> int:
    return tdist.get_world_size() if tdist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _comm_device() -> torch.device:
    """Where small bookkeeping tensors must live for the process group's backend."""
    if tdist.is_initialized() and tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average gradients across ranks. A parameter without a gradient on every rank (off the step's
    path) keeps none, so that the optimiser skips it as it does for one process (a zero gradient would
    still apply weight decay and momentum to it); one with a gradient on some rank only gets zeros on
    the others. The gradients travel flattened, one all-reduce per dtype and device."""
    if world_size() == 1:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8, device=_comm_device())
    tdist.all_reduce(has, op=tdist.ReduceOp.MAX)
    groups: dict[tuple[torch.device, torch.dtype], list[torch.nn.Parameter]] = {}
    for p, h in zip(params, has.tolist()):
        if h:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            groups.setdefault((p.grad.device, p.grad.dtype), []).append(p)
    for group in groups.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        tdist.all_reduce(flat)
        flat.div_(world_size())
        for p, g in zip(group, flat.split([p.numel() for p in group])):
            p.grad.copy_(g.view_as(p.grad))


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the backward of a sum over ranks is again a sum over ranks (of the gradients),
    written with this function so that a double backward works too."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = t.clone(memory_format=torch.contiguous_format)
        tdist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _AllReduceSum.apply(grad)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over all ranks (a new tensor, differentiable; ``t`` itself for one process)."""
    return _AllReduceSum.apply(t) if world_size() > 1 else t


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` (the same shape on each) concatenated along dim 0 in rank order, in ``t``'s
    memory format (not differentiable)."""
    if world_size() == 1:
        return t
    src = t.detach().contiguous()
    parts = [torch.empty_like(src) for _ in range(world_size())]
    tdist.all_gather(parts, src)
    out = torch.cat(parts)
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out


# -- BatchNorm over the global batch ------------------------------------------------------------------
_GLOBAL_BN = False


@contextlib.contextmanager
def global_batch(enabled: bool = True) -> Iterator[None]:
    """Within this block, BatchNorm layers converted by :func:`convert_batchnorm` normalise training
    batches with the statistics of the global batch (all ranks' shards): for forwards on this rank's
    shard of the global batch. The training loop wraps every ``training_step`` in it."""
    global _GLOBAL_BN
    previous, _GLOBAL_BN = _GLOBAL_BN, enabled
    try:
        yield
    finally:
        _GLOBAL_BN = previous


def local_batch() -> contextlib.AbstractContextManager[None]:
    """Per-rank BatchNorm statistics inside a :func:`global_batch` block: for forwards on inputs that
    every rank holds in full (the same images on every rank)."""
    return global_batch(False)


def global_batch_norm(x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
                      weight: torch.Tensor | None, bias: torch.Tensor | None, momentum: float,
                      eps: float) -> torch.Tensor:
    """Training-mode ``F.batch_norm`` over the union of every rank's ``x`` (channels in dim 1): the mean
    and the (biased) variance are sums over ranks, differentiable; the running statistics take the
    global mean and the unbiased global variance, as the one process's would."""
    c = x.shape[1]
    dims = [0, *range(2, x.dim())]
    shape = [1, c] + [1] * (x.dim() - 2)
    sums = all_reduce_sum(torch.cat([x.sum(dims), x.new_full((1,), float(x.numel() // c))]))
    count = sums[c:].detach()
    mean = sums[:c] / count
    xc = x - mean.view(shape)
    var = all_reduce_sum((xc * xc).sum(dims)) / count
    out = xc * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    if running_mean is not None and running_var is not None:
        # through .data, as the native kernel does it: an earlier forward of this layer may have saved
        # the buffers for its backward, and a version bump would fail that backward
        n = float(count)
        running_mean.data.mul_(1.0 - momentum).add_(mean.detach(), alpha=momentum)
        running_var.data.mul_(1.0 - momentum).add_(var.detach() * (n / max(n - 1.0, 1.0)), alpha=momentum)
    return out


class _GlobalBatchNorm:
    """Mixin put in front of a BatchNorm class by :func:`convert_batchnorm`: inside :func:`global_batch`,
    in training mode, normalise with :func:`global_batch_norm`; otherwise the layer's own forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn: Any = self
        c = x.shape[1] if x.dim() > 1 else -1
        if (not (_GLOBAL_BN and bn.training) or world_size() == 1
                or not (c == bn.num_features or (isinstance(bn, SlimBatchNorm2d) and 0 < c < bn.num_features))):
            return super().forward(x)  # type: ignore[misc]
        bn._check_input_dim(x)
        momentum = 0.0 if bn.momentum is None else bn.momentum
        if bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(bn.num_batches_tracked)
        track = bn.track_running_stats and bn.running_mean is not None

        def first(t: torch.Tensor | None) -> torch.Tensor | None:  # a slimmable layer's first c channels
            return None if t is None else t[:c]

        return global_batch_norm(x, first(bn.running_mean) if track else None,
                                 first(bn.running_var) if track else None, first(bn.weight), first(bn.bias),
                                 momentum, bn.eps)


_CONVERTED: dict[type, type] = {}


def convert_batchnorm(model: nn.Module) -> nn.Module:
    """Make every BatchNorm layer of ``model`` follow :func:`global_batch` (in place; a no-op for one
    process). Parameters, buffers and state-dict keys are unchanged; only the class of each layer
    becomes a subclass of its own (``GlobalBatchNorm2d`` for ``nn.BatchNorm2d``, ...)."""
    if world_size() == 1:
        return model
    for m in model.modules():
        if isinstance(m, _BatchNorm) and not isinstance(m, _GlobalBatchNorm):
            cls = type(m)
            if cls not in _CONVERTED:
                name = f"Global{cls.__name__}"
                _CONVERTED[cls] = type(name, (_GlobalBatchNorm, cls), {"__module__": __name__, "__qualname__": name})
                globals().setdefault(name, _CONVERTED[cls])  # picklable by name
            m.__class__ = _CONVERTED[cls]
    return model


# -- bookkeeping --------------------------------------------------------------------------------------
def reduce_step(res: Any) -> Any:
    """A training step's :class:`~distilnas.algorithms.base.StepOutput` over the global batch: the loss
    averaged over all samples, ``correct`` and ``samples`` summed (``passes`` and ``forward_images`` stay
    per rank). Every rank gets the same numbers, so decisions taken on them agree."""
    if world_size() == 1:
        return res
    t = torch.tensor([res.loss * res.samples, float(res.correct or 0), float(res.samples)],
                     dtype=torch.float64, device=_comm_device())
    tdist.all_reduce(t)
    total, correct, samples = t.tolist()
    return dataclasses.replace(res, loss=total / max(samples, 1.0), samples=int(samples),
                               correct=None if res.correct is None else int(correct))


def check_same(what: str, payload: bytes) -> None:
    """Raise when ``payload`` (e.g. a serialised board) is not the same on every rank."""
    if world_size() == 1:
        return
    digest = hashlib.sha256(payload).hexdigest()
    digests: list[Any] = [None] * world_size()
    tdist.all_gather_object(digests, digest)
    if len(set(digests)) > 1:
        raise RuntimeError(f"{what} differs across the {world_size()} data-parallel ranks "
                           f"(digests {', '.join(d[:12] for d in digests)}); the ranks have diverged")
