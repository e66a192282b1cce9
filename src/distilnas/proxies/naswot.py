"""Proxies from how an untrained network separates the inputs of one batch.

- ``jacob_cov`` (Mellor et al., "Neural Architecture Search without Training", arXiv v1 2020, eq. 2; the
  version evaluated by Abdelfattah et al. 2021): ``J_n = d(sum y)/dx_n`` flattened per sample, ``C`` =
  ``corrcoef(J)`` (B x B) with eigenvalues ``l``, score ``-sum(log(l + k) + 1 / (l + k))``, ``k = 1e-5``.
  ``C`` is symmetric, so the eigenvalues come from ``eigvalsh`` in float64 (the reference code's general
  ``eig`` can return complex values). A constant Jacobian row (e.g. a network that ignores its input)
  makes ``C`` undefined: NaN.
- ``nwot`` (Mellor et al., ICML 2021, eq. 2): each activation unit's binary code ``c = [input > 0]`` per
  sample; ``K = sum over activations of c c^T + (1 - c)(1 - c)^T`` (= units minus Hamming distance);
  score ``log|det K|`` (``slogdet``). The paper hooks ``nn.ReLU`` modules. Networks also call
  ``F.relu`` directly (the ResNet space) or use Swish / h-swish (the MobileNet space), so the codes are
  read from the input of every call of a function in :data:`ACTIVATIONS`, intercepted by a
  ``TorchFunctionMode`` (``nn.ReLU`` calls ``F.relu``, so modules are covered once; an in-place
  activation is read before it overwrites its input). Gates (sigmoid, hard-sigmoid) are not activations.
  The kernel is unnormalised, so networks with more activation units score higher. A singular ``K``
  gives NaN. Every call counts, also on an all-zero input, whose code (all 0) adds 1 per unit to every
  entry of ``K``: the official NB201 network calls ReLU on every non-``none`` edge, so its values need
  ``space.dead_edges: full`` (the other modes leave out edges that carry no signal).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .base import NumericalFailure, register_proxy, train_mode

__all__ = ["jacob_cov", "nwot", "ACTIVATIONS", "JACOB_K"]

JACOB_K = 1e-5
ACTIVATIONS: frozenset[object] = frozenset({
    F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.hardtanh,  # nn.ReLU6 = hardtanh
    F.leaky_relu, F.prelu, F.elu, F.silu, F.hardswish, F.mish, F.gelu,
})
"""Activation functions whose input signs form the NASWOT codes."""


@register_proxy("jacob_cov")
def jacob_cov(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """Correlation of the input Jacobians across the batch: higher = less correlated = better."""
    train_mode(model)
    x = x.detach().clone().requires_grad_(True)
    (jac,) = torch.autograd.grad(model(x).sum(), x)
    jac = jac.flatten(1).double()  # (B, C*H*W)
    if bool((jac.std(dim=1) == 0).any()):
        raise NumericalFailure("a constant input Jacobian (the output does not depend on the input), "
                               "so the correlation matrix is undefined")
    corr = torch.corrcoef(jac)  # (B, B)
    if not bool(torch.isfinite(corr).all()):
        raise NumericalFailure("non-finite Jacobian correlation matrix")
    eig = torch.linalg.eigvalsh(corr)
    return -(torch.log(eig + JACOB_K) + 1.0 / (eig + JACOB_K)).sum().item()


@register_proxy("nwot")
def nwot(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """NASWOT: log-determinant of the Hamming-similarity kernel of the activation codes."""
    train_mode(model)
    B = x.shape[0]
    kernel = torch.zeros(B, B, dtype=torch.float64, device=x.device)

    def add_codes(inp: torch.Tensor) -> None:
        c = (inp.detach() > 0).flatten(1).float()  # (B, units); 0/1 products sum exactly in float32
        kernel.add_((c @ c.T + (1.0 - c) @ (1.0 - c).T).double())

    with _OnActivations(add_codes), torch.no_grad():
        model(x)
    if not bool(kernel.any()):
        raise NumericalFailure("the network calls no activation function (nothing to code)")
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign.item() <= 0:
        raise NumericalFailure("singular activation-code kernel (two inputs share every code)")
    return logdet.item()


class _OnActivations(TorchFunctionMode):
    """Calls ``fn(input)`` before every call of a function in :data:`ACTIVATIONS`."""

    def __init__(self, fn: Callable[[torch.Tensor], None]) -> None:
        super().__init__()
        self.fn = fn

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch protocol)
        if func in ACTIVATIONS and args and isinstance(args[0], torch.Tensor):
            self.fn(args[0])
        return func(*args, **(kwargs or {}))
