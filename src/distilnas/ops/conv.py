"""A convolution call that avoids a oneDNN defect on CPUs without AVX-512.

oneDNN 3.12 (PyTorch 2.13's CPU build) corrupts the heap in the weight gradient of a *strided 1x1*
convolution on channels-last inputs with few input channels (seen with 2 or 4 inputs and 8 outputs on
an AVX2-only AMD EPYC: ``jit_1x1:avx2 backward_weights``, then "double free or corruption" or a hang).
A 1x1 convolution with stride ``s`` and no padding equals the same convolution with stride 1 applied to
every ``s``-th pixel, ``conv1x1_s(x) = conv1x1_1(x[:, :, ::s, ::s])``: the output sizes agree
(``ceil(H / s)``) and every output sums the same products, so that form is used for every such call.
It costs one strided copy of a tensor ``s^2`` times smaller than the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv2d", "PointwiseConv2d"]


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int | tuple[int, ...],
           padding: int | tuple[int, ...] | str, dilation: int | tuple[int, ...] = 1,
           groups: int = 1) -> torch.Tensor:
    """``F.conv2d`` with a strided 1x1 unpadded convolution run as subsample + stride-1 convolution."""
    sh, sw = _pair(stride)
    if (sh > 1 or sw > 1) and weight.shape[-2:] == (1, 1) and padding in (0, (0, 0), "valid"):
        return F.conv2d(x[:, :, ::sh, ::sw], weight, bias, 1, 0, dilation, groups)  # (B, C, ceil(H/s), ceil(W/s))
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


class PointwiseConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state-dict keys) whose forward goes through :func:`conv2d`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
