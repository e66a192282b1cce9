"""NAS-Bench-201 primitives (Dong & Yang, ICLR 2020, sec. 2.1).

``nor_conv_kxk`` is ReLU-Conv-BN; ``avg_pool_3x3`` does not count padded pixels; ``none`` outputs zeros;
``skip_connect`` is the identity. :class:`AvgPool3x3` computes the same numbers as
``nn.AvgPool2d(3, 1, 1, count_include_pad=False)`` as a fixed depthwise box filter divided by the
number of pixels in each window, which is 3-6x faster on CPUs (benchmarks/bench_ops.py). The reduction block between stages is a residual basic block
(two ReLU-Conv-BN 3x3 convolutions, the first with stride 2; shortcut = 2x2 average pool + 1x1 conv).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OPS", "ReLUConvBN", "Zero", "AvgPool3x3", "ResNetBasicBlock", "make_op"]


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Zero(nn.Module):
    """The ``none`` operation: an all-zero output of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class AvgPool3x3(nn.Module):
    """3x3 average pooling, stride 1, padding 1, padded pixels not counted.

    Same output as ``nn.AvgPool2d(3, 1, 1, count_include_pad=False)``: a depthwise convolution with an
    all-ones 3x3 kernel sums each window, and dividing by the window's pixel count (9 inside, 6 on an
    edge, 4 in a corner) averages it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C, H, W = x.shape[1:]
        ones = x.new_ones(C, 1, 3, 3)
        count = F.conv2d(x.new_ones(1, 1, H, W), ones[:1], padding=1)  # (1, 1, H, W) pixels per window
        return F.conv2d(x, ones, padding=1, groups=C) / count


class ResNetBasicBlock(nn.Module):
    """The residual reduction block of the NB201 skeleton (stride 2, channels c_in -> c_out)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, affine=affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, stride=1, affine=affine)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True),  # = official for even sizes
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


OPS = {
    "none": lambda c, affine: Zero(),
    "skip_connect": lambda c, affine: nn.Identity(),
    "nor_conv_1x1": lambda c, affine: ReLUConvBN(c, c, 1, affine=affine),
    "nor_conv_3x3": lambda c, affine: ReLUConvBN(c, c, 3, affine=affine),
    "avg_pool_3x3": lambda c, affine: AvgPool3x3(),
}


def make_op(name: str, channels: int, affine: bool = True) -> nn.Module:
    """Build one NB201 operation acting on ``channels`` channels (stride 1)."""
    return OPS[name](channels, affine)
