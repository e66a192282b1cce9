"""Pruning-at-initialisation saliencies summed into architecture scores.

As in Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021, sec. 3): a per-weight
saliency is summed over every Conv and Linear weight of the network. All use one batch, cross-entropy
loss, and BatchNorm with batch statistics (:func:`~distilnas.proxies.base.train_mode`).

- ``grad_norm``: sum over layers of ``||dL/dW||_2`` (Abdelfattah et al. 2021).
- ``snip``: ``sum |W * dL/dW|`` (Lee et al., "SNIP: Single-shot Network Pruning based on Connection
  Sensitivity", ICLR 2019, eq. 6 with the mask derivative written as W * dL/dW).
- ``grasp``: ``sum -W * (H g)`` with ``g = dL/dW`` and H the Hessian (Wang et al., "Picking Winning
  Tickets Before Training by Preserving Gradient Flow", ICLR 2020, eq. 8): g from a first pass without a
  graph, then ``H g = d(sum g * dL/dW)/dW`` by double backward; for networks with an op that has no
  double backward (hard-sigmoid SE gates), by central differences of the gradient in float64.
- ``fisher``: per channel ``0.5 * mean_n (sum_hw a * dL/da)^2`` of every Conv/Linear output a, summed
  (Theis et al., "Faster gaze prediction with dense networks and Fisher pruning", 2018; Turner et al.,
  "BlockSwap", ICLR 2020).
- ``synflow``: data-free: every parameter made positive, BatchNorm removed, float64, one all-ones input,
  ``R = sum(output)``, score ``log(sum |W * dR/dW|)`` (Tanaka et al., "Pruning neural networks without
  any data by iteratively conserving synaptic flow", NeurIPS 2020, eq. 2). The sum spans 1e30..1e60 on
  NB201, hence the log. The proxy works on a copy, so "restoring the signs" is keeping the original.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..train.evaluation import bn_layers
from .base import NumericalFailure, register_proxy, train_mode, weight_layers

__all__ = ["grad_norm", "snip", "grasp", "fisher", "synflow", "hessian_vector_fd"]


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in weight_layers(model)]


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                create_graph: bool = False) -> tuple[list[nn.Parameter], tuple[torch.Tensor, ...]]:
    train_mode(model)
    weights = _weights(model)
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, weights, create_graph=create_graph, allow_unused=True)
    return weights, tuple(torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads))


@register_proxy("grad_norm")
def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """Sum over Conv/Linear layers of the L2 norm of the loss gradient of the layer's weight."""
    _, grads = _loss_grads(model, x, y)
    return sum(g.norm().item() for g in grads)


@register_proxy("snip")
def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """Connection sensitivity ``sum |W * dL/dW|``."""
    weights, grads = _loss_grads(model, x, y)
    return sum((w.detach() * g).abs().sum().item() for w, g in zip(weights, grads))


@register_proxy("grasp")
def grasp(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """Gradient-flow preservation ``sum -W * (H g)``; two passes (the second one double-backward)."""
    _, g = _loss_grads(model, x, y)  # 1. g = dL/dW, no graph kept
    g = tuple(gi.detach() for gi in g)
    try:
        weights, grads = _loss_grads(model, x, y, create_graph=True)  # 2. dL/dW with its graph
        z = sum((gi * gr).sum() for gi, gr in zip(g, grads))
        hg = torch.autograd.grad(z, weights, allow_unused=True)  # 3. H g = d(g . dL/dW)/dW
    except RuntimeError as e:
        if "not implemented" not in str(e):
            raise
        weights, hg = _weights(model), hessian_vector_fd(model, x, y, g)  # an op without double backward
    return sum((-w.detach() * h).sum().item() for w, h in zip(weights, hg) if h is not None)


def hessian_vector_fd(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      v: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``H v`` of the loss w.r.t. the Conv/Linear weights by central differences of the gradient, in
    float64: ``(dL/dW(W + r v) - dL/dW(W - r v)) / 2r``. For networks with an op that has no double
    backward (e.g. ``hardsigmoid``, used by squeeze-excitation gates). Changes ``model`` to float64."""
    model.double()
    weights = _weights(model)
    v64 = [vi.double() for vi in v]
    v_norm = torch.sqrt(sum((vi * vi).sum() for vi in v64))
    if v_norm.item() == 0.0:
        return [torch.zeros_like(w) for w in weights]
    w_norm = torch.sqrt(sum((w.detach() * w.detach()).sum() for w in weights))
    r = (1e-6 * (1.0 + w_norm) / v_norm).item()
    x64 = x.double()
    grads = []
    for step in (r, -2.0 * r):  # to W + r v, then to W - r v
        with torch.no_grad():
            for w, vi in zip(weights, v64):
                w.add_(vi, alpha=step)
        grads.append(_loss_grads(model, x64, y)[1])
    with torch.no_grad():
        for w, vi in zip(weights, v64):
            w.add_(vi, alpha=r)
    return [(gp - gm) / (2.0 * r) for gp, gm in zip(*grads)]


@register_proxy("fisher")
def fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """Fisher information of the Conv/Linear output channels, summed.

    A forward hook keeps each layer output ``a`` (``(B, C, ...)``) and hands the network a clone, so
    that later in-place ops cannot change ``a``; the gradients of all outputs come from one backward.
    """
    train_mode(model)
    acts: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor:
        acts.append(out)
        return out.clone()

    hooks = [m.register_forward_hook(keep) for m in weight_layers(model)]
    try:
        loss = F.cross_entropy(model(x), y)
    finally:
        for h in hooks:
            h.remove()
    grads = torch.autograd.grad(loss, acts, allow_unused=True)
    total = 0.0
    for a, g in zip(acts, grads):
        if g is None:
            continue
        per_channel = (a.detach() * g).flatten(2).sum(-1) if a.dim() > 2 else a.detach() * g  # (B, C)
        total += (0.5 * per_channel.pow(2).mean(0)).sum().item()
    return total


@register_proxy("synflow", data=False)
def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """Synaptic flow ``log sum |W * dR/dW|`` of the all-positive, BatchNorm-free float64 network."""
    _remove_bn(model)
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    weights = _weights(model)
    ones = torch.ones(1, *x.shape[1:], dtype=torch.float64, device=x.device)  # (1, C, H, W)
    flow = model(ones).sum()
    grads = torch.autograd.grad(flow, weights, allow_unused=True)
    total = sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None)
    if not isinstance(total, torch.Tensor) or total.item() <= 0.0:
        raise NumericalFailure("zero synaptic flow (no path from input to output carries signal)")
    return total.log().item()


def _remove_bn(model: nn.Module) -> None:
    """Replace every BatchNorm layer of ``model`` by an identity."""
    bns = set(map(id, bn_layers(model)))
    slots = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
             if id(child) in bns]
    for parent, name in slots:
        setattr(parent, name, nn.Identity())
