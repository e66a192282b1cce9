"""Train one fixed architecture from scratch with a fixed recipe (ground truth, retraining)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Splits, TensorLoader

__all__ = ["Recipe", "train_standalone", "evaluate", "make_optimizer", "recipe_hash"]


@dataclass
class Recipe:
    """A standalone training recipe (also the supernet's optimiser settings)."""

    epochs: int = 12
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0  # linear warm-up before the cosine decay
    label_smoothing: float = 0.0
    grad_clip: float = 5.0  # max global grad norm; 0 = off


def recipe_hash(recipe: Recipe, extra: dict | None = None) -> str:
    """A short stable hash of the recipe (and anything else that changes results, e.g. the space)."""
    blob = json.dumps({"recipe": asdict(recipe), **(extra or {})}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_optimizer(params, recipe: Recipe, steps_total: int, steps_per_epoch: int):
    """SGD with (optional) linear warm-up then cosine decay to 0, stepped once per iteration."""
    opt = torch.optim.SGD(
        params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov and recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
    )
    warm = int(recipe.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, steps_total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def evaluate(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             batch_size: int = 1000) -> dict[str, float]:
    """Top-1 accuracy (%) and mean cross-entropy of ``model`` on ``(x, y)``."""
    correct, loss_sum = 0, 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        yb = y[i:i + batch_size]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    n = max(1, len(x))
    return {"accuracy": 100.0 * correct / n, "loss": loss_sum / n}


def train_standalone(model: nn.Module, data: Splits, recipe: Recipe, seed: int,
                     device: str | torch.device = "cpu", augment: bool = False,
                     eval_sets: tuple[str, ...] = ("val", "test")) -> dict[str, float]:
    """Train ``model`` on ``data.train`` with ``recipe`` and return metrics on ``eval_sets``.

    The batch order is drawn from a generator seeded with ``seed``; the caller seeds initialisation.
    """
    model.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    x, y = data.train_x.to(device), data.train_y.to(device)
    pad = 4 if x.shape[-1] >= 32 else 2
    loader = TensorLoader(x, y, recipe.batch_size, shuffle=True, drop_last=True, generator=gen,
                          augment=augment, pad=pad)
    steps = recipe.epochs * len(loader)
    opt, sched = make_optimizer(model.parameters(), recipe, steps, len(loader))
    for _ in range(recipe.epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb, label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            sched.step()
    model.eval()
    out: dict[str, float] = {}
    for name in eval_sets:
        ex, ey = getattr(data, f"{name}_x").to(device), getattr(data, f"{name}_y").to(device)
        for k, v in evaluate(model, ex, ey).items():
            out[f"{name}_{k}"] = v
    return out
