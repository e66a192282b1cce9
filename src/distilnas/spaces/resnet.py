"""The ResNet width/depth space of the CVPR 2022 NAS competition, track 1 ("ResNet48"), RD-NAS's second
benchmark (Dong et al., ICASSP 2023, sec. 4 and table 1).

Network: stem -> 4 stages of BasicBlocks -> global average pool -> linear classifier. A BasicBlock is
conv3x3-BN-ReLU-conv3x3-BN, plus its shortcut, then ReLU. The first block of stages 2-4 has stride 2 and a
1x1 conv-BN projection shortcut; every other shortcut is the identity. Stem ``"7x7"``: 7x7 stride-2
conv-BN-ReLU + 3x3 stride-2 max-pool (ImageNet); stem ``"3x3"``: 3x3 stride-1 conv-BN-ReLU (small inputs).
Track-1 values (the defaults): base widths 64/128/256/512; depth choices {2..5}, {2..5}, {2..8}, {2..5};
width ratios {1.0, 0.95, ..., 0.7}.

Width scheme. A residual add needs both operands to have one width, so every conv that writes into a
stage's residual stream (the stem for stage 1, each block's second conv, the stage's projection) shares
one searchable *stage width*; each block's first conv has its own *inner width*. With this tying every
identity shortcut stays valid and the projections sit exactly where a ResNet has them. (As far as we can
read it, the track-1 supernet, built with PaddleSlim's OFA, ties these convs in the same way while its
code keeps one digit per conv, so many of its 47 width digits have no effect; we keep one digit per free
width.) A width ratio r on a base width b gives ``max(d, d * floor(b * r / d + 1/2))`` channels: b * r
rounded half-up to the nearest multiple of ``d = channel_divisor`` (8 in track 1), at least d.

Code (the architecture string): a fixed-length string of digits,

    depth of every stage | per stage: its stage-width digit, then one inner-width digit per block slot

with ``max depth`` slots per stage. A depth digit is the depth itself; a width digit k >= 1 picks the k-th
entry of ``width_ratios`` (1 = 1.0 ... 7 = 0.7); slots past the stage's depth hold '0' (track-1's
zero padding). ResNet48 codes have 4 + 4 + 23 = 31 digits; the largest network is
``5585`` ``1 11111`` ``1 11111`` ``1 11111111`` ``1 11111`` (without the spaces).

The supernet shares weights by slicing channel prefixes (:mod:`distilnas.ops.slimmable`); fewer blocks
per stage skip the stage's last blocks. ``extract(arch)`` returns a plain standalone :class:`ResNet`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import ArchError
from ..config import ConfigError, opt
from ..ops.conv import PointwiseConv2d
from ..ops.slimmable import SlimBatchNorm2d, SlimConv2d, SlimLinear, copy_prefix
from .base import SPACES, SearchSpace, seeded

__all__ = ["ResNetArch", "ResNetConfig", "ResNetShape", "ResNetSpace", "ResNet", "ResNetSupernet",
           "round_channels"]

STEMS = ("7x7", "3x3")


# ---------------------------------------------------------------------------------------------------
# Architecture value
@dataclass(frozen=True)
class ResNetArch:
    """Depth and width codes of one subnet.

    Attributes:
        depths: blocks in each stage.
        widths: the stage-width code of each stage (1-based index into the ratio choices).
        inner: per stage, one inner-width code per block slot (the stage's max depth); 0 past the depth.
    """

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    inner: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.depths)
        if n == 0 or len(self.widths) != n or len(self.inner) != n:
            raise ArchError(f"a ResNet arch needs one depth, one width and one slot tuple per stage; got "
                            f"{len(self.depths)}/{len(self.widths)}/{len(self.inner)}")
        for s, (d, w, codes) in enumerate(zip(self.depths, self.widths, self.inner), start=1):
            if not 1 <= d <= len(codes):
                raise ArchError(f"stage {s}: depth {d} is outside 1..{len(codes)} (its number of block slots)")
            if not 1 <= w <= 9:
                raise ArchError(f"stage {s}: width code {w} must be a digit 1-9")
            if any(not 1 <= c <= 9 for c in codes[:d]):
                raise ArchError(f"stage {s}: block width codes {codes[:d]} must be digits 1-9 for the {d} blocks")
            if any(c != 0 for c in codes[d:]):
                raise ArchError(f"stage {s}: slots past depth {d} must be '0' (canonical form), got "
                                f"{''.join(map(str, codes[d:]))}")

    def __str__(self) -> str:
        parts = [str(d) for d in self.depths]
        for w, codes in zip(self.widths, self.inner):
            parts.append(str(w) + "".join(map(str, codes)))
        return "".join(parts)

    @property
    def slots(self) -> tuple[int, ...]:
        """Block slots per stage (the space's max depths), which fix the code's length."""
        return tuple(len(c) for c in self.inner)

    @classmethod
    def parse(cls, text: str, slots: tuple[int, ...]) -> "ResNetArch":
        """Parse a code laid out for ``slots`` block slots per stage; raises :class:`ArchError`."""
        s = text.strip()
        n = len(slots)
        length = n + sum(1 + k for k in slots)
        layout = (f"expected {length} digits: {n} depth digits, then per stage a width digit and "
                  f"{'/'.join(map(str, slots))} block digits ('0' past the depth)")
        if not s.isascii() or not s.isdigit():
            raise ArchError(f"malformed ResNet arch {text!r}: only digits allowed; {layout}")
        if len(s) != length:
            raise ArchError(f"malformed ResNet arch {text!r}: {len(s)} digits; {layout}")
        digits = [int(c) for c in s]
        depths, widths, inner, k = tuple(digits[:n]), [], [], n
        for m in slots:
            widths.append(digits[k])
            inner.append(tuple(digits[k + 1:k + 1 + m]))
            k += 1 + m
        try:
            return cls(depths, tuple(widths), tuple(inner))
        except ArchError as e:
            raise ArchError(f"malformed ResNet arch {text!r}: {e}") from None


@dataclass(frozen=True)
class ResNetShape:
    """Channel counts of one subnet: the width of each stage and the inner width of each present block."""

    stage_widths: tuple[int, ...]
    inner_widths: tuple[tuple[int, ...], ...]


# ---------------------------------------------------------------------------------------------------
# Config
@dataclass
class ResNetConfig:
    """Shape of the space. Defaults are CVPR 2022 track 1 (ResNet48 on ImageNet); the fmnist16 version
    is :meth:`fmnist16`."""

    base_widths: list[int] = opt(default_factory=lambda: [64, 128, 256, 512], ge=1)  # full width per stage
    depth_choices: list[list[int]] = opt(
        default_factory=lambda: [[2, 3, 4, 5], [2, 3, 4, 5], [2, 3, 4, 5, 6, 7, 8], [2, 3, 4, 5]], ge=1, le=9)
    width_ratios: list[float] = opt(
        default_factory=lambda: [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7], gt=0)  # code k = k-th ratio; at most 9
    channel_divisor: int = opt(8, ge=1)  # channels are rounded to a multiple of this
    stem: str = opt("7x7", choices=STEMS)  # "7x7": 7x7/2 conv + 3x3/2 max-pool; "3x3": 3x3/1 conv, no pool
    in_channels: int = opt(3, ge=1)
    input_size: int = opt(224, ge=1)
    num_classes: int = opt(1000, ge=1)

    def __post_init__(self) -> None:
        _check_config(self)  # list lengths and distinct choices, when the config is resolved

    @classmethod
    def fmnist16(cls) -> "ResNetConfig":
        """The scaled-down space for fmnist16 (1x16x16, 10 classes) on a CPU: quarter widths, 1-3 blocks
        per stage, a 3x3 stem, channels rounded to multiples of 4 (8 would leave stage 1 two widths)."""
        return cls(base_widths=[16, 32, 64, 128], depth_choices=[[1, 2], [1, 2], [1, 2, 3], [1, 2]],
                   channel_divisor=4, stem="3x3", in_channels=1, input_size=16, num_classes=10)


def round_channels(base: int, ratio: float, divisor: int) -> int:
    """``base * ratio`` rounded half-up to a multiple of ``divisor``, at least ``divisor``."""
    q = round(base * ratio / divisor, 9)  # drop float noise such as 36.00000000000001 before rounding
    return max(divisor, divisor * math.floor(q + 0.5))


def _check_config(cfg: ResNetConfig) -> None:
    n = len(cfg.base_widths)
    if n == 0 or len(cfg.depth_choices) != n:
        raise ConfigError(f"space.depth_choices needs one list per stage of space.base_widths ({n}), "
                          f"got {len(cfg.depth_choices)}")
    for s, ds in enumerate(cfg.depth_choices, start=1):
        if not ds or len(set(ds)) != len(ds) or any(not 1 <= d <= 9 for d in ds):
            raise ConfigError(f"space.depth_choices[{s - 1}]={ds}: need distinct depths in 1..9 (one digit each)")
    r = cfg.width_ratios
    if not r or len(r) > 9 or len(set(r)) != len(r) or any(x <= 0 for x in r):
        raise ConfigError(f"space.width_ratios={r}: need 1-9 distinct positive ratios (one digit each)")
    if cfg.stem not in STEMS:
        raise ConfigError(f"space.stem={cfg.stem!r}: choose one of {', '.join(STEMS)}")
    for key in ("channel_divisor", "in_channels", "input_size", "num_classes"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"space.{key} must be at least 1, got {getattr(cfg, key)}")
    if any(b < 1 for b in cfg.base_widths):
        raise ConfigError(f"space.base_widths={cfg.base_widths}: widths must be positive")


# ---------------------------------------------------------------------------------------------------
# Plain network
def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class BasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN + shortcut, ReLU; projection shortcut when ``project``."""

    def __init__(self, c_in: int, c_inner: int, c_out: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_inner, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_inner)
        self.conv2 = nn.Conv2d(c_inner, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.proj_conv = PointwiseConv2d(c_in, c_out, 1, stride, 0, bias=False) if project else None
        self.proj_bn = nn.BatchNorm2d(c_out) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        short = x if self.proj_conv is None else self.proj_bn(self.proj_conv(x))
        return F.relu(out + short, inplace=True)


def _stages(shape: ResNetShape, block: Callable[..., nn.Module]) -> tuple[nn.ModuleList, int]:
    """The stages of ``shape`` built from ``block(c_in, c_inner, c_out, stride, project)`` (the first block of
    every stage but the first halves the resolution, with a projected shortcut), and the last stage's width."""
    stages, c_in = [], shape.stage_widths[0]
    for s, (c_out, inner) in enumerate(zip(shape.stage_widths, shape.inner_widths)):
        blocks = []
        for b, c_mid in enumerate(inner):
            first = b == 0 and s > 0
            blocks.append(block(c_in, c_mid, c_out, 2 if first else 1, project=first))
            c_in = c_out
        stages.append(nn.ModuleList(blocks))
    return nn.ModuleList(stages), c_in


class ResNet(nn.Module):
    """A standalone network of the space (plain layers), with the channel counts of ``shape``."""

    def __init__(self, cfg: ResNetConfig, shape: ResNetShape) -> None:
        super().__init__()
        k, stride = (7, 2) if cfg.stem == "7x7" else (3, 1)
        c0 = shape.stage_widths[0]
        self.stem_conv = nn.Conv2d(cfg.in_channels, c0, k, stride, k // 2, bias=False)
        self.stem_bn = nn.BatchNorm2d(c0)
        self.pool = cfg.stem == "7x7"
        self.stages, c_last = _stages(shape, BasicBlock)
        self.fc = nn.Linear(c_last, cfg.num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem_conv(x)), inplace=True)  # (B, C0, H', W')
        if self.pool:
            x = F.max_pool2d(x, 3, 2, 1)
        for stage in self.stages:
            for block in stage:
                x = block(x)
        return self.fc(x.mean(dim=(2, 3)))  # (B, C_last) -> (B, classes)


# ---------------------------------------------------------------------------------------------------
# Supernet
class SlimBasicBlock(nn.Module):
    """:class:`BasicBlock` at its widest; ``forward(x, c_inner, c_out)`` runs a narrower one."""

    def __init__(self, c_in: int, c_inner: int, c_out: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv1 = SlimConv2d(c_in, c_inner, 3, stride, 1)
        self.bn1 = SlimBatchNorm2d(c_inner)
        self.conv2 = SlimConv2d(c_inner, c_out, 3, 1, 1)
        self.bn2 = SlimBatchNorm2d(c_out)
        self.proj_conv = SlimConv2d(c_in, c_out, 1, stride, 0) if project else None
        self.proj_bn = SlimBatchNorm2d(c_out) if project else None

    def forward(self, x: torch.Tensor, c_inner: int, c_out: int) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x, c_inner)), inplace=True)
        out = self.bn2(self.conv2(out, c_out))
        short = x if self.proj_conv is None else self.proj_bn(self.proj_conv(x, c_out))
        return F.relu(out + short, inplace=True)


class ResNetSupernet(nn.Module):
    """The weight-sharing supernet: every stage at its max depth, every conv at its widest.

    ``forward(x, arch)`` runs the subnet ``arch`` (its first ``depth`` blocks per stage, channel prefixes);
    ``extract(arch)`` returns it as a standalone :class:`ResNet` holding the shared weights.
    """

    def __init__(self, space: "ResNetSpace") -> None:
        super().__init__()
        self.space = space
        cfg = space.cfg
        widest = space.shape(space.largest())
        k, stride = (7, 2) if cfg.stem == "7x7" else (3, 1)
        c0 = widest.stage_widths[0]
        self.stem_conv = SlimConv2d(cfg.in_channels, c0, k, stride, k // 2)
        self.stem_bn = SlimBatchNorm2d(c0)
        self.pool = cfg.stem == "7x7"
        self.stages, c_last = _stages(widest, SlimBasicBlock)
        self.fc = SlimLinear(c_last, cfg.num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor, arch: ResNetArch | None = None) -> torch.Tensor:
        if arch is None:
            raise ValueError("a supernet forward needs the path: model(x, arch)")
        shape = self.space.shape(arch)
        x = F.relu(self.stem_bn(self.stem_conv(x, shape.stage_widths[0])), inplace=True)
        if self.pool:
            x = F.max_pool2d(x, 3, 2, 1)
        for stage, c_out, inner in zip(self.stages, shape.stage_widths, shape.inner_widths):
            for block, c_mid in zip(stage, inner):  # the first len(inner) = depth blocks
                x = block(x, c_mid, c_out)
        return self.fc(x.mean(dim=(2, 3)))  # (B, c_last) -> (B, classes)

    def extract(self, arch: ResNetArch) -> ResNet:
        """A standalone network for ``arch`` carrying this supernet's weights and BN statistics."""
        net = ResNet(self.space.cfg, self.space.shape(arch))
        copy_prefix(net, self.state_dict())
        return net.to(next(self.parameters()).device)


# ---------------------------------------------------------------------------------------------------
# Space
@SPACES.register("resnet")
class ResNetSpace(SearchSpace[ResNetArch]):
    """Per stage a depth ``depth_{s}`` and a stage width ``width_{s}``, and per block slot an inner width
    ``inner_{s}_{b}`` (ignored past the depth); width options are the ratios."""

    name = "resnet"
    Config = ResNetConfig

    def __init__(self, cfg: ResNetConfig | None = None) -> None:
        self.cfg = cfg or ResNetConfig()
        _check_config(self.cfg)
        self.depths = tuple(tuple(d) for d in self.cfg.depth_choices)
        self.slots = tuple(max(d) for d in self.depths)
        self.ratios = tuple(self.cfg.width_ratios)
        codes = range(1, len(self.ratios) + 1)
        self._big = max(codes, key=lambda k: self.ratios[k - 1])
        self._small = min(codes, key=lambda k: self.ratios[k - 1])
        # channels[s][k]: channels of width code k in stage s (index 0 unused)
        self.channels = tuple((0,) + tuple(round_channels(b, r, self.cfg.channel_divisor) for r in self.ratios)
                              for b in self.cfg.base_widths)

    # -- choices ------------------------------------------------------------------------------------
    @property
    def choices(self) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {}
        for s, slots in enumerate(self.slots, start=1):
            out[f"depth_{s}"] = self.depths[s - 1]
            out[f"width_{s}"] = self.ratios
            for b in range(1, slots + 1):
                out[f"inner_{s}_{b}"] = self.ratios
        return out

    def to_choices(self, arch: ResNetArch) -> dict[str, Any]:
        """The labels of ``arch`` (inner widths past a stage's depth, which it ignores, as the first ratio)."""
        out: dict[str, Any] = {}
        for s, slots in enumerate(self.slots, start=1):
            out[f"depth_{s}"] = arch.depths[s - 1]
            out[f"width_{s}"] = self.ratios[arch.widths[s - 1] - 1]
            for b in range(1, slots + 1):
                c = arch.inner[s - 1][b - 1]
                out[f"inner_{s}_{b}"] = self.ratios[c - 1] if c else self.ratios[0]
        return out

    def from_choices(self, sample: dict[str, Any]) -> ResNetArch:
        """The arch of a ``{label: option}`` sample (inner widths past a stage's depth are ignored)."""
        code = {r: k for k, r in enumerate(self.ratios, start=1)}
        depths, widths, inner = [], [], []
        for s, slots in enumerate(self.slots, start=1):
            d = sample[f"depth_{s}"]
            depths.append(d)
            widths.append(code[sample[f"width_{s}"]])
            inner.append(tuple(code[sample[f"inner_{s}_{b}"]] if b <= d else 0 for b in range(1, slots + 1)))
        arch = ResNetArch(tuple(depths), tuple(widths), tuple(inner))
        self.check(arch)
        return arch

    def parse(self, text: str) -> ResNetArch:
        arch = ResNetArch.parse(text, self.slots)
        try:
            self.check(arch)
        except ArchError as e:
            raise ArchError(f"ResNet arch {text.strip()!r} is outside this space: {e}") from None
        return arch

    def check(self, arch: ResNetArch) -> None:
        """Raise :class:`ArchError` unless ``arch`` is in this space (depths and codes among the choices)."""
        if arch.slots != self.slots:
            raise ArchError(f"block slots {arch.slots} differ from this space's max depths {self.slots}")
        for s, (d, w, codes) in enumerate(zip(arch.depths, arch.widths, arch.inner), start=1):
            if d not in self.depths[s - 1]:
                raise ArchError(f"stage {s}: depth {d} is not among the choices {list(self.depths[s - 1])}")
            bad = [c for c in (w, *codes[:d]) if c > len(self.ratios)]
            if bad:
                raise ArchError(f"stage {s}: width code {bad[0]} exceeds the {len(self.ratios)} ratio choices "
                                f"(codes 1..{len(self.ratios)})")

    def shape(self, arch: ResNetArch) -> ResNetShape:
        """Channel counts of ``arch``."""
        ch = self.channels
        return ResNetShape(tuple(ch[s][w] for s, w in enumerate(arch.widths)),
                           tuple(tuple(ch[s][c] for c in codes[:d])
                                 for s, (d, codes) in enumerate(zip(arch.depths, arch.inner))))

    def _arch(self, depths: list[int], widths: list[int], inner: list[list[int]]) -> ResNetArch:
        padded = tuple(tuple(c[:d]) + (0,) * (m - d) for c, d, m in zip(inner, depths, self.slots))
        return ResNetArch(tuple(depths), tuple(widths), padded)

    def sample(self, rng: random.Random) -> ResNetArch:
        """Uniform: every depth and every width code drawn independently."""
        n = len(self.ratios)
        depths = [rng.choice(ds) for ds in self.depths]
        widths = [rng.randint(1, n) for _ in self.slots]
        inner = [[rng.randint(1, n) for _ in range(d)] for d in depths]
        return self._arch(depths, widths, inner)

    def mutate(self, arch: ResNetArch, rng: random.Random) -> ResNetArch:
        """Change one active decision (a depth, a stage width or a present block's inner width) to another
        option; blocks added by a deeper stage get random inner widths."""
        n = len(self.ratios)
        depths, widths = list(arch.depths), list(arch.widths)
        inner = [list(c[:d]) for c, d in zip(arch.inner, arch.depths)]
        decisions = [("depth", s, 0) for s in range(len(depths)) if len(self.depths[s]) > 1]
        if n > 1:
            decisions += [("width", s, 0) for s in range(len(depths))]
            decisions += [("inner", s, b) for s in range(len(depths)) for b in range(depths[s])]
        if not decisions:
            raise ArchError("this ResNet space has a single architecture; there is nothing to mutate")
        kind, s, b = rng.choice(decisions)
        if kind == "depth":
            d = rng.choice([x for x in self.depths[s] if x != depths[s]])
            inner[s] = inner[s][:d] + [rng.randint(1, n) for _ in range(d - depths[s])]
            depths[s] = d
        elif kind == "width":
            widths[s] = rng.choice([k for k in range(1, n + 1) if k != widths[s]])
        else:
            inner[s][b] = rng.choice([k for k in range(1, n + 1) if k != inner[s][b]])
        return self._arch(depths, widths, inner)

    def distance(self, a: ResNetArch, b: ResNetArch) -> float:
        """Hamming distance over the code digits (RD-NAS's margin sampler used it on this space, with
        mu = 33 on the official 52-digit code)."""
        return float(sum(x != y for x, y in zip(str(a), str(b))))

    def largest(self) -> ResNetArch:
        """Every stage at its max depth, every width at the largest ratio."""
        return self._arch([max(d) for d in self.depths], [self._big] * len(self.slots),
                          [[self._big] * m for m in self.slots])

    def smallest(self) -> ResNetArch:
        """Every stage at its min depth, every width at the smallest ratio."""
        depths = [min(d) for d in self.depths]
        return self._arch(depths, [self._small] * len(self.slots), [[self._small] * d for d in depths])

    def size(self) -> int:
        """The number of distinct codes: prod over stages of R * sum over depths d of R^d (R ratios)."""
        r = len(self.ratios)
        return math.prod(r * sum(r ** d for d in ds) for ds in self.depths)

    # -- networks -----------------------------------------------------------------------------------
    def supernet(self) -> ResNetSupernet:
        return ResNetSupernet(self)

    def build(self, arch: ResNetArch, seed: int | None = None) -> ResNet:
        self.check(arch)
        with seeded(seed):
            return ResNet(self.cfg, self.shape(arch))

    def input_shape(self) -> tuple[int, int, int]:
        return (self.cfg.in_channels, self.cfg.input_size, self.cfg.input_size)

    def cost(self, arch: ResNetArch) -> dict[str, float]:
        """Parameters and FLOPs of the standalone network, layer by layer, without building it.

        A k x k conv from c_in to c_out channels at output size h x h has c_in c_out k^2 weights and costs
        2 c_in c_out k^2 h^2 FLOPs; a BatchNorm has 2c parameters; the classifier c (classes + 1)
        parameters and 2 c classes FLOPs (BN, ReLU, pooling and the residual add count 0 FLOPs, as in
        :func:`~distilnas.spaces.count_flops`). Equal to counting the built network (tested).
        """
        self.check(arch)
        shape = self.shape(arch)
        params = flops = 0

        def conv(c_in: int, c_out: int, k: int, stride: int, h: int) -> int:
            nonlocal params, flops
            h_out = (h + 2 * (k // 2) - k) // stride + 1
            params += c_in * c_out * k * k + 2 * c_out  # conv + its BatchNorm
            flops += 2 * c_in * c_out * k * k * h_out * h_out
            return h_out

        k, stride = (7, 2) if self.cfg.stem == "7x7" else (3, 1)
        h = conv(self.cfg.in_channels, shape.stage_widths[0], k, stride, self.cfg.input_size)
        if self.cfg.stem == "7x7":
            h = (h - 1) // 2 + 1  # 3x3 stride-2 max-pool, padding 1
        c_in = shape.stage_widths[0]
        for s, (c_out, inner) in enumerate(zip(shape.stage_widths, shape.inner_widths)):
            for b, c_mid in enumerate(inner):
                first = b == 0 and s > 0
                h_in = h
                h = conv(c_in, c_mid, 3, 2 if first else 1, h_in)
                conv(c_mid, c_out, 3, 1, h)
                if first:
                    conv(c_in, c_out, 1, 2, h_in)
                c_in = c_out
        params += c_in * self.cfg.num_classes + self.cfg.num_classes
        flops += 2 * c_in * self.cfg.num_classes
        return {"params": params, "flops": flops}
