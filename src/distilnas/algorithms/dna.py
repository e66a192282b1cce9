"""DNA: blockwise supervised NAS with knowledge distillation (Li et al., "Block-wisely Supervised Neural
Architecture Search with Knowledge Distillation", CVPR 2020).

The student network is cut into blocks aligned with a teacher's stages: block ``i`` is searchable stage
``i`` of a :class:`~distilnas.spaces.mobilenet.MobileNetSpace` (where the final architectures live). Each
block learns on its own to map the teacher's feature map ``Y_{i-1}`` to its next map ``Y_i`` (block 0
takes the image through the student's own stem and fixed first stage), so blocks train independently -
one ``distilnas search`` run per block (``algorithm.block=i``), in parallel processes or machines.

Block ``i`` holds one *cell* per depth ``d`` (``algorithm.depths``): ``d`` choice layers of MBConv ops
(the space's kernels x expansions); the first layer maps the teacher's width of ``Y_{i-1}`` to the
space's width of stage ``i`` (its *hidden* width), the last maps it to the teacher's width of ``Y_i``, so
no adapter is needed (a depth-1 cell maps in -> out directly). A candidate is a depth and ``d`` op codes,
named like the space's stage: the codes padded with ``id`` to the stage's depth (``k3e6-k5e3-id``), so
the candidates of all blocks joined by ``_`` form a MobileNet-space architecture string.

Training (paper eq. 5): each step samples one candidate uniformly (a depth, then an op per layer, from
``path_rng(seed, step)``) and minimises

    L_train = 1/N || Y_i - cell(Y_{i-1}) ||_2^2                (N = elements of Y_i: the MSE)

with the teacher run without gradients and in **eval mode** (the official code leaves the teacher in
train mode, i.e. batch-statistics BatchNorm that also drifts its running statistics: ``teacher_mode=train``
reproduces that).

Rating (paper eq. 7, the ``score`` hook): after training, *every* candidate of the block is rated. Per
candidate: BatchNorm recalibration on a fixed set of training images (the same for every candidate),
then on the first ``score.val_size`` validation images, against the teacher's maps (computed once):

    MSE    = 1/N sum (Y_hat - Y)^2
    rel_l1 = (1/N sum |Y_hat - Y|) / std(Y)                    (paper eq. 7: the search score by default)
    NSR    = 1/C sum_c [ mean_{n,h,w} (Y_hat - Y)_c^2 / var_c(Y) ]

where std and var are population statistics of the teacher's validation maps (all elements for std; per
channel c for var) plus 1e-9, as the official code adds. NSR is the noise-to-signal-power ratio of
DONNA (Moons et al., ICCV 2021, sec. 3.1: the blockwise loss normalised per channel by the teacher's
channel variance; our reading of the paper). The official DNA code logs MSE / var(Y) over all elements
instead, and computes its statistics per batch and averages them; here they are over the whole
validation set.
Every candidate also gets its FLOPs and params **in the final MobileNet-space network** (the stage's
cost at the space's normal widths, which is what a budget constrains).

The scores go to the run's ``scores.jsonl`` (one row per candidate: ``arch``, ``score``, ``mse``,
``rel_l1``, ``nsr``, ``flops``, ``params``, ``depth``) and ``result.json`` gets a ``dna`` section;
``distilnas dna-merge`` joins the block runs into a potentials file for the exact search
(:mod:`distilnas.search`), see docs/dna.md.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import ArchError
from ..config import ConfigError, opt
from ..data import gather
from ..ops.mbconv import IDENTITY, ChoiceStage, StageSpec, op_code
from ..spaces.mobilenet import MobileNetArch, MobileNetSpace
from ..train.checkpoint import load_exported, safe_load
from .base import ALGORITHMS, Algorithm, StepOutput, path_rng

__all__ = ["DNA", "BlockCandidate", "DNABlock", "TeacherFeatures", "TargetStats", "ErrorMeter",
           "feature_errors", "load_teacher", "METRICS"]

METRICS: tuple[str, ...] = ("rel_l1", "mse", "nsr")
"""Block scores the search may use (lower is better)."""

EPS = 1e-9  # added to std(Y) and var_c(Y), as the official code does


# -- teacher --------------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised by the last needed stage hook to end the teacher's forward early."""


class TeacherFeatures:
    """A frozen teacher and the feature maps at the ends of its stages (forward hooks).

    The teacher's parameters never get gradients and are never trained; it runs in eval mode
    (``mode="train"``: batch-statistics BatchNorm, as the official code did).

    Args:
        model: any trained ``nn.Module`` taking the student's images.
        stages: names (``model.named_modules()``) of the modules whose outputs end the stages, in
            forward order; map ``k`` is the output of ``stages[k]``.
        mode: ``eval`` or ``train``.
    """

    def __init__(self, model: nn.Module, stages: Sequence[str], mode: str = "eval") -> None:
        if mode not in ("eval", "train"):
            raise ConfigError(f"unknown algorithm.teacher_mode {mode!r}; choose eval or train")
        named = dict(model.named_modules())
        for name in stages:
            if name not in named:
                some = ", ".join(n for n in list(named)[1:9])
                raise ConfigError(f"the teacher has no module {name!r}; set algorithm.teacher_stages to module "
                                  f"names of the teacher (it has e.g. {some})")
        self.model, self.stages, self.mode = model, tuple(stages), mode
        self._modules = [named[name] for name in stages]
        model.requires_grad_(False)
        model.train(mode == "train")

    def to(self, device: torch.device, channels_last: bool = False) -> "TeacherFeatures":
        self.model.to(device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Maps ``0..upto`` (default: all) for the batch ``x``; the forward stops after map ``upto``."""
        last = len(self.stages) - 1 if upto is None else upto
        maps: dict[int, torch.Tensor] = {}

        def hook(k: int):
            def record(module: nn.Module, inputs: Any, output: Any) -> None:
                if k not in maps:
                    maps[k] = output  # dicts keep insertion order: the order the stages ran in
                if k == last:
                    raise _Stop

            return record

        handles = [m.register_forward_hook(hook(k)) for k, m in enumerate(self._modules[: last + 1])]
        self.model.train(self.mode == "train")
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        if list(maps) != list(range(last + 1)):
            raise ConfigError(f"the teacher ran its stage modules in the order {[self.stages[k] for k in maps]}, "
                              f"not {list(self.stages[: last + 1])}; list algorithm.teacher_stages in forward order")
        for k, m in maps.items():
            if not isinstance(m, torch.Tensor) or m.dim() != 4:
                raise ConfigError(f"teacher module {self.stages[k]!r} does not output a (B, C, H, W) tensor; "
                                  f"pick stage modules that output feature maps")
        return [maps[k] for k in range(last + 1)]

    def probe(self, input_shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        """``(C, H, W)`` of every map for one input of ``input_shape`` (run in eval mode)."""
        mode = self.mode
        self.mode = "eval"
        try:
            dev = next(itertools.chain(self.model.parameters(), self.model.buffers())).device
            maps = self(torch.zeros(1, *input_shape, device=dev))
        except RuntimeError as e:
            raise ConfigError(f"the teacher cannot take inputs of shape {input_shape} "
                              f"({str(e).splitlines()[0][:120]})") from None
        finally:
            self.mode = mode
        return [tuple(int(s) for s in m.shape[1:]) for m in maps]  # type: ignore[misc]


def load_teacher(cfg: "DNA.Config", in_channels: int) -> tuple[nn.Module, dict[str, Any]]:
    """The teacher network of ``cfg`` and a description of it (for result files).

    ``cfg.teacher``: a directory written by ``distilnas train ... --out DIR`` or ``distilnas retrain``
    (``arch.json`` + ``model.pt``, rebuilt by :func:`distilnas.train.checkpoint.load_exported`).
    ``cfg.teacher_timm``: a timm model name (timm is imported only then), built with
    ``pretrained=False`` and ``in_chans=in_channels``, weights from ``cfg.teacher_checkpoint`` when set.
    """
    if bool(cfg.teacher) == bool(cfg.teacher_timm):
        raise ConfigError("set exactly one of algorithm.teacher (a directory written by distilnas train or "
                          "retrain) and algorithm.teacher_timm (a timm model name)")
    if cfg.teacher:

        if cfg.teacher_checkpoint:
            raise ConfigError("algorithm.teacher_checkpoint is for teacher_timm; a teacher directory holds "
                              "its own model.pt")
        p = Path(cfg.teacher)
        if not p.is_dir():
            raise ConfigError(f"algorithm.teacher={cfg.teacher!r} is not a directory; train a teacher with "
                              f"distilnas train ARCH --space mobilenet --config configs/dna/teacher_fmnist16.yaml "
                              f"--out DIR")
        model = load_exported(p)
        desc: dict[str, Any] = {"dir": str(p)}
        meta = json.loads((p / "arch.json").read_text())
        desc.update(arch=meta.get("arch"), space=meta.get("space_config"))
        if (p / "result.json").is_file():
            res = json.loads((p / "result.json").read_text())
            desc.update({k: res[k] for k in ("val_accuracy", "test_accuracy", "params", "flops") if k in res})
        return model, desc
    try:
        import timm  # optional: only when a timm teacher is asked for
    except ImportError:
        raise ConfigError("algorithm.teacher_timm needs timm (pip install timm); or train a teacher with "
                          "distilnas train and set algorithm.teacher=DIR") from None
    try:
        model = timm.create_model(cfg.teacher_timm, pretrained=False, in_chans=in_channels)
    except RuntimeError as e:
        raise ConfigError(f"algorithm.teacher_timm={cfg.teacher_timm!r}: {str(e).splitlines()[0]}") from None
    if cfg.teacher_checkpoint:
        ckpt = Path(cfg.teacher_checkpoint)
        if not ckpt.is_file():
            raise ConfigError(f"algorithm.teacher_checkpoint={cfg.teacher_checkpoint!r} not found")
        state = safe_load(ckpt, "algorithm.teacher_checkpoint")
        for key in ("state_dict_ema", "state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise ConfigError(f"{ckpt} does not fit timm model {cfg.teacher_timm!r} "
                              f"({str(e).splitlines()[0][:120]})") from None
    return model.eval(), {"timm": cfg.teacher_timm, "checkpoint": cfg.teacher_checkpoint or None}


# -- student block --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockCandidate:
    """One candidate of a block: its stage's op codes in the MobileNet space's canonical form (the real
    ops, then ``id`` up to the stage's depth)."""

    codes: tuple[str, ...]

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(c for c in self.codes if c != IDENTITY)

    @property
    def depth(self) -> int:
        return len(self.ops)

    def __str__(self) -> str:
        return "-".join(self.codes)


class DNABlock(nn.Module):
    """Block ``block`` of the student: one :class:`~distilnas.ops.mbconv.ChoiceStage` per depth.

    ``forward(x, candidate)`` runs ``prefix`` (block 0: the student's stem and first stage; else none)
    and then the cell of the candidate's depth with its ops.

    Args:
        block: the block's index (= searchable stage of the space).
        cells: ``{depth: StageSpec}`` (no identity choices: depth is the cell).
        max_depth: the stage's depth in the space (candidates are padded with ``id`` to it).
        prefix: module run before the cell (block 0), or ``None``.
    """

    def __init__(self, block: int, cells: dict[int, StageSpec], max_depth: int, prefix: nn.Module | None = None) -> None:
        super().__init__()
        if not cells:
            raise ConfigError("a DNA block needs at least one depth")
        self.block, self.max_depth = block, max_depth
        self.specs = dict(sorted(cells.items()))
        self.depths = tuple(self.specs)
        first = next(iter(self.specs.values()))
        self.ops = tuple(op_code(k, e) for k in first.kernels for e in first.expansions)
        self.prefix = prefix
        self.cells = nn.ModuleDict({f"d{d}": ChoiceStage(spec) for d, spec in self.specs.items()})

    def candidate(self, ops: Sequence[str]) -> BlockCandidate:
        """The candidate running ``ops`` (one op code per layer, no ``id``)."""
        ops = tuple(ops)
        if len(ops) not in self.specs:
            raise ArchError(f"block {self.block} has cells of depth {', '.join(map(str, self.depths))}, "
                            f"not {len(ops)}")
        for code in ops:
            if code not in self.ops:
                raise ArchError(f"op {code!r} is not a choice of block {self.block}; choose one of "
                                f"{', '.join(self.ops)}")
        return BlockCandidate(ops + (IDENTITY,) * (self.max_depth - len(ops)))

    def parse(self, text: str) -> BlockCandidate:
        """A candidate from its string (``k3e6-k5e3-id``); :class:`ArchError` when it is not one."""
        codes = tuple(text.strip().split("-"))
        ops = tuple(c for c in codes if c != IDENTITY)
        if len(codes) != self.max_depth or codes[: len(ops)] != ops:
            raise ArchError(f"{text!r} is not a candidate of block {self.block}: expected {self.max_depth} codes "
                            f"joined by '-', real ops first and 'id' last, e.g. "
                            f"{self.candidate((self.ops[0],) * self.depths[0])}")
        return self.candidate(ops)

    def candidates(self) -> list[BlockCandidate]:
        """Every candidate: depths ascending, then ops in product order."""
        return [self.candidate(ops) for d in self.depths for ops in itertools.product(self.ops, repeat=d)]

    def sample(self, rng: random.Random) -> BlockCandidate:
        """Uniform over the depths, then uniform over the ops of each layer."""
        d = rng.choice(self.depths)
        return self.candidate([rng.choice(self.ops) for _ in range(d)])

    def forward(self, x: torch.Tensor, candidate: BlockCandidate) -> torch.Tensor:
        if self.prefix is not None:
            x = self.prefix(x)
        return self.cells[f"d{candidate.depth}"](x, candidate.ops)


def _stage_out_sizes(space: MobileNetSpace) -> list[int]:
    """Spatial size of every searchable stage's output."""
    return [(size - 1) // spec.stride + 1 for size, spec in zip(space.layout.stage_sizes, space.layout.stages)]


def _block_depths(space: MobileNetSpace, block: int, depths: Sequence[int]) -> list[int]:
    spec = space.layout.stages[block]
    allowed = list(range(1, spec.depth + 1)) if space.cfg.identity else [spec.depth]
    if not depths:
        return allowed
    bad = [d for d in depths if d not in allowed]
    if bad:
        raise ConfigError(f"algorithm.depths={list(depths)}: stage {block} of the space allows depths {allowed} "
                          f"(space.depths and space.identity); choose depths among them")
    return sorted(set(depths))


def build_block(space: MobileNetSpace, block: int, maps: Sequence[tuple[int, int, int]],
                depths: Sequence[int]) -> DNABlock:
    """Block ``block`` of the student for teacher maps of shapes ``maps`` (one per searchable stage)."""
    layout, cfg = space.layout, space.cfg
    spec = layout.stages[block]
    c_in = layout.first if block == 0 else maps[block - 1][0]
    cells = {d: StageSpec(c_in, maps[block][0], d, spec.stride, spec.kernels, spec.expansions, spec.se_ratio,
                          spec.act, identity=False, hidden_channels=spec.out_channels, se_rule=spec.se_rule)
             for d in _block_depths(space, block, depths)}
    prefix = None
    if block == 0:
        stem, first, _, _ = layout.fixed_parts(cfg)
        prefix = nn.Sequential(stem, first)
    return DNABlock(block, cells, spec.depth, prefix)


# -- rating metrics ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetStats:
    """Population statistics of the teacher's maps ``Y`` (float64): global std and per-channel variance."""

    std: float
    channel_var: torch.Tensor  # (C,)

    @classmethod
    def of(cls, targets: Sequence[torch.Tensor]) -> "TargetStats":
        """Two-pass statistics over batches of ``(B, C, H, W)`` maps."""
        n = sum(t.numel() for t in targets)
        if n == 0:
            raise ConfigError("no teacher maps to rate against; the validation split is empty (data.val_size)")
        c = targets[0].shape[1]
        per_c = n // c
        mean = sum(t.double().sum() for t in targets) / n
        mean_c = sum(t.double().transpose(0, 1).reshape(c, -1).sum(1) for t in targets) / per_c  # (C,)
        var = sum(((t.double() - mean) ** 2).sum() for t in targets) / n
        var_c = sum(((t.double().transpose(0, 1).reshape(c, -1) - mean_c[:, None]) ** 2).sum(1)
                    for t in targets) / per_c
        return cls(float(var.sqrt()), var_c.cpu())


class ErrorMeter:
    """Accumulates MSE, relative L1 and NSR of predictions against teacher maps over batches."""

    def __init__(self, stats: TargetStats) -> None:
        self.stats = stats
        self.abs_sum = 0.0
        self.sq_c = torch.zeros_like(stats.channel_var)  # (C,) sum of squared errors per channel
        self.count = 0

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and teacher map {tuple(target.shape)} differ")
        d = (pred.double() - target.double()).transpose(0, 1).reshape(target.shape[1], -1)  # (C, B*H*W)
        self.abs_sum += float(d.abs().sum())
        self.sq_c += (d * d).sum(1).cpu()
        self.count += d.numel()

    def result(self) -> dict[str, float]:
        """``{"mse", "rel_l1", "nsr"}`` over everything seen (see the module docstring)."""
        c = len(self.sq_c)
        mse = float(self.sq_c.sum()) / self.count
        rel_l1 = self.abs_sum / self.count / (self.stats.std + EPS)
        nsr = float((self.sq_c / (self.count / c) / (self.stats.channel_var + EPS)).mean())
        return {"mse": mse, "rel_l1": rel_l1, "nsr": nsr}


def feature_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """MSE, relative L1 and NSR of one batch of predictions ``(B, C, H, W)`` against ``target``."""
    meter = ErrorMeter(TargetStats.of([target]))
    meter.update(pred, target)
    return meter.result()


# -- the algorithm ------------------------------------------------------------------------------------------
def _mobilenet(space: Any) -> MobileNetSpace:
    if not isinstance(space, MobileNetSpace):
        raise ConfigError(f"dna searches the mobilenet space (its blocks are the space's stages), not "
                          f"{getattr(space, 'name', space)!r}; set space.name=mobilenet")
    return space


def _teacher(space: MobileNetSpace, cfg: "DNA.Config") -> tuple[TeacherFeatures, dict[str, Any]]:
    """The teacher of ``cfg`` (checked against the space) and its description."""
    if cfg.metric not in METRICS:
        raise ConfigError(f"unknown algorithm.metric {cfg.metric!r}; choose one of {', '.join(METRICS)}")
    n = len(space.layout.stages)
    if not 0 <= cfg.block < n:
        raise ConfigError(f"algorithm.block={cfg.block} but the space has {n} searchable stages (blocks 0..{n - 1})")
    model, desc = load_teacher(cfg, space.cfg.in_channels)
    stages = list(cfg.teacher_stages)
    if not stages:
        if not cfg.teacher:
            raise ConfigError("set algorithm.teacher_stages for a timm teacher: the module names ending its "
                              "stages, e.g. [blocks.1, blocks.2, blocks.3, blocks.4, blocks.5]")
        stages = [f"stages.{i}" for i in range(n)]  # a MobileNetNetwork's searchable stages
    if len(stages) != n:
        raise ConfigError(f"algorithm.teacher_stages names {len(stages)} modules but the student has {n} blocks "
                          f"(one teacher map per searchable stage)")
    teacher = TeacherFeatures(model, stages, cfg.teacher_mode)
    return teacher, {**desc, "stages": stages, "mode": cfg.teacher_mode}


def _check_maps(space: MobileNetSpace, stages: Sequence[str], maps: Sequence[tuple[int, int, int]]) -> None:
    for k, ((_, h, w), size) in enumerate(zip(maps, _stage_out_sizes(space))):
        if (h, w) != (size, size):
            raise ConfigError(f"teacher map {k} ({stages[k]}) is {h}x{w} but student stage {k} outputs "
                              f"{size}x{size}; choose teacher_stages (or space strides) with matching resolutions")


@ALGORITHMS.register("dna")
class DNA(Algorithm):
    """One DNA block: distillation training from a frozen teacher and exhaustive rating of its candidates."""

    name = "dna"

    @dataclass
    class Config:
        block: int = opt(0, ge=0)  # the student block (= searchable stage of the space) this run trains and rates
        teacher: str = ""  # directory written by distilnas train/retrain (arch.json + model.pt)
        teacher_timm: str = ""  # or a timm model name (needs timm; built with pretrained=False)
        teacher_checkpoint: str = ""  # weights of the timm teacher (a local file: there is no download)
        teacher_stages: list[str] = field(default_factory=list)  # modules ending the teacher's stages ([] = stages.0..)
        # eval (paper) | train (official code: batch-statistics BN)
        teacher_mode: str = opt("eval", choices=("eval", "train"))
        depths: list[int] = opt(default_factory=list, ge=1)  # cell depths ([] = 1 .. the stage's depth in the space)
        # block score used by the search: rel_l1 (paper) | mse | nsr; lower is better
        metric: str = opt("rel_l1", choices=METRICS)

    @classmethod
    def build_supernet(cls, space: Any, cfg: Any) -> DNABlock:
        """Block ``cfg.block``'s cells, with widths from the teacher's maps (loaded and probed here)."""
        space = _mobilenet(space)
        teacher, desc = _teacher(space, cfg)
        maps = teacher.probe(space.input_shape())
        _check_maps(space, desc["stages"], maps)
        return build_block(space, cfg.block, maps, cfg.depths)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.space = _mobilenet(self.space)
        self.teacher, self.teacher_desc = _teacher(self.space, self.cfg)
        self.maps = self.teacher.probe(self.space.input_shape())
        self._mse_sum, self._samples = 0.0, 0

    def setup(self, data: Any, device: torch.device, optimizer: torch.optim.Optimizer | None = None) -> None:
        super().setup(data, device, optimizer)
        self.teacher.to(device, channels_last=data.train_x.dim() == 4)

    # -- training ---------------------------------------------------------------------------------------
    def _pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(block input, teacher target) for images ``x``: (x or Y_{i-1}, Y_i)."""
        i = self.cfg.block
        maps = self.teacher(x, upto=i)
        return (x if i == 0 else maps[i - 1]), maps[i]

    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int, epoch: int, num_epochs: int) -> StepOutput:
        candidate = self.supernet.sample(path_rng(self.seed, step))
        inputs, target = self._pair(x)
        loss = F.mse_loss(self.supernet(inputs, candidate), target)  # paper eq. 5
        loss.backward()
        self._mse_sum += loss.item() * len(x)
        self._samples += len(x)
        # no classification here: correct=0; the teacher's forward is the extra cost
        return StepOutput(loss.item(), None, len(x), passes=1, forward_images=len(x))

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        mse = self._mse_sum / max(1, self._samples)
        self._mse_sum, self._samples = 0.0, 0
        return {"train_mse": mse, "block": self.cfg.block}

    # -- rating -----------------------------------------------------------------------------------------
    def to_candidate(self, arch: Any) -> BlockCandidate:
        """A candidate of this block from a candidate, its string, or a full MobileNet arch (its stage)."""
        if isinstance(arch, BlockCandidate):
            return arch
        if isinstance(arch, MobileNetArch):
            return self.supernet.parse("-".join(arch.stages[self.cfg.block]))
        return self.supernet.parse(str(arch))

    def candidates(self, n: int, rng: random.Random) -> list[BlockCandidate]:
        """Every candidate of the block (``n`` and ``rng`` are not used: the rating is exhaustive)."""
        return self.supernet.candidates()

    @torch.no_grad()
    def score(self, archs: list[Any], data: Any, cfg: Any, progress: bool | None = None,
              channels_last: bool = False) -> Iterator[dict[str, Any]]:
        """Rate ``archs`` (this block's candidates): ``{"arch", "score", "mse", "rel_l1", "nsr", "flops",
        "params", "depth"}`` each, after BN recalibration on a fixed set of training images."""
        from ..train.evaluation import recalibrate_bn
        from ..progress import progress_bar

        cands = list(dict.fromkeys(self.to_candidate(a) for a in archs))
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        dev, i = self.device, self.cfg.block
        n = cfg.val_size or len(data.val_x)
        if n == 0 or len(data.val_x) == 0:
            raise ConfigError("dna rates candidates on validation images; set data.val_size > 0")
        # 1. inputs for BN recalibration (the same images for every candidate) and the teacher's validation
        #    maps, computed once
        recal: list[torch.Tensor] = []
        if cfg.bn_recal_batches > 0:
            g = torch.Generator().manual_seed(0)
            idx = torch.randperm(len(data.train_x), generator=g)[: cfg.bn_recal_batches * cfg.bn_recal_batch_size]
            for xb in gather(data.train_x, idx).split(cfg.bn_recal_batch_size):
                recal.append(self._pair(xb.to(dev).contiguous(memory_format=fmt))[0])
        val = [self._pair(gather(data.val_x[k:min(k + cfg.batch_size, n)].to(dev).contiguous(memory_format=fmt)))
               for k in range(0, min(n, len(data.val_x)), cfg.batch_size)]
        stats = TargetStats.of([t for _, t in val])
        # 2. every candidate: recalibrate, predict, compare
        bar = progress_bar(total=len(cands), desc=f"rating block {i}", disable=None if progress is None else not progress)
        try:
            for cand in cands:
                fwd = lambda x, c=cand: self.supernet(x, c)  # noqa: E731
                if recal:
                    recalibrate_bn(self.supernet, recal, fwd)
                self.supernet.eval()
                meter = ErrorMeter(stats)
                for inputs, target in val:
                    meter.update(fwd(inputs), target)
                errors = meter.result()
                cost = self.space.stage_cost(i, cand.codes)
                bar.update(1)
                yield {"arch": str(cand), "score": errors[self.cfg.metric], **errors, "flops": cost["flops"],
                       "params": cost["params"], "depth": cand.depth}
        finally:
            bar.close()

    def describe(self) -> dict[str, Any]:
        """What ``dna-merge`` needs besides the scores: block, metric, depths, teacher and its maps."""
        return {"block": self.cfg.block, "num_blocks": len(self.space.layout.stages), "metric": self.cfg.metric,
                "depths": list(self.supernet.depths), "teacher": self.teacher_desc,
                "teacher_maps": [list(m) for m in self.maps]}

    def finalize(self, scores: list[dict[str, Any]], top: int) -> dict[str, Any]:
        """A block run selects no architecture (``ranked`` is empty); ``result.json`` gets the ``dna``
        section and the block's ``top`` best candidates (``block_best``)."""
        return {"ranked": [], "dna": self.describe(),
                "block_best": sorted(scores, key=lambda r: r["score"])[:top]}
