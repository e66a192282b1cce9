"""Weight-sharing layers for width search: every width uses a prefix of the widest layer's channels.

As in slimmable networks (Yu et al., ICLR 2019) and once-for-all (Cai et al., ICLR 2020): a layer holds
the weight of its widest configuration, and a narrower configuration with ``c_in`` input and ``c_out``
output channels uses ``weight[:c_out, :c_in]``, the first ``c`` BatchNorm affine parameters and running
statistics, and the first ``c_in`` inputs of the classifier. Slices are views, so no weight is copied
and gradients flow straight into the shared tensors; a full-width call uses the weight as it is.

:func:`copy_prefix` loads a plain network (``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` with the
same module names and narrower shapes) from a supernet's state: the extraction of a standalone subnet.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .conv import conv2d

__all__ = ["SlimConv2d", "SlimBatchNorm2d", "SlimLinear", "copy_prefix"]


class SlimConv2d(nn.Conv2d):
    """A bias-free (by default) convolution of the widest shape whose calls may use fewer channels.

    ``forward(x, out_channels)`` convolves with ``weight[:out_channels, :x.shape[1]]``: the input width is
    read from ``x``, the output width is asked for (default: the widest).
    """

    def __init__(self, max_in: int, max_out: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = False) -> None:
        super().__init__(max_in, max_out, kernel_size, stride=stride, padding=padding, bias=bias)

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:  # type: ignore[override]
        c_in, c_out = x.shape[1], out_channels or self.out_channels
        if c_in > self.in_channels or c_out > self.out_channels:
            raise ValueError(f"SlimConv2d of at most {self.in_channels}->{self.out_channels} channels "
                             f"asked for {c_in}->{c_out}")
        if c_in == self.in_channels and c_out == self.out_channels:
            weight, bias = self.weight, self.bias
        else:
            weight = self.weight[:c_out, :c_in]  # (c_out, c_in, k, k) view
            bias = None if self.bias is None else self.bias[:c_out]
        return conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class SlimBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first ``x.shape[1]`` channels of the widest layer.

    In training mode the running statistics of those channels are updated in place (the sliced buffers
    are views); the other channels' statistics are left alone. ``num_batches_tracked`` is shared by all
    widths, which only matters for ``momentum=None`` (cumulative averages, used by BN recalibration, where
    every batch passes each layer once).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        if c > self.num_features:
            raise ValueError(f"SlimBatchNorm2d of {self.num_features} channels got {c}")
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        batch_stats = self.training or self.running_mean is None
        mean = None if self.running_mean is None else self.running_mean[:c]
        var = None if self.running_var is None else self.running_var[:c]
        weight = None if self.weight is None else self.weight[:c]
        bias = None if self.bias is None else self.bias[:c]
        return F.batch_norm(x, mean, var, weight, bias, batch_stats, factor, self.eps)


class SlimLinear(nn.Linear):
    """A linear layer (the classifier) that reads only the first ``x.shape[-1]`` input features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_in = x.shape[-1]
        if c_in == self.in_features:
            return super().forward(x)
        if c_in > self.in_features:
            raise ValueError(f"SlimLinear of {self.in_features} inputs got {c_in}")
        return F.linear(x, self.weight[:, :c_in], self.bias)  # weight (out, c_in) view


@torch.no_grad()
def copy_prefix(target: nn.Module, source: Mapping[str, torch.Tensor]) -> None:
    """Fill every parameter and buffer of ``target`` with the leading block of the same-named tensor
    of ``source`` (a supernet's ``state_dict()``): ``target[k] = source[k][:n0, :n1, ...]``.

    Raises:
        KeyError: ``target`` has a tensor that ``source`` lacks.
        ValueError: a ``target`` tensor is larger than its ``source`` tensor in some dimension.
    """
    for name, dst in target.state_dict(keep_vars=True).items():
        src = source[name]
        if src.dim() != dst.dim() or any(d > s for d, s in zip(dst.shape, src.shape)):
            raise ValueError(f"cannot copy {name}: shape {tuple(dst.shape)} is not a prefix of {tuple(src.shape)}")
        dst.copy_(src[tuple(slice(0, n) for n in dst.shape)])
