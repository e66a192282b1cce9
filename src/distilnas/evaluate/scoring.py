"""Scoring architectures with supernet weights.

Weight-shared BatchNorm statistics belong to no single path, so before a path is evaluated its
BatchNorm layers are recalibrated (Guo et al., SPOS sec. 3.4): running statistics are reset and
re-estimated as a cumulative average (``momentum=None``) over a fixed set of training batches, the same
batches for every architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ..config import opt
from ..data import Splits, gather
from ..train.evaluation import bn_layers, evaluate, recalibrate_bn

__all__ = ["ScoreConfig", "recalibrate_bn", "score_archs", "bn_layers"]


@dataclass
class ScoreConfig:
    """How a supernet scores architectures."""

    bn_recal_batches: int = opt(10, ge=0)  # training batches for BN recalibration (0 = keep running statistics)
    bn_recal_batch_size: int = opt(256, ge=1)
    val_size: int = opt(0, ge=0)  # validation images used for the score (0 = the whole validation split)
    batch_size: int = opt(1000, ge=1)  # evaluation batch size
    recal_seed: int = opt(0, ge=0)  # which training images recalibrate BN (a fixed draw per seed)
    val_offset: int = opt(0, ge=0)  # the score uses validation images [val_offset, val_offset + val_size)


def _recal_batches(data: Splits, cfg: ScoreConfig, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(cfg.recal_seed)
    n = len(data.train_x)
    idx = torch.randperm(n, generator=g)[: cfg.bn_recal_batches * cfg.bn_recal_batch_size]
    x = gather(data.train_x, idx).to(device)
    return list(x.split(cfg.bn_recal_batch_size))


def score_archs(supernet: nn.Module, archs: list[Any], data: Splits, cfg: ScoreConfig,
                device: str | torch.device = "cpu", progress: bool | None = None,
                channels_last: bool = False) -> Iterator[dict[str, Any]]:
    """Yield ``{"arch", "accuracy", "loss"}`` (validation top-1 % and cross-entropy) for each arch,
    evaluated with the supernet's shared weights after BN recalibration (``channels_last``: feed the
    images in that memory format, as the supernet was trained)."""
    from ..progress import progress_bar

    device = torch.device(device)
    supernet.to(device)
    fmt = torch.channels_last if channels_last and data.val_x.dim() == 4 else torch.contiguous_format
    recal = [x.contiguous(memory_format=fmt) for x in _recal_batches(data, cfg, device)] \
        if cfg.bn_recal_batches > 0 else []
    start = cfg.val_offset
    stop = min(start + cfg.val_size, len(data.val_x)) if cfg.val_size else len(data.val_x)
    if start >= len(data.val_x):
        raise ValueError(f"score.val_offset={start} leaves none of the {len(data.val_x)} validation images")
    vx, vy = data.val_x[start:stop].to(device).contiguous(memory_format=fmt), data.val_y[start:stop].to(device)
    bar = progress_bar(total=len(archs), desc="scoring", disable=None if progress is None else not progress)
    try:
        for arch in archs:
            fwd = lambda x, a=arch: supernet(x, a)  # noqa: E731
            if recal:
                recalibrate_bn(supernet, recal, fwd)
            supernet.eval()
            res = evaluate(fwd, vx, vy, cfg.batch_size)
            bar.update(1)
            yield {"arch": str(arch), **res}
    finally:
        bar.close()
