"""Zen-score (Lin et al., "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition", ICCV 2021,
sec. 3, eqs. 5-7). Data-free.

1. Re-initialise every Conv/Linear weight from N(0, 1) (biases 0) and every BatchNorm to gamma 1, beta 0,
   drawing from the proxy's generator.
2. ``x ~ N(0, 1)`` of the batch's shape, ``x' = x + 0.01 * eps`` with ``eps ~ N(0, 1)``.
3. ``Delta = E_n sum |f(x) - f(x')|`` over the pre-pool feature map ``f`` (BatchNorm in train mode).
4. Score ``log Delta + sum over BN layers of log sqrt(mean_c sigma_c^2)``, where ``sigma_c^2`` is the
   variance of channel c of the BN layer's input over the batch of step 3's ``x`` (eq. 7).

Choices made to score any ``nn.Module`` (and where they differ from the paper):

- Pre-pool features: the input of the network's last global pooling, i.e. the last call of
  ``F.adaptive_avg_pool2d`` / ``F.avg_pool2d`` / ``mean`` whose input is a 4-D map bigger than 1x1 and
  whose output has no spatial extent left, found by a ``TorchFunctionMode`` (so ``nn.AdaptiveAvgPool2d``
  modules and ``x.mean((2, 3))`` in a ``forward`` are both seen). On NB201 and the ResNet space this is
  the final activation's output, as in the paper; squeeze-excitation pools come earlier and are
  overwritten. A network without such a pool falls back to its output. (A hook on the classifier's
  input would give the *post*-pool vector instead.)
- Residual links are **not** removed (the paper removes them before scoring); a generic module's
  residual additions live in its ``forward`` code and cannot be cut from outside.
- ``sigma_c^2`` is the (biased) batch variance that BN normalises with, the paper's definition. The
  official code reads BN ``running_var`` after its two forward passes instead. That is *not* "still about
  1": the Gaussian inputs and weights give running variances of 1.3-43 after those passes (measured by a
  review on NB201 cells), and the two versions rank architectures alike but not identically (Kendall tau
  0.88 between them). We keep the paper's definition.
- A BN layer whose input has zero variance (all zeros: on NB201 with ``dead_edges: full``, a
  ReLU-Conv-BN edge fed by an all-zero node) is left out of the sum: no signal passes through it, so it
  divides out no scale (a factor 1, adding 0), whereas ``log 0 = -inf`` would sink every such cell. The
  official code would read ``running_var = 0.9^2 = 0.81`` there after its two passes (momentum 0.1 from
  1), adding ``log 0.9`` per such layer: a penalty for the number of dead edges, not a scale. So ``full``
  scores as ``official`` but for the BN layers of edges into nodes that never reach the output, which
  only ``full`` runs (as the official network does).
- One draw of weights and inputs per score (the official search's ``repeat=1``). The official standalone
  script averages ``--repeat_times`` (32) draws without resetting the running variances, so a later draw
  reads running averages over the earlier draws' passes; score with several seeds and average for a
  repeated score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..train.evaluation import bn_layers
from .base import NumericalFailure, register_proxy, train_mode, weight_layers

__all__ = ["zen", "ZEN_MIXUP", "prepool_features"]

ZEN_MIXUP = 0.01  # the perturbation scale of x' (the paper's alpha)


@register_proxy("zen", data=False)
def zen(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator) -> float:
    """Zen-score of the Gaussian-initialised network on Gaussian inputs of ``x``'s shape."""
    _gaussian_init(model, generator)
    train_mode(model)
    shape, dev = x.shape, x.device
    x0 = torch.randn(shape, generator=generator).to(dev)  # (B, C, H, W)
    x1 = x0 + ZEN_MIXUP * torch.randn(shape, generator=generator).to(dev)
    variances: list[torch.Tensor] = []

    def batch_var(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        t = inputs[0].detach().transpose(0, 1).flatten(1)  # (C, B * spatial)
        variances.append(t.var(dim=1, unbiased=False).mean())

    hooks = [m.register_forward_pre_hook(batch_var) for m in bn_layers(model)]
    try:
        with torch.no_grad():
            f0 = prepool_features(model, x0)
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        f1 = prepool_features(model, x1)
    delta = (f0 - f1).abs().flatten(1).sum(1).mean()
    if not delta.item() > 0.0:
        raise NumericalFailure("the features do not change with the input (zero expressivity)")
    bn_term = sum((0.5 * torch.log(v)).item() for v in variances if v.item() > 0.0)  # 0: nothing flows through
    return delta.log().item() + bn_term


def prepool_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pre-pool feature map of ``model(x)``: the input of its last global pooling (else its output)."""
    with _LastGlobalPool() as pool:
        out = model(x)
    return out if pool.features is None else pool.features


class _LastGlobalPool(TorchFunctionMode):
    """Keeps the input of the latest global pooling call (4-D input bigger than 1x1, no spatial output)."""

    POOLS = frozenset({F.adaptive_avg_pool2d, F.avg_pool2d, torch.mean, torch.Tensor.mean})

    def __init__(self) -> None:
        super().__init__()
        self.features: torch.Tensor | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch protocol)
        out = func(*args, **(kwargs or {}))
        if func in self.POOLS and args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
            inp = args[0]
            pooled = out.dim() == 2 or (out.dim() == 4 and out.shape[2] * out.shape[3] == 1)
            if inp.dim() == 4 and inp.shape[2] * inp.shape[3] > 1 and pooled:
                self.features = inp
        return out


def _gaussian_init(model: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for m in weight_layers(model):
            m.weight.copy_(torch.randn(m.weight.shape, generator=generator))
            if m.bias is not None:
                m.bias.zero_()
        for bn in bn_layers(model):
            if bn.weight is not None:
                bn.weight.fill_(1.0)
                bn.bias.zero_()
