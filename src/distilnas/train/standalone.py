"""Train one fixed architecture from scratch with a fixed recipe (ground truth, retraining)."""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import opt
from ..data import Splits, make_loader
from .evaluation import evaluate, recalibrate_bn
from .optim import OPTIMIZERS, SCHEDULES, OptimConfig, make_optimizer

__all__ = ["Recipe", "TrainingDiverged", "train_standalone", "evaluate", "make_optimizer", "recipe_hash", "OPTIMIZERS",
           "SCHEDULES"]


@dataclass
class Recipe(OptimConfig):
    """A standalone training recipe: the optimiser and schedule (:class:`~distilnas.train.optim.OptimConfig`,
    the same type as the supernet's ``train`` section) with the standalone defaults, plus weight averaging."""

    epochs: int = opt(12, ge=1)
    lr: float = opt(0.1, gt=0)
    ema_decay: float = opt(0.0, ge=0, lt=1)  # exponential moving average of the weights for evaluation (0 = off)
    # torch.compile the training forward/backward (inductor): 0.76-0.85x the eager step on CPUs, but the
    # first step compiles (40-60 CPU s per architecture; 1-3.5 s with inductor's on-disk cache warm) and the
    # numbers are not bit-identical to eager; pays off from a few thousand steps (a 30-epoch retraining),
    # not for a 468-step ground-truth run (docs/performance.md). Evaluation stays eager.
    compile: bool = False


# Fields added after the first ground-truth tables were built: left out of the hash while they keep
# their default value, so those tables stay valid.
_LATER_FIELDS = ("optimizer", "schedule", "no_decay_bn_bias", "ema_decay", "compile")


def recipe_hash(recipe: Recipe, extra: dict | None = None) -> str:
    """A short stable hash of the recipe (and anything else that changes results, e.g. the space)."""
    fields = asdict(recipe)
    default = Recipe()
    for name in _LATER_FIELDS:
        if fields[name] == getattr(default, name):
            del fields[name]
    blob = json.dumps({"recipe": fields, **(extra or {})}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


EMA_BN_BATCHES = 100  # training batches that re-estimate BatchNorm statistics for EMA weights


def load_ema(model: nn.Module, averaged: nn.Module, loader: Iterable) -> None:
    """Copy the averaged parameters into ``model`` and re-estimate its BatchNorm statistics for them
    (reset, cumulative average over up to :data:`EMA_BN_BATCHES` batches of ``loader``; the way PyTorch's
    ``swa_utils.update_bn`` finishes an averaged model)."""

    with torch.no_grad():
        for p, q in zip(model.parameters(), averaged.parameters()):
            p.copy_(q)
    recalibrate_bn(model, (xb for xb, _ in itertools.islice(loader, EMA_BN_BATCHES)))


class TrainingDiverged(RuntimeError):
    """Standalone training met a non-finite loss: no result is written for it."""


def train_standalone(model: nn.Module, data: Splits, recipe: Recipe, seed: int,
                     device: str | torch.device = "cpu", augment: bool = False,
                     eval_sets: tuple[str, ...] = ("val", "test"), channels_last: bool = True,
                     progress: bool = False, log_epochs: bool = False) -> dict[str, float]:
    """Train ``model`` on ``data.train`` with ``recipe`` and return metrics on ``eval_sets``.

    The batch order is drawn from a generator seeded with ``seed``; the caller seeds initialisation.
    ``channels_last`` runs the model in that memory format (faster on CPUs; same numbers);
    ``log_epochs`` writes one line per epoch (mean training loss, seconds) to stderr;
    ``recipe.compile`` trains through ``torch.compile(model)`` (evaluation stays eager). With
    ``recipe.ema_decay`` the returned metrics (and ``model``'s weights afterwards) are those of the
    exponential moving average of the parameters, with BatchNorm statistics re-estimated for the averaged
    weights (:data:`EMA_BN_BATCHES` training batches, cumulative average): averaging the running
    statistics along with the weights (``AveragedModel(use_buffers=True)``) left statistics that did not
    match the averaged weights, and chance accuracy, on the MobileNet space.
    """
    from ..progress import progress_bar

    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed)
    x, y = data.train_x.to(device), data.train_y.to(device)
    pad = 4 if x.shape[-1] >= 32 else 2
    loader = make_loader(x, y, recipe.batch_size, shuffle=True, drop_last=True, generator=gen,
                         augment=augment, pad=pad, channels_last=channels_last)
    steps = recipe.epochs * len(loader)
    opt, sched = make_optimizer(model, recipe, steps, len(loader))
    ema = None
    if recipe.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=False)
    net = model
    if recipe.compile:
        torch.compiler.reset()  # one compiled network at a time: earlier runs' graphs would count towards
        net = torch.compile(model)  # dynamo's recompile limit (and the network is static: one graph)
    bar = progress_bar(total=steps, desc="train", disable=not progress)
    for epoch in range(recipe.epochs):
        t0, loss_sum, n = time.time(), 0.0, 0
        total = torch.zeros((), device=device)  # the epoch's summed loss, checked once per epoch (no sync per step)
        for xb, yb in loader:
            loss = F.cross_entropy(net(xb), yb, label_smoothing=recipe.label_smoothing)
            total += loss.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            bar.update(1)
            if log_epochs:
                loss_sum, n = loss_sum + loss.item() * len(yb), n + len(yb)
        if not torch.isfinite(total):
            bar.close()
            clip = (f"lower recipe.grad_clip (now {recipe.grad_clip:g})" if recipe.grad_clip > 0
                    else "set recipe.grad_clip (now off)")
            raise TrainingDiverged(f"training diverged: a non-finite loss in epoch {epoch + 1}; lower recipe.lr "
                                   f"(now {recipe.lr:g}) or {clip}")
        bar.set_postfix_str(f"ep {epoch + 1}/{recipe.epochs} loss {loss.item():.3f}")
        if log_epochs:
            bar.write(f"epoch {epoch + 1}/{recipe.epochs}: loss {loss_sum / max(1, n):.4f} "
                      f"({time.time() - t0:.0f}s)", file=sys.stderr)
    bar.close()
    if ema is not None:
        load_ema(model, ema.module, loader)
    model.eval()
    out: dict[str, float] = {}
    for name in eval_sets:
        ex, ey = getattr(data, f"{name}_x").to(device), getattr(data, f"{name}_y").to(device)
        if channels_last and ex.dim() == 4:
            ex = ex.contiguous(memory_format=torch.channels_last)
        for k, v in evaluate(model, ex, ey).items():
            out[f"{name}_{k}"] = v
    return out
