"""Inverted-residual (MBConv) blocks and their choice layers, for Cream's and DNA's MobileNet-like spaces.

Blocks (Sandler et al., "MobileNetV2", CVPR 2018; Tan & Le, "EfficientNet", ICML 2019; the choice block of
Cream, Peng et al., NeurIPS 2020, and DNA, Li et al., CVPR 2020):

- :class:`MBConv` ``kKeE``: 1x1 expansion to ``E * C_in`` channels - BN - act, depthwise ``K x K`` (stride s)
  - BN - act, squeeze-and-excitation, 1x1 projection - BN; a residual connection when ``C_in == C_out``
  and ``s == 1``.
- :class:`SqueezeExcite`: global average pool, 1x1 conv to a bottleneck width (:func:`se_channels`:
  ``make_divisible(se_ratio * expanded, 8)`` in Cream's blocks, ``se_ratio * C_in`` in EfficientNet's),
  ReLU, 1x1 conv back, hard-sigmoid gate ``relu6(x + 3) / 6`` (Cream).
- :class:`DepthwiseSeparable`: depthwise ``K x K`` - BN - act, SE, 1x1 - BN (+ residual): Cream's fixed
  first stage.

Op codes: ``k{K}e{E}`` for an MBConv and ``id`` for the identity (a skipped layer, which is how depth is
searched). A stage is a list of codes; because an identity layer is a no-op, its canonical form keeps the
order of the real ops and moves every ``id`` to the end (:func:`canonical_codes`).

Weight sharing: **separate ops per choice**. Each :class:`MBChoiceLayer` holds one complete
:class:`MBConv` per (kernel, expansion) pair and a path runs one of them. The alternative, one ``k_max
e_max`` weight per layer with centre-cropped kernels and a prefix of the expanded channels (OFA/NNI
style), is implemented in ``benchmarks/bench_mbconv.py`` and was measured against this one (median SGD
step of 40 sampled paths; docs/spaces/mobilenet.md has the tables): the step time is a wash (sliced /
separate = 1.31 on fmnist16, batch 128, one CPU core, channels_last; 1.10 without channels_last; 0.84 for
the imagenet preset at 96 px on one core; 1.12 and 0.99 on an H100 at 224 px, batch 128) and so is the
peak memory (0.92-0.99: activations dominate); slicing only saves parameters (3.4-4x fewer: 5.1M instead
of 17.3M for the imagenet supernet, i.e. smaller checkpoints). Separate ops are kept because they are
simpler (no sliced BatchNorm, whose running statistics and cumulative-average recalibration would need
their own code), they are what Cream's and DNA's official supernets do (every candidate op has its own
weights, SPOS style, so a k3 op is not forced to be the centre of a k7 op), and extraction is a plain
copy of the chosen op.

:class:`StageSpec` describes a stage (in/out widths, first-layer stride, maximum depth, kernel and
expansion choices, SE, activation, identity option); ``spec.supernet()`` gives a :class:`ChoiceStage`
with ``forward(x, codes)`` and ``extract(codes)``, and ``spec.build(codes)`` a fresh standalone stage.
They work on their own, e.g. for DNA's blockwise supernets.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import ArchError

__all__ = [
    "ACTIVATIONS", "IDENTITY", "SE_RULES", "se_channels", "make_divisible", "make_act", "conv2d", "op_code", "parse_op", "canonical_codes",
    "standalone_copy", "SqueezeExcite", "ConvBNAct", "DepthwiseSeparable", "MBConv", "MBChoiceLayer",
    "StageSpec", "ChoiceStage",
]

IDENTITY = "id"
"""The op code of a skipped layer."""

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "swish": nn.SiLU,
    "relu": nn.ReLU,
    "hswish": nn.Hardswish,
}

_OP_RE = re.compile(r"k(\d+)e(\d+)")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` (at least ``divisor``), never going
    more than 10% below ``value`` (MobileNet's ``make_divisible``)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def make_act(name: str) -> nn.Module:
    """A fresh activation module by name (``swish``, ``relu``, ``hswish``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


def conv2d(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """A 'same'-padded convolution initialised as in EfficientNet and Cream's code (timm's
    ``_init_weight_goog`` with ``fix_group_fanout``): N(0, 2 / fan_out) with fan_out = k * k * c_out / groups,
    zero bias. Per group, so a depthwise filter starts at the scale of a dense one (PyTorch's
    ``kaiming_normal_`` ignores groups: k5e6 at 24 input channels would start at std 0.024 instead of 0.283)."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=bias)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (kernel * kernel * c_out // groups)))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def op_code(kernel: int, expansion: int) -> str:
    """The code of an MBConv op, e.g. ``op_code(5, 6) == "k5e6"``."""
    return f"k{kernel}e{expansion}"


def parse_op(code: str) -> tuple[int, int] | None:
    """``(kernel, expansion)`` of an op code, ``None`` for ``id``; :class:`ArchError` when malformed."""
    if code == IDENTITY:
        return None
    m = _OP_RE.fullmatch(code)
    if m is None:
        raise ArchError(f"malformed op code {code!r}; expected 'k<kernel>e<expansion>' such as k3e4, or 'id'")
    return int(m.group(1)), int(m.group(2))


def canonical_codes(codes: Sequence[str]) -> tuple[str, ...]:
    """The canonical form of one stage: real ops in their order, then every ``id``."""
    ops = [c for c in codes if c != IDENTITY]
    return tuple(ops) + (IDENTITY,) * (len(codes) - len(ops))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with a ReLU bottleneck and a hard-sigmoid gate."""

    def __init__(self, channels: int, se_channels: int) -> None:
        super().__init__()
        self.reduce = conv2d(channels, se_channels, 1, bias=True)
        self.expand = conv2d(se_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.expand(F.relu(self.reduce(s)))
        return x * F.relu6(s + 3.0) / 6.0  # hard sigmoid, written out: it has a double backward (Cream's meta step)


class ConvBNAct(nn.Sequential):
    """Convolution - BatchNorm - activation (``act=None``: no activation)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: str | None = "swish") -> None:
        layers: list[nn.Module] = [conv2d(c_in, c_out, kernel, stride, groups), nn.BatchNorm2d(c_out)]
        if act is not None:
            layers.append(make_act(act))
        super().__init__(*layers)


SE_RULES = ("cream", "input")


def se_channels(c_in: int, mid: int, se_ratio: float, rule: str = "input") -> int:
    """The squeeze-excite bottleneck width of a block with input width ``c_in`` and expanded width ``mid``:
    ``cream``: make_divisible(se_ratio x mid, 8), the rule of Cream's blocks (timm's ``reduce_mid=True,
    divisor=8``; e.g. 24 for input 16 at expansion 6); ``input``: int(se_ratio x c_in) (at least 1),
    the rule of EfficientNet/MobileNetV3 (e.g. 4 for input 16)."""
    if rule == "cream":
        return make_divisible(se_ratio * mid, 8)
    if rule == "input":
        return max(1, int(c_in * se_ratio))
    raise ValueError(f"unknown SE width rule {rule!r}; choose one of {', '.join(SE_RULES)}")


class DepthwiseSeparable(nn.Module):
    """Depthwise ``k x k`` - BN - act, SE, pointwise - BN, plus a residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, se_ratio: float = 0.25,
                 act: str = "swish", se_rule: str = "input") -> None:
        super().__init__()
        self.dw = ConvBNAct(c_in, c_in, kernel, stride, groups=c_in, act=act)
        self.se = SqueezeExcite(c_in, se_channels(c_in, c_in, se_ratio, se_rule)) if se_ratio > 0 else nn.Identity()
        self.pw = ConvBNAct(c_in, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.se(self.dw(x)))
        return x + y if self.residual else y


class MBConv(nn.Module):
    """The inverted residual block ``k{kernel}e{expansion}`` (see the module docstring)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int = 1,
                 se_ratio: float = 0.25, act: str = "swish", se_rule: str = "input") -> None:
        super().__init__()
        mid = c_in * expansion
        self.expand = ConvBNAct(c_in, mid, 1, act=act)
        self.dw = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, se_channels(c_in, mid, se_ratio, se_rule)) if se_ratio > 0 else nn.Identity()
        self.project = ConvBNAct(mid, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))  # (B, C_out, H / s, W / s)
        return x + y if self.residual else y


def standalone_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with its weights, buffers, device and mode, without gradients."""
    out = copy.deepcopy(module)
    for p in out.parameters():
        p.grad = None
    return out


class MBChoiceLayer(nn.Module):
    """One searchable layer: an :class:`MBConv` per (kernel, expansion) pair, plus ``id`` when allowed.

    ``forward(x, code)`` runs the op ``code``; ``extract(code)`` returns a standalone copy of it
    (``nn.Identity`` for ``id``) carrying the trained weights.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, kernels: Sequence[int] = (3, 5, 7),
                 expansions: Sequence[int] = (4, 6), se_ratio: float = 0.25, act: str = "swish",
                 identity: bool = False, se_rule: str = "input") -> None:
        super().__init__()
        if identity and (c_in != c_out or stride != 1):
            raise ValueError(f"an identity choice needs c_in == c_out and stride 1, got {c_in}->{c_out} "
                             f"stride {stride}")
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.ops = nn.ModuleDict({
            op_code(k, e): MBConv(c_in, c_out, k, e, stride, se_ratio, act, se_rule)
            for k in kernels for e in expansions
        })
        self.choices: tuple[str, ...] = tuple(self.ops) + ((IDENTITY,) if identity else ())

    def _check(self, code: str) -> None:
        if code not in self.choices:
            raise ArchError(f"op {code!r} is not a choice of this layer; choose one of {', '.join(self.choices)}")

    def forward(self, x: torch.Tensor, code: str) -> torch.Tensor:
        self._check(code)
        return x if code == IDENTITY else self.ops[code](x)

    def extract(self, code: str) -> nn.Module:
        self._check(code)
        return nn.Identity() if code == IDENTITY else standalone_copy(self.ops[code])


@dataclass(frozen=True)
class StageSpec:
    """A stage of choice layers mapping ``in_channels`` to ``out_channels``.

    Layer 0 has stride ``stride``, the others stride 1. Without ``hidden_channels`` every layer outputs
    ``out_channels``; with it (DNA's student blocks) layer 0 maps ``in -> hidden``, the middle layers keep
    ``hidden`` and the last maps ``hidden -> out``. With ``identity`` every layer after the first whose
    input and output widths agree may be ``id``, which makes the depth searchable up to ``depth``.
    """

    in_channels: int
    out_channels: int
    depth: int
    stride: int = 1
    kernels: tuple[int, ...] = (3, 5, 7)
    expansions: tuple[int, ...] = (4, 6)
    se_ratio: float = 0.25
    act: str = "swish"
    identity: bool = True
    hidden_channels: int | None = None
    se_rule: str = "input"  # SE width: input (se_ratio x block input) or cream (make_divisible(se_ratio x expanded, 8))
    _widths: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"a stage needs depth >= 1, got {self.depth}")
        if not self.kernels or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels must be odd sizes, got {list(self.kernels)}")
        if not self.expansions or any(e < 1 for e in self.expansions):
            raise ValueError(f"expansions must be >= 1, got {list(self.expansions)}")
        make_act(self.act)
        object.__setattr__(self, "kernels", tuple(self.kernels))
        object.__setattr__(self, "expansions", tuple(self.expansions))
        hid = self.hidden_channels or self.out_channels
        widths = [self.in_channels] + [hid] * (self.depth - 1) + [self.out_channels]
        object.__setattr__(self, "_widths", tuple(widths))

    def layer_shapes(self) -> list[tuple[int, int, int]]:
        """``(c_in, c_out, stride)`` of each layer."""
        w = self._widths
        return [(w[i], w[i + 1], self.stride if i == 0 else 1) for i in range(self.depth)]

    def layer_identity(self, i: int) -> bool:
        c_in, c_out, _ = self.layer_shapes()[i]
        return self.identity and i > 0 and c_in == c_out

    def layer_choices(self) -> list[tuple[str, ...]]:
        """The op codes each layer may take, MBConv ops first (kernel-major), then ``id`` where allowed."""
        ops = tuple(op_code(k, e) for k in self.kernels for e in self.expansions)
        return [ops + ((IDENTITY,) if self.layer_identity(i) else ()) for i in range(self.depth)]

    def check(self, codes: Sequence[str]) -> None:
        """Raise :class:`ArchError` unless ``codes`` is one valid code per layer."""
        if len(codes) != self.depth:
            raise ArchError(f"a stage of depth {self.depth} needs {self.depth} op codes, got {len(codes)}: "
                            f"{'-'.join(codes)}")
        for i, (code, allowed) in enumerate(zip(codes, self.layer_choices())):
            if code not in allowed:
                raise ArchError(f"op {code!r} is not allowed at layer {i} of the stage; choose one of "
                                f"{', '.join(allowed)}")

    def make_op(self, i: int, code: str) -> nn.Module:
        """A fresh standalone op ``code`` for layer ``i`` (``nn.Identity`` for ``id``)."""
        parsed = parse_op(code)
        if parsed is None:
            return nn.Identity()
        c_in, c_out, stride = self.layer_shapes()[i]
        return MBConv(c_in, c_out, parsed[0], parsed[1], stride, self.se_ratio, self.act, self.se_rule)

    def build(self, codes: Sequence[str]) -> nn.Sequential:
        """A freshly initialised standalone stage running ``codes`` (identity layers left out)."""
        self.check(codes)
        return nn.Sequential(*[self.make_op(i, c) for i, c in enumerate(codes) if c != IDENTITY])

    def supernet(self) -> "ChoiceStage":
        return ChoiceStage(self)


class ChoiceStage(nn.Module):
    """The weight-sharing stage of a :class:`StageSpec`: one :class:`MBChoiceLayer` per layer.

    ``forward(x, codes)`` runs one op per layer; ``extract(codes)`` returns a plain ``nn.Sequential`` of
    the chosen ops with the trained weights (the structure of ``spec.build(codes)``).
    """

    def __init__(self, spec: StageSpec) -> None:
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList(
            MBChoiceLayer(c_in, c_out, stride, spec.kernels, spec.expansions, spec.se_ratio, spec.act,
                          identity=spec.layer_identity(i), se_rule=spec.se_rule)
            for i, (c_in, c_out, stride) in enumerate(spec.layer_shapes())
        )

    def forward(self, x: torch.Tensor, codes: Sequence[str]) -> torch.Tensor:
        self.spec.check(codes)
        for layer, code in zip(self.layers, codes):
            x = layer(x, code)
        return x

    def extract(self, codes: Sequence[str]) -> nn.Sequential:
        self.spec.check(codes)
        return nn.Sequential(*[layer.extract(c) for layer, c in zip(self.layers, codes) if c != IDENTITY])
