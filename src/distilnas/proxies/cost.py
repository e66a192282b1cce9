"""Cost "proxies": the size of the network, which RD-NAS's official code uses as its ranking teacher
(Dong et al., ICASSP 2023; on NB201 CIFAR-10, Kendall tau x100 of FLOPs 52.92 and params 56.64, table 2).

Bigger = predicted better. FLOPs are ``torch.utils.flop_counter`` FLOPs (2 per multiply-add) at the input
size, via :func:`distilnas.spaces.count_flops`. :func:`~distilnas.proxies.compute` reads both from
``space.cost(arch)`` (an exact table for NB201) instead of building the network.
"""

from __future__ import annotations

import torch
from torch import nn

from ..spaces import count_flops, count_params
from .base import register_proxy

__all__ = ["params", "flops"]


@register_proxy("params", data=False, cost="params")
def params(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """Number of parameters."""
    return float(count_params(model))


@register_proxy("flops", data=False, cost="flops")
def flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """FLOPs of one forward pass of one input of ``x``'s shape."""
    return float(count_flops(model, tuple(x.shape[1:])))
