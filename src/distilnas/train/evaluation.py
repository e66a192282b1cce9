"""Evaluation shared by standalone training, supernet scoring and the algorithms: accuracy and loss of a
model on held-out images, and BatchNorm recalibration (the statistics of one path of a supernet, or of
averaged weights, re-estimated on training batches)."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageSource, gather

__all__ = ["evaluate", "bn_layers", "recalibrate_bn"]


@torch.no_grad()
def evaluate(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor | ImageSource, y: torch.Tensor,
             batch_size: int = 1000) -> dict[str, float]:
    """Top-1 accuracy (%) and mean cross-entropy of ``model`` on ``(x, y)``, in chunks of ``batch_size``
    (streamed images are decoded chunk by chunk)."""
    correct, loss_sum = 0, 0.0
    for i in range(0, len(x), batch_size):
        logits = model(gather(x, slice(i, i + batch_size)))
        yb = y[i:i + batch_size]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    n = max(1, len(x))
    return {"accuracy": 100.0 * correct / n, "loss": loss_sum / n}


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], forward=None) -> None:
    """Reset every BatchNorm's running statistics and re-estimate them as a cumulative average over
    ``batches`` in train mode. ``forward(x)`` runs the path (default ``model(x)``). Restores the
    layers' momentum and the model's train/eval mode."""
    layers = bn_layers(model)
    saved = [m.momentum for m in layers]
    was_training = model.training
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average
        model.train()
        for x in batches:
            (forward or model)(x)
    finally:
        for m, mom in zip(layers, saved):
            m.momentum = mom
        model.train(was_training)
