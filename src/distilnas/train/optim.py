"""The optimiser and its learning-rate schedule: one config type, :class:`OptimConfig`, for supernet
training (the search's ``train`` section, :class:`~distilnas.train.loop.TrainConfig`) and standalone
training (the ground truth's and retraining's ``recipe``, :class:`~distilnas.train.standalone.Recipe`).
Both extend it (with their own defaults and options); :func:`make_optimizer` builds both."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import opt

__all__ = ["OptimConfig", "OPTIMIZERS", "SCHEDULES", "make_optimizer", "param_groups"]

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("cosine", "linear", "step", "constant")


@dataclass
class OptimConfig:
    """Epochs, batch, optimiser (SGD with momentum, Adam or RMSprop), weight decay, gradient clipping and
    the per-step schedule: linear warm-up, then cosine decay (or linear, step, constant)."""

    epochs: int = opt(12, ge=1)
    batch_size: int = opt(128, ge=1)
    lr: float = opt(0.1, gt=0)
    momentum: float = opt(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = opt(5e-4, ge=0)
    warmup_epochs: float = opt(0.0, ge=0)  # linear warm-up before the decay
    label_smoothing: float = opt(0.0, ge=0, lt=1)
    grad_clip: float = opt(5.0, ge=0)  # max global gradient norm; 0 = off
    optimizer: str = opt("sgd", choices=OPTIMIZERS)  # sgd | adam | rmsprop
    # after the warm-up: cosine | linear | step (x0.9 per epoch, DNA) | constant
    schedule: str = opt("cosine", choices=SCHEDULES)
    no_decay_bn_bias: bool = False  # no weight decay on biases and BatchNorm weights (Cream)


def param_groups(model: nn.Module, weight_decay: float, no_decay_bn_bias: bool) -> list[dict]:
    """One group with ``weight_decay``; with ``no_decay_bn_bias`` a second one without it holding every
    parameter of fewer than two dimensions (biases, BatchNorm weights)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not no_decay_bn_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    return [{"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, recipe: OptimConfig, steps_total: int, steps_per_epoch: int):
    """The recipe's optimiser and a per-iteration schedule: linear warm-up, then cosine decay to 0
    (or linear decay to 0, a x0.9 step decay per epoch, or constant)."""
    groups = param_groups(model, recipe.weight_decay, recipe.no_decay_bn_bias)
    if recipe.optimizer == "sgd":
        # foreach: the same per-tensor arithmetic as the default single-tensor loop on CPUs (identical
        # weights, tests/test_speed_options.py) without its Python loop over parameters: 1.6 instead of
        # 2.5 ms per step of a 156-tensor NB201 network (benchmarks/bench_standalone.py); CUDA uses it anyway
        opt: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov and recipe.momentum > 0,
            foreach=True)
    elif recipe.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=recipe.lr)
    elif recipe.optimizer == "rmsprop":  # EfficientNet-style retraining (Cream's retrain recipe)
        opt = torch.optim.RMSprop(groups, lr=recipe.lr, alpha=0.9, eps=1e-3, momentum=recipe.momentum)
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}; choose sgd, adam or rmsprop")
    if recipe.schedule not in ("cosine", "linear", "step", "constant"):
        raise ValueError(f"unknown schedule {recipe.schedule!r}; choose cosine, linear, step or constant")
    warm = int(recipe.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, steps_total - warm))
        if recipe.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if recipe.schedule == "linear":
            return 1.0 - t
        if recipe.schedule == "step":
            return 0.9 ** ((step - warm) // max(1, steps_per_epoch))
        return 1.0

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
