"""Cream's MobileNet-like search space (Peng et al., "Cream of the Crop", NeurIPS 2020, sec. 4.1).

Network: stem (3x3 conv, stride 2, BN, Swish) -> fixed first stage (depthwise-separable 3x3, SE 0.25) ->
five searchable stages of inverted residual blocks -> fixed last stage (1x1 conv, BN, Swish) -> head
(global average pool, 1x1 conv with bias to 1280, Swish, Linear). Every searchable layer chooses an
MBConv with kernel {3, 5, 7} x expansion {4, 6}, SE 0.25 (ReLU + hard-sigmoid gate) and Swish; every layer
after the first of a stage may also be the identity, so the depth of each stage is searched (the paper
searches depth; the official code fixes it up front - the identity choice is the clean way to do it).

Presets (:data:`PRESETS`): ``imagenet`` is the paper's table at 224 px; ``fmnist16`` is a small version
for 1x16x16 inputs (width x0.5, two layers per stage, stride-1 stem). A config names a ``preset`` and
any key it sets explicitly overrides that preset's value.

Architecture strings: a stage's op codes joined by ``-``, stages joined by ``_``, e.g. for ``fmnist16``::

    k3e4-id_k5e6-k7e4_k3e6-id_k7e6-k5e4_k3e4-k3e4

An ``id`` layer is a no-op, so a stage is canonical with its real ops first, in order, and its ``id``
layers last: ``k3e4-id-k5e6-id`` parses to ``k3e4-k5e6-id-id`` (the same network), and a stage may not
start with ``id`` (its first layer sets the stage's width and stride).

FLOPs and parameters (:meth:`MobileNetSpace.cost`) come from an exact per-layer table counted once at
the configured input size with :func:`~distilnas.spaces.count_flops` (2 FLOPs per multiply-add), not
from a 224 px lookup table as in the official code. Weight sharing: separate ops per choice (see
:mod:`distilnas.ops.mbconv` for the measurement behind that choice).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..arch import ArchError
from ..config import ConfigError, opt
from ..ops.mbconv import (
    ACTIVATIONS, IDENTITY, SE_RULES, ChoiceStage, ConvBNAct, DepthwiseSeparable, StageSpec, canonical_codes,
    make_act, make_divisible, parse_op, standalone_copy,
)
from .base import SPACES, SearchSpace, count_flops, count_params, seeded

__all__ = ["MobileNetArch", "MobileNetConfig", "PRESETS", "MobileNetNetwork", "MobileNetSupernet",
           "MobileNetSpace"]

_FORMAT = ("expected the op codes of each stage (k<kernel>e<expansion> or id) joined by '-', stages joined "
           "by '_', e.g. k3e4-k5e6-id_k7e6-id")

_IMAGENET: dict[str, Any] = {
    "in_channels": 3,
    "input_size": 224,
    "num_classes": 1000,
    "stem_channels": 16,
    "stem_stride": 2,
    "first_channels": 16,
    "widths": [24, 40, 80, 96, 192],
    "depths": [4, 4, 4, 4, 4],
    "strides": [2, 2, 2, 1, 2],
    "last_channels": 320,
    "head_channels": 1280,
    "kernels": [3, 5, 7],
    "expansions": [4, 6],
    "se_ratio": 0.25,
    "se_rule": "cream",
    "act": "swish",
    "identity": True,
    "width_mult": 1.0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "imagenet": _IMAGENET,
    "fmnist16": {
        **_IMAGENET,
        "in_channels": 1,
        "input_size": 16,
        "num_classes": 10,
        "stem_stride": 1,
        "depths": [2, 2, 2, 2, 2],
        "strides": [2, 2, 1, 1, 2],
        "head_channels": 256,
        "width_mult": 0.5,
    },
}
"""Complete values of every option, per preset."""


@dataclass
class MobileNetConfig:
    """Shape of the MobileNet space.

    ``preset`` supplies every value; an option set explicitly (not ``None``) overrides the preset's. After
    construction every option holds a value, so the saved config is complete. ``width_mult`` scales the
    stem, first-stage, stage and last-stage widths (rounded to multiples of 8); ``head_channels`` is
    never scaled.
    """

    preset: str = opt("imagenet", choices=tuple(PRESETS))  # imagenet | fmnist16
    in_channels: int | None = opt(None, ge=1)
    input_size: int | None = opt(None, ge=1)  # square inputs, pixels
    num_classes: int | None = opt(None, ge=1)
    stem_channels: int | None = opt(None, ge=1)
    stem_stride: int | None = opt(None, choices=(1, 2))
    first_channels: int | None = opt(None, ge=1)  # fixed depthwise-separable first stage
    widths: list[int] | None = opt(None, ge=1)  # output width of each searchable stage
    depths: list[int] | None = opt(None, ge=1)  # maximum layers of each searchable stage
    strides: list[int] | None = opt(None, choices=(1, 2))  # stride of each searchable stage's first layer
    last_channels: int | None = opt(None, ge=1)  # fixed 1x1 conv after the searchable stages
    head_channels: int | None = opt(None, ge=1)  # 1x1 conv of the head, after global pooling
    kernels: list[int] | None = opt(None, ge=1)  # depthwise kernel sizes to choose from (odd)
    expansions: list[int] | None = opt(None, ge=1)  # expansion ratios to choose from
    se_ratio: float | None = opt(None, ge=0)  # SE ratio (0 = no SE)
    # SE width: cream = make_divisible(se_ratio x expanded width, 8) (Cream's blocks); input = se_ratio x input width
    se_rule: str | None = opt(None, choices=SE_RULES)
    act: str | None = opt(None, choices=tuple(ACTIVATIONS))  # swish | relu | hswish
    identity: bool | None = None  # layers after the first of a stage may be skipped (depth search)
    width_mult: float | None = opt(None, gt=0)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown space.preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for key, value in PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, list(value) if isinstance(value, list) else value)
        self._validate()

    def _validate(self) -> None:
        n = len(self.widths or [])
        if n == 0 or len(self.depths or []) != n or len(self.strides or []) != n:
            raise ConfigError(f"space.widths, space.depths and space.strides need one entry per searchable "
                              f"stage; got {len(self.widths or [])}, {len(self.depths or [])}, "
                              f"{len(self.strides or [])}")
        if any(d < 1 for d in self.depths or []):
            raise ConfigError(f"space.depths must be >= 1, got {self.depths}")
        if any(s not in (1, 2) for s in [*(self.strides or []), self.stem_stride]):
            raise ConfigError(f"strides must be 1 or 2, got stem {self.stem_stride}, stages {self.strides}")
        if not self.kernels or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"space.kernels must be odd sizes, got {self.kernels}")
        if not self.expansions or any(e < 1 for e in self.expansions):
            raise ConfigError(f"space.expansions must be integers >= 1, got {self.expansions}")
        if self.act not in ACTIVATIONS:
            raise ConfigError(f"unknown space.act {self.act!r}; choose one of {', '.join(ACTIVATIONS)}")
        positive = ("in_channels", "input_size", "num_classes", "stem_channels", "first_channels",
                    "last_channels", "head_channels")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"space.{key} must be >= 1, got {getattr(self, key)}")
        if any(w < 1 for w in self.widths or []) or not (self.width_mult or 0) > 0 or (self.se_ratio or 0) < 0:
            raise ConfigError(f"space.widths and space.width_mult must be positive and space.se_ratio >= 0; got "
                              f"{self.widths}, {self.width_mult}, {self.se_ratio}")

    def channels(self, width: int) -> int:
        """``width`` scaled by ``width_mult`` and rounded to a multiple of 8."""
        assert self.width_mult is not None
        return make_divisible(width * self.width_mult, 8)


@dataclass(frozen=True)
class MobileNetArch:
    """The op code of every layer, per searchable stage, in canonical form (``id`` layers last)."""

    stages: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        stages = tuple(tuple(s) for s in self.stages)
        for i, codes in enumerate(stages):
            if not codes:
                raise ArchError(f"stage {i + 1} has no layers")
            for code in codes:
                parse_op(code)
            if codes[0] == IDENTITY:
                raise ArchError(f"stage {i + 1} starts with 'id'; the first layer of a stage sets its width "
                                f"and stride and cannot be skipped")
        object.__setattr__(self, "stages", tuple(canonical_codes(s) for s in stages))

    def __str__(self) -> str:
        return "_".join("-".join(codes) for codes in self.stages)

    @classmethod
    def parse(cls, text: str) -> "MobileNetArch":
        """Parse ``k3e4-k5e6-id_...``; raises :class:`ArchError` naming the problem."""
        s = text.strip()
        if not s:
            raise ArchError(f"empty MobileNet arch; {_FORMAT}")
        try:
            return cls(tuple(tuple(part.split("-")) for part in s.split("_")))
        except ArchError as e:
            raise ArchError(f"malformed MobileNet arch {text!r}: {e}; {_FORMAT}") from None

    def depths(self) -> tuple[int, ...]:
        """The number of real (non-``id``) layers of each stage."""
        return tuple(sum(c != IDENTITY for c in codes) for codes in self.stages)


def _out_size(size: int, stride: int) -> int:
    """Spatial size after an odd-kernel convolution with padding k // 2."""
    return (size - 1) // stride + 1


class _Head(nn.Module):
    """Global average pool, 1x1 conv (with bias), activation, Linear."""

    def __init__(self, c_in: int, hidden: int, num_classes: int, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, hidden, 1, bias=True)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.conv.bias)
        self.act = make_act(act)
        self.fc = nn.Linear(hidden, num_classes)
        bound = 1.0 / math.sqrt(num_classes)  # timm's _init_weight_goog (Cream's code): U(+-1/sqrt(fan_out))
        nn.init.uniform_(self.fc.weight, -bound, bound)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        x = self.act(self.conv(x)).flatten(1)  # (B, hidden)
        return self.fc(x)


@dataclass(frozen=True)
class _Layout:
    """Resolved widths and shapes of the network."""

    stem: int
    first: int
    last: int
    stages: tuple[StageSpec, ...]
    stage_sizes: tuple[int, ...]  # input resolution of each searchable stage

    @classmethod
    def of(cls, cfg: MobileNetConfig) -> "_Layout":
        stem, first = cfg.channels(cfg.stem_channels), cfg.channels(cfg.first_channels)
        size = _out_size(cfg.input_size, cfg.stem_stride)
        specs, sizes, c_in = [], [], first
        for width, depth, stride in zip(cfg.widths, cfg.depths, cfg.strides):
            c_out = cfg.channels(width)
            specs.append(StageSpec(c_in, c_out, depth, stride, tuple(cfg.kernels), tuple(cfg.expansions),
                                   cfg.se_ratio, cfg.act, cfg.identity, se_rule=cfg.se_rule))
            sizes.append(size)
            size, c_in = _out_size(size, stride), c_out
        return cls(stem, first, cfg.channels(cfg.last_channels), tuple(specs), tuple(sizes))

    def fixed_parts(self, cfg: MobileNetConfig) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """Fresh stem, first stage, last stage and head."""
        stem = ConvBNAct(cfg.in_channels, self.stem, 3, cfg.stem_stride, act=cfg.act)
        first = DepthwiseSeparable(self.stem, self.first, 3, 1, cfg.se_ratio, cfg.act, cfg.se_rule)
        last = ConvBNAct(self.stages[-1].out_channels, self.last, 1, act=cfg.act)
        head = _Head(self.last, cfg.head_channels, cfg.num_classes, cfg.act)
        return stem, first, last, head


class MobileNetNetwork(nn.Module):
    """A standalone network: stem -> first stage -> searchable stages (plain MBConv stacks) -> last -> head."""

    def __init__(self, stem: nn.Module, first: nn.Module, stages: Sequence[nn.Module], last: nn.Module,
                 head: nn.Module) -> None:
        super().__init__()
        self.stem, self.first, self.last, self.head = stem, first, last, head
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.last(self.stages(self.first(self.stem(x)))))


class MobileNetSupernet(nn.Module):
    """The weight-sharing supernet: one :class:`~distilnas.ops.mbconv.ChoiceStage` per searchable stage.

    ``forward(x, arch)`` runs the single path ``arch``; ``extract(arch)`` returns a
    :class:`MobileNetNetwork` with this supernet's trained weights.
    """

    def __init__(self, cfg: MobileNetConfig) -> None:
        super().__init__()
        layout = _Layout.of(cfg)
        self.stem, self.first, self.last, self.head = layout.fixed_parts(cfg)
        self.stages = nn.ModuleList(ChoiceStage(spec) for spec in layout.stages)

    def _check(self, arch: MobileNetArch) -> None:
        if len(arch.stages) != len(self.stages):
            raise ArchError(f"arch {arch} has {len(arch.stages)} stages; this supernet has {len(self.stages)}")

    def forward(self, x: torch.Tensor, arch: MobileNetArch) -> torch.Tensor:
        self._check(arch)
        x = self.first(self.stem(x))
        for stage, codes in zip(self.stages, arch.stages):
            x = stage(x, codes)
        return self.head(self.last(x))

    def extract(self, arch: MobileNetArch) -> MobileNetNetwork:
        """A standalone network for ``arch`` carrying this supernet's weights (same device and mode)."""
        self._check(arch)
        stages = [stage.extract(codes) for stage, codes in zip(self.stages, arch.stages)]
        fixed = [standalone_copy(m) for m in (self.stem, self.first, self.last, self.head)]
        net = MobileNetNetwork(fixed[0], fixed[1], stages, fixed[2], fixed[3])
        return net.train(self.training)


@SPACES.register("mobilenet")
class MobileNetSpace(SearchSpace[MobileNetArch]):
    """Cream's MobileNet space: labelled choices ``s{stage}_l{layer}`` (stages 1..5, layers from 0)."""

    name = "mobilenet"
    Config = MobileNetConfig
    ENUMERATE_LIMIT = 1_000_000

    def __init__(self, cfg: MobileNetConfig | None = None) -> None:
        self.cfg = cfg or MobileNetConfig()
        self.layout = _Layout.of(self.cfg)
        self._labels = [(s, i, f"s{s + 1}_l{i}") for s, spec in enumerate(self.layout.stages)
                        for i in range(spec.depth)]
        self._choices = {label: self.layout.stages[s].layer_choices()[i] for s, i, label in self._labels}
        self._table: tuple[int, int, list[list[dict[str, tuple[int, int]]]]] | None = None

    # -- choices --------------------------------------------------------------------------------------
    @property
    def choices(self) -> dict[str, tuple[str, ...]]:
        return dict(self._choices)

    def parse(self, text: str) -> MobileNetArch:
        arch = MobileNetArch.parse(text)
        self.check(arch)
        return arch

    def check(self, arch: MobileNetArch) -> None:
        """Raise :class:`ArchError` unless ``arch`` belongs to this space."""
        specs = self.layout.stages
        if len(arch.stages) != len(specs):
            raise ArchError(f"arch {arch} has {len(arch.stages)} stages; this space has {len(specs)} "
                            f"(depths {[s.depth for s in specs]}); {_FORMAT}")
        for s, (codes, spec) in enumerate(zip(arch.stages, specs)):
            try:
                spec.check(codes)
            except ArchError as e:
                raise ArchError(f"arch {arch}, stage {s + 1}: {e} (this space's depths: "
                                f"{[sp.depth for sp in specs]}; {_FORMAT})") from None

    def to_choices(self, arch: MobileNetArch) -> dict[str, str]:
        return {label: arch.stages[s][i] for s, i, label in self._labels}

    def from_choices(self, sample: dict[str, str]) -> MobileNetArch:
        stages: list[list[str]] = [[] for _ in self.layout.stages]
        for s, i, label in self._labels:
            stages[s].append(sample[label])
        arch = MobileNetArch(tuple(tuple(c) for c in stages))
        self.check(arch)
        return arch

    def sample(self, rng: random.Random) -> MobileNetArch:
        """Uniform over the options of every label (then canonicalised)."""
        return self.from_choices({label: rng.choice(opts) for label, opts in self._choices.items()})

    def mutate(self, arch: MobileNetArch, rng: random.Random) -> MobileNetArch:
        """Change one label to another option (always a different architecture)."""
        sample = self.to_choices(arch)
        label = rng.choice([lab for lab, opts in self._choices.items() if len(opts) > 1])
        sample[label] = rng.choice([o for o in self._choices[label] if o != sample[label]])
        return self.from_choices(sample)

    def distance(self, a: MobileNetArch, b: MobileNetArch) -> float:
        """Hamming distance between the canonical forms: the number of layers whose ops differ."""
        return float(sum(x != y for sa, sb in zip(a.stages, b.stages) for x, y in zip(sa, sb)))

    def largest(self) -> MobileNetArch:
        """Largest kernel and expansion in every layer."""
        return self.from_choices({label: max(opts, key=_op_size) for label, opts in self._choices.items()})

    def smallest(self) -> MobileNetArch:
        """One layer per stage (when identity is on) with the smallest kernel and expansion."""
        return self.from_choices({label: min(opts, key=_op_size) for label, opts in self._choices.items()})

    def uniform_within(self, kernel: int, expansion: int, flops_max: float) -> MobileNetArch:
        """A hand-designed, MobileNetV2-like architecture: op ``k{kernel}e{expansion}`` in every layer,
        as deep as ``flops_max`` allows with depths as equal across stages as possible.

        Rule: every stage starts at its smallest depth (1, or the layers that cannot be ``id``); then
        layers are added one at a time, round by round (every stage gets its 2nd layer before any gets
        its 3rd), from the first stage to the last, stopping at the first layer that would take the
        FLOPs above ``flops_max`` (or when every stage is full). So the earlier stages are at most one
        layer deeper than the later ones.

        Raises:
            ArchError: the op is not a choice of every layer.
            ConfigError: even the smallest depths exceed ``flops_max``.
        """
        op = f"k{kernel}e{expansion}"
        if any(op not in opts for opts in self._choices.values()):
            raise ArchError(f"op {op} is not a choice of every layer (kernels {self.cfg.kernels}, expansions "
                            f"{self.cfg.expansions})")
        specs = self.layout.stages
        depths = [max([i + 1 for i in range(spec.depth) if not spec.layer_identity(i)], default=1) for spec in specs]

        def arch(ds: Sequence[int]) -> MobileNetArch:
            return MobileNetArch(tuple((op,) * d + (IDENTITY,) * (spec.depth - d) for d, spec in zip(ds, specs)))

        if self.cost(arch(depths))["flops"] > flops_max:
            raise ConfigError(f"{arch(depths)} already has {self.cost(arch(depths))['flops']:,.0f} FLOPs, above "
                              f"flops_max={flops_max:,.0f}")
        for level in range(1, max(spec.depth for spec in specs)):  # round `level` adds layer level + 1
            for s, spec in enumerate(specs):
                if depths[s] == level < spec.depth:
                    deeper = depths[:s] + [depths[s] + 1] + depths[s + 1:]
                    if self.cost(arch(deeper))["flops"] > flops_max:
                        return arch(depths)
                    depths = deeper
        return arch(depths)

    def size(self) -> int:
        """The number of distinct (canonical) architectures."""
        total = 1
        for spec in self.layout.stages:
            n = len(spec.kernels) * len(spec.expansions)
            total *= sum(n ** d for d in range(1, spec.depth + 1)) if spec.identity else n ** spec.depth
        return total

    def enumerate(self) -> Iterator[MobileNetArch]:
        if self.size() > self.ENUMERATE_LIMIT:
            raise NotImplementedError(f"space {self.name!r} has {self.size():,} architectures, too many to "
                                      f"enumerate (limit {self.ENUMERATE_LIMIT:,})")
        per_stage = []
        for spec in self.layout.stages:
            ops = spec.layer_choices()[0]
            depths = range(1, spec.depth + 1) if spec.identity else [spec.depth]
            per_stage.append([c + (IDENTITY,) * (spec.depth - d) for d in depths
                              for c in itertools.product(ops, repeat=d)])
        for stages in itertools.product(*per_stage):
            yield MobileNetArch(stages)

    # -- models ---------------------------------------------------------------------------------------
    def supernet(self) -> MobileNetSupernet:
        return MobileNetSupernet(self.cfg)

    def build(self, arch: MobileNetArch, seed: int | None = None) -> MobileNetNetwork:
        self.check(arch)
        with seeded(seed):
            stem, first, last, head = self.layout.fixed_parts(self.cfg)
            stages = [spec.build(codes) for spec, codes in zip(self.layout.stages, arch.stages)]
            return MobileNetNetwork(stem, first, stages, last, head)

    def input_shape(self) -> tuple[int, int, int]:
        return (self.cfg.in_channels, self.cfg.input_size, self.cfg.input_size)

    # -- cost ---------------------------------------------------------------------------------------
    def cost(self, arch: MobileNetArch) -> dict[str, float]:
        """Parameters and FLOPs of the standalone network at the configured input size.

        Fixed part plus one table entry per layer, counted once with ``count_params`` / ``count_flops``
        on each op at its real input shape; equal to counting the built network (tested).
        """
        fixed_params, fixed_flops, table = self._cost_table()
        params, flops = fixed_params, fixed_flops
        for stage_table, codes in zip(table, arch.stages):
            for layer_table, code in zip(stage_table, codes):
                p, f = layer_table[code]
                params += p
                flops += f
        return {"params": params, "flops": flops}

    def fixed_cost(self) -> dict[str, int]:
        """Parameters and FLOPs of the parts no architecture changes: stem, first stage, last stage and
        head (``cost(arch) == fixed_cost() + sum of stage_cost(s, arch.stages[s])``, tested)."""
        fixed_params, fixed_flops, _ = self._cost_table()
        return {"params": fixed_params, "flops": fixed_flops}

    def stage_cost(self, stage: int, codes: Sequence[str]) -> dict[str, int]:
        """Parameters and FLOPs of searchable stage ``stage`` (from 0) running ``codes`` (one op code per
        layer, ``id`` included) in the standalone network; :class:`ArchError` for codes not in the stage."""
        table = self._cost_table()[2]
        if not 0 <= stage < len(table):
            raise ArchError(f"stage {stage} does not exist; this space has stages 0..{len(table) - 1}")
        self.layout.stages[stage].check(codes)
        params = flops = 0
        for layer_table, code in zip(table[stage], codes):
            p, f = layer_table[code]
            params += p
            flops += f
        return {"params": params, "flops": flops}

    def flops_range(self) -> tuple[int, int]:
        """(smallest, largest) FLOPs over the whole space (layers are independent, so per-layer extremes)."""
        fixed_flops = self._cost_table()[1]
        lo = hi = fixed_flops
        for stage_table in self._cost_table()[2]:
            for layer_table in stage_table:
                lo += min(f for _, f in layer_table.values())
                hi += max(f for _, f in layer_table.values())
        return lo, hi

    def sample_in_range(self, rng: random.Random, flops_min: float, flops_max: float,
                        max_tries: int = 10_000) -> MobileNetArch:
        """A uniform sample conditioned on ``flops_min <= FLOPs <= flops_max`` (rejection sampling).

        Raises :class:`~distilnas.config.ConfigError` when the range excludes the whole space or when no
        sample in ``max_tries`` falls inside it.
        """
        lo, hi = self.flops_range()
        if flops_min > flops_max or flops_max < lo or flops_min > hi:
            raise ConfigError(f"FLOPs range [{flops_min:,.0f}, {flops_max:,.0f}] excludes the whole space, whose "
                              f"FLOPs span [{lo:,}, {hi:,}] at {self.cfg.input_size} px; choose a range inside it")
        for _ in range(max_tries):
            arch = self.sample(rng)
            if flops_min <= self.cost(arch)["flops"] <= flops_max:
                return arch
        raise ConfigError(f"no architecture with FLOPs in [{flops_min:,.0f}, {flops_max:,.0f}] in {max_tries:,} "
                          f"uniform samples (space spans [{lo:,}, {hi:,}]); widen the range or raise max_tries")

    def _cost_table(self) -> tuple[int, int, list[list[dict[str, tuple[int, int]]]]]:
        """(fixed params, fixed FLOPs, [stage][layer] -> {code: (params, FLOPs)}), computed once."""
        if self._table is None:
            cfg, layout = self.cfg, self.layout
            stem, first, last, head = layout.fixed_parts(cfg)
            size0 = _out_size(cfg.input_size, cfg.stem_stride)
            size_end = _out_size(layout.stage_sizes[-1], layout.stages[-1].stride)
            fixed_params = sum(count_params(m) for m in (stem, first, last, head))
            fixed_flops = (count_flops(stem, self.input_shape())
                           + count_flops(first, (layout.stem, size0, size0))
                           + count_flops(last, (layout.stages[-1].out_channels, size_end, size_end))
                           + count_flops(head, (layout.last, size_end, size_end)))
            cache: dict[tuple[int, int, int, int, str], tuple[int, int]] = {}
            table = []
            for spec, size in zip(layout.stages, layout.stage_sizes):
                stage_table = []
                for i, ((c_in, c_out, stride), opts) in enumerate(zip(spec.layer_shapes(), spec.layer_choices())):
                    layer_size = size if i == 0 else _out_size(size, spec.stride)
                    entry = {}
                    for code in opts:
                        key = (c_in, c_out, stride, layer_size, code)
                        if key not in cache:
                            op = spec.make_op(i, code)
                            cache[key] = (count_params(op), count_flops(op, (c_in, layer_size, layer_size))
                                          if code != IDENTITY else 0)
                        entry[code] = cache[key]
                    stage_table.append(entry)
                table.append(stage_table)
            self._table = (fixed_params, fixed_flops, table)
        return self._table


def _op_size(code: str) -> tuple[int, int]:
    """Sort key of op codes by capacity: ``id`` smallest, then by (expansion, kernel)."""
    parsed = parse_op(code)
    return (0, 0) if parsed is None else (parsed[1], parsed[0])
