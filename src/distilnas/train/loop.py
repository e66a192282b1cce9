"""The one training loop that drives every algorithm, and the search run around it.

``run_search`` (what ``distilnas search`` calls):
1. resolve the config and write ``DIR/config.yaml``;
2. train the supernet: per step, zero the gradients, let the algorithm do its forward/backward,
   all-reduce gradients across data-parallel ranks, clip, SGD step, cosine schedule step;
3. after every epoch: one line of ``DIR/metrics.jsonl`` and ``DIR/checkpoint.pt`` (atomic; ``--resume``
   continues from it exactly: model, optimiser, schedule, algorithm state and the data order);
4. score the candidate architectures with the supernet (BN recalibration) into ``DIR/scores.jsonl`` and
   write ``DIR/result.json`` with the selected architecture(s), their accuracy, FLOPs and params.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import torch
from torch import nn

from ..algorithms.base import ALGORITHMS, Algorithm
from ..config import MAX_SEED, ConfigError, from_dict, opt, to_dict, dump_yaml
from ..data import DataConfig, Splits, load_dataset, make_loader
from ..devices import resolve_device
from ..environment import environment
from ..evaluate.scoring import ScoreConfig
from ..fileio import LOCK_NAME, OutputError, atomic_open, dumps, prepare_out_dir, run_lock
from ..search.evolution import evolution_search, samples_in_range
from ..spaces import SearchSpace, build_space_config, check_data, create_space, read_archs
from . import distributed as dist
from ..errors import DivergenceError, RunError
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .optim import OptimConfig, make_optimizer
from .parallel import torch_threads

__all__ = ["TrainConfig", "SelectConfig", "SearchConfig", "RunError", "DivergenceError", "resolve_config", "build_run",
           "run_search", "train_supernet", "load_supernet", "check_data", "read_archs"]


@dataclass
class TrainConfig(OptimConfig):
    """Supernet training: the optimiser and schedule (:class:`~distilnas.train.optim.OptimConfig`, the same
    type as a standalone recipe) with the supernet's defaults, plus how the run executes."""

    epochs: int = opt(10, ge=1)
    lr: float = opt(0.05, gt=0)
    channels_last: bool = True  # channels_last memory format (faster convolutions on CPUs; same numbers)
    steps_per_epoch: int = opt(0, ge=0)  # 0 = one pass over the training split; else at most one pass
    device: str = "auto"  # auto = cuda when available, else cpu
    # torch CPU threads: 1 (default) is reproducible and never falls behind on a busy machine; 0 = torch's
    # default (one per CPU the process may use); docs/performance.md measures the choice
    threads: int = opt(1, ge=0)
    log_every: int = opt(50, ge=0)  # steps between step lines in metrics.jsonl (0 = epoch lines only)
    max_nonfinite: int = opt(0, ge=0)  # steps with a NaN/inf loss or gradient skipped before the run stops (0 = stop at the first)
    tensorboard: bool = False  # also write metrics.jsonl's numbers as TensorBoard scalars to DIR/tensorboard
    # every N epochs also keep the weights as DIR/snapshots/epochE.pt (0 = none): score one with `distilnas
    # score DIR/snapshots/epoch6.pt ...` to see how the ranking changes during training
    snapshot_every: int = opt(0, ge=0)
    # the gradients of the weights off a step's sampled path: "none" clears them, so the optimiser skips those
    # weights (no weight decay, no momentum step: they stay as they are); "zeros" zeroes them, as PyTorch < 2.0
    # did and the official Cream, SPOS and DNA code therefore does: every weight sampled once keeps taking
    # momentum and weight-decay steps while other paths train (docs/cream.md, "Where the official code differs")
    zero_grad: str = opt("none", choices=("none", "zeros"))


@dataclass
class SelectConfig:
    """Final selection: which architectures the trained supernet scores."""

    num_archs: int = opt(100, ge=1)  # architectures scored by the search (ignored when archs_file is set)
    archs_file: str = ""  # score these instead: one architecture string per line
    top: int = opt(10, ge=1)  # how many of the best to list in result.json
    sample_seed: int = opt(0, ge=0, le=MAX_SEED)  # seed of the search's candidates
    # evolution (SPOS's search over the supernet, with the FLOPs constraint) or random (uniform samples)
    method: str = opt("evolution", choices=("evolution", "random"))
    population: int = opt(10, ge=1)  # evolution: candidates per generation (SPOS: 50)
    parents: int = opt(5, ge=1)  # evolution: best architectures bred from (SPOS: 10)
    mutation_prob: float = opt(0.1, ge=0, le=1)  # evolution: probability of re-drawing each choice
    flops_min: float = opt(0.0, ge=0)  # the FLOPs constraint of the search (0 = none)
    flops_max: float = opt(0.0, ge=0)


@dataclass
class SearchConfig:
    """Everything a search run needs; ``distilnas search CONFIG key=value ...`` fills it."""

    seed: int = opt(0, ge=0, le=MAX_SEED)
    space: dict[str, Any] = field(default_factory=lambda: {"name": "nb201"})  # name + the space's options
    data: DataConfig = field(default_factory=DataConfig)
    algorithm: dict[str, Any] = field(default_factory=lambda: {"name": "spos"})  # name + its options
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    select: SelectConfig = field(default_factory=SelectConfig)


def resolve_config(data: dict[str, Any]) -> SearchConfig:
    """Check every section (the space's and algorithm's options against their own ``Config``) and fill
    in all defaults, so that the saved config reproduces the run by itself."""
    cfg = from_dict(SearchConfig, data)
    space_name = str(cfg.space.get("name", "nb201"))
    space_cfg = build_space_config(space_name, cfg.space)
    cfg.space = {"name": space_name, **to_dict(space_cfg)}
    algo_name = str(cfg.algorithm.get("name", "spos"))
    algo_cls = ALGORITHMS.get(algo_name)
    algo_cfg = from_dict(algo_cls.Config, {k: v for k, v in cfg.algorithm.items() if k != "name"}, "algorithm")
    cfg.algorithm = {"name": algo_name, **to_dict(algo_cfg)}
    return cfg


def _device(name: str) -> torch.device:
    return resolve_device(name, "train.device", dist.local_rank() if dist.is_distributed() else None)


@dataclass
class Run:
    """The live objects of a search run."""

    cfg: SearchConfig
    space: SearchSpace[Any]
    supernet: nn.Module
    algorithm: Algorithm
    device: torch.device


def build_run(cfg: SearchConfig, device: torch.device | None = None) -> Run:
    """Space, supernet (initialised from ``cfg.seed``) and algorithm for ``cfg``."""
    space = create_space(cfg.space["name"], build_space_config(cfg.space["name"], cfg.space))
    algo_cls = ALGORITHMS.get(cfg.algorithm["name"])
    algo_cfg = from_dict(algo_cls.Config, {k: v for k, v in cfg.algorithm.items() if k != "name"}, "algorithm")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        supernet = algo_cls.build_supernet(space, algo_cfg)
    device = device or _device(cfg.train.device)
    supernet.to(device)
    algorithm = algo_cls(space, supernet, algo_cfg, cfg.seed, cfg.train.label_smoothing)
    return Run(cfg, space, supernet, algorithm, device)


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with today's defaults for options added since it was written (as saved when
    it no longer resolves)."""
    try:
        return to_dict(resolve_config(saved))
    except ConfigError:
        return saved


class ConfigChange(NamedTuple):
    """One setting in which a run's saved config differs from a new one."""

    key: str  # dotted, e.g. "train.epochs"
    saved: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key}: {self.saved!r} -> {self.new!r}"


def config_changes(cfg: dict[str, Any], saved: dict[str, Any]) -> list[ConfigChange]:
    """Every setting in which a run's saved config (with today's defaults for options added since) differs
    from ``cfg`` (a resolved config as a dict), sorted by key, the runtime-only settings
    (:data:`RUNTIME_KEYS`) left out: what resuming the run checks, and what a suite checks before it takes
    an existing run folder as one of its runs."""
    return [d for d in _config_diff(cfg, _with_defaults(saved)) if d.key not in RUNTIME_KEYS]


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[ConfigChange]:
    out = []
    for k in sorted(set(a) | set(b)):
        full = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, full + ".")
        elif va != vb:
            out.append(ConfigChange(full, vb, va))
    return out


def train_supernet(run: Run, data: Splits, out: Path | None, resume: bool = False,
                   progress: bool | None = None, extend: bool = False) -> dict[str, Any]:
    """Train ``run.supernet`` with ``run.algorithm``; checkpoints and metrics go to ``out``. Every rank
    resumes from ``out/checkpoint.pt``; only rank 0 writes."""
    from ..progress import progress_bar

    cfg, t = run.cfg, run.cfg.train
    rank, world = dist.rank(), dist.world_size()
    is_main = rank == 0
    if t.batch_size % world:  # each rank trains on batch_size / world images of every global batch
        raise ConfigError(f"train.batch_size={t.batch_size} (the global batch) is not divisible by the "
                          f"{world} data-parallel processes")
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = data.train_x.to(run.device), data.train_y.to(run.device)
    loader = make_loader(x, y, t.batch_size, shuffle=True, drop_last=True, generator=gen,
                         augment=cfg.data.augment, pad=4 if x.shape[-1] >= 32 else 2, shard=(rank, world),
                         channels_last=t.channels_last)
    if t.channels_last:
        run.supernet.to(memory_format=torch.channels_last)
    dist.convert_batchnorm(run.supernet)  # torchrun: BatchNorm statistics over the global batch
    if len(loader) == 0:
        raise ConfigError(f"train.batch_size={t.batch_size} is larger than the training split ({len(x)} images)")
    if t.steps_per_epoch > len(loader):
        raise ConfigError(f"train.steps_per_epoch={t.steps_per_epoch} exceeds one pass ({len(loader)} batches)")
    steps_per_epoch = t.steps_per_epoch or len(loader)
    opt, sched = make_optimizer(run.supernet, t, t.epochs * steps_per_epoch, steps_per_epoch)
    run.algorithm.setup(data, run.device, opt)
    start_epoch, step, passes, fwd_images, seconds = 0, 0, 0, 0, 0.0
    ckpt_path = out / "checkpoint.pt" if out else None
    metrics_path = out / "metrics.jsonl" if out else None
    if resume and ckpt_path is not None:
        state = load_checkpoint(ckpt_path, map_location=run.device)
        saved = _with_defaults(state.get("config") or {})
        diff = config_changes(to_dict(cfg), saved)
        if extend:  # more epochs, nothing else
            longer = [d for d in diff if d.key == "train.epochs"]
            if longer and cfg.train.epochs <= int(saved["train"]["epochs"]):
                raise CheckpointError(f"--extend needs more epochs than the run's {saved['train']['epochs']}; "
                                      f"got train.epochs={cfg.train.epochs}")
            diff = [d for d in diff if d.key != "train.epochs"]
        if diff:
            raise CheckpointError(f"{ckpt_path} was written by a different config "
                                  f"({'; '.join(map(str, diff[:3]))}); resume with the same config or use a new --out")
        try:
            run.supernet.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            run.algorithm.load_state_dict(state["algorithm"])
            gen.set_state(state["data_generator"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {ckpt_path} does not fit this run ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:120]}); use a new --out") from None
        start_epoch, step = state["epoch"], state["step"]
        if extend:  # the schedule over the new total, continued from this step (docs: README, --extend)
            sched.last_epoch = step
            for group, base, factor in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * factor(step)
            sched._last_lr = [g["lr"] for g in opt.param_groups]  # what get_last_lr() reports
        passes, seconds = state.get("passes", 0), state.get("seconds", 0.0)
        fwd_images, nonfinite = state.get("forward_images", 0), state.get("nonfinite", 0)
        if metrics_path is not None and metrics_path.exists() and is_main:  # drop lines past the checkpoint
            keep = [ln for ln in metrics_path.read_text(errors="replace").splitlines() if _metrics_step(ln) <= step]
            metrics_path.write_text("".join(ln + "\n" for ln in keep))
    params = [p for p in run.supernet.parameters() if p.requires_grad]
    # a fresh run starts metrics.jsonl afresh (a run killed before its first checkpoint left lines)
    mf = open(metrics_path, "a" if resume else "w") if (metrics_path is not None and is_main) else None
    if not (resume and ckpt_path is not None):
        nonfinite = 0  # skipped non-finite steps so far (the train.max_nonfinite budget, kept in checkpoints)
    buffers = list(run.supernet.buffers()) if t.max_nonfinite > 0 else []
    tb = _tensorboard(out) if (t.tensorboard and is_main and out is not None) else None
    bar = progress_bar(total=t.epochs * steps_per_epoch, desc=f"{cfg.algorithm['name']} search",
                       disable=(None if is_main else True) if progress is None else (not progress or not is_main),
                       initial=step)
    try:
        for epoch in range(start_epoch, t.epochs):
            run.supernet.train()
            t0 = time.time()
            loss_sum, correct, samples, classified, skipped = 0.0, 0, 0, 0, 0
            for i, (xb, yb) in enumerate(loader):
                if i == steps_per_epoch:
                    break
                opt.zero_grad(set_to_none=t.zero_grad == "none")
                saved = [b.clone() for b in buffers]  # BatchNorm statistics, restored if the step is skipped
                with dist.global_batch():  # torchrun: BatchNorm over all ranks' parts of the batch
                    res = run.algorithm.training_step(xb, yb, step, epoch, t.epochs)
                res = dist.reduce_step(res)  # torchrun: loss and accuracy of the global batch, on every rank
                dist.all_reduce_grads(params)
                grad_norm = (nn.utils.clip_grad_norm_(params, t.grad_clip) if t.grad_clip > 0
                             else _grad_norm(params))
                ok = _finite(res.loss, grad_norm, run.device)
                if not ok:  # skip the update and undo the forward's statistics; stop past train.max_nonfinite
                    nonfinite += 1
                    skipped += 1
                    opt.zero_grad(set_to_none=t.zero_grad == "none")
                    if nonfinite > t.max_nonfinite:
                        raise DivergenceError(_divergence_message(res.loss, grad_norm, step, epoch, t, ckpt_path))
                    with torch.no_grad():
                        for b, v in zip(buffers, saved):
                            b.copy_(v)
                else:
                    opt.step()
                sched.step()
                step += 1
                passes += res.passes
                fwd_images += res.forward_images
                if ok:
                    loss_sum += res.loss * res.samples
                    if res.correct is not None:
                        correct += res.correct
                        classified += res.samples
                    samples += res.samples
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix_str(f"ep {epoch + 1}/{t.epochs} loss {res.loss:.3f}")
                if mf and t.log_every and step % t.log_every == 0:
                    mf.write(dumps({"step": step, "epoch": epoch + 1, "loss": round(res.loss, 5),
                                    "lr": sched.get_last_lr()[0]}) + "\n")
                    if tb is not None:
                        tb.add_scalar("step/loss", res.loss, step)
                        tb.add_scalar("step/lr", sched.get_last_lr()[0], step)
            seconds += time.time() - t0
            extra = run.algorithm.on_epoch_end(epoch)
            line = {"step": step, "epoch": epoch + 1, "train_loss": loss_sum / max(1, samples),
                    **({"train_acc": 100.0 * correct / classified} if classified else {}), "passes": passes,
                    "forward_images": fwd_images, "epoch_seconds": round(time.time() - t0, 2), **extra}
            if skipped:
                line["nonfinite_steps"] = skipped  # this epoch's skipped steps
            if mf:
                mf.write(dumps(line) + "\n")
                mf.flush()
            if tb is not None:
                for key, value in line.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                            and key not in ("step", "epoch"):
                        tb.add_scalar(f"epoch/{key}", value, step)
                tb.flush()
            if is_main and progress is not False:
                acc = f" acc {line['train_acc']:.2f}%" if "train_acc" in line else ""
                bar.write(f"epoch {epoch + 1}/{t.epochs}: loss {line['train_loss']:.4f}{acc} "
                          f"({line['epoch_seconds']:.0f}s)", file=sys.stderr)
            if ckpt_path is not None and is_main:
                save_checkpoint({"config": to_dict(cfg), "epoch": epoch + 1, "step": step, "passes": passes,
                                 "forward_images": fwd_images, "nonfinite": nonfinite,
                                 "seconds": seconds, "model": run.supernet.state_dict(),
                                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                 "algorithm": run.algorithm.state_dict(), "data_generator": gen.get_state()},
                                ckpt_path)
                if t.snapshot_every and (epoch + 1) % t.snapshot_every == 0:  # weights only, for scoring
                    (out / "snapshots").mkdir(exist_ok=True)
                    save_checkpoint({"config": to_dict(cfg), "epoch": epoch + 1, "step": step, "passes": passes,
                                     "model": run.supernet.state_dict(), "algorithm": run.algorithm.state_dict()},
                                    out / "snapshots" / f"epoch{epoch + 1}.pt")
    finally:
        bar.close()
        if mf:
            mf.close()
        if tb is not None:
            tb.close()
    return {"steps": step, "passes": passes, "forward_images": fwd_images, "train_seconds": round(seconds, 2)}


def _tensorboard(out: Path) -> Any:
    """A TensorBoard writer into ``out/tensorboard`` (the optional ``tensorboard`` extra, imported here only)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("train.tensorboard=true needs the tensorboard package: pip install 'distilnas[tensorboard]'") from None
    return SummaryWriter(str(out / "tensorboard"))


def _metrics_step(line: str) -> float:
    """The step of a metrics.jsonl line (a line cut off or garbled counts as past every checkpoint)."""
    try:
        return float(json.loads(line)["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return math.inf


def _grad_norm(params: list[nn.Parameter]) -> torch.Tensor | None:
    """The global gradient norm (without clipping), to catch a non-finite gradient under a finite loss."""
    grads = [p.grad for p in params if p.grad is not None]
    return nn.utils.get_total_norm(grads) if grads else None


def _finite(loss: float, grad_norm: torch.Tensor | None, device: torch.device) -> bool:
    """Whether a step's loss and (clipped-from) gradient norm are finite; under torchrun every rank
    gets the same answer (a non-finite loss on one rank makes the all-reduced gradients non-finite on
    all, but the losses differ), so the ranks skip or stop together."""
    ok = math.isfinite(loss) and (grad_norm is None or bool(torch.isfinite(grad_norm)))
    if dist.world_size() > 1:
        flag = torch.tensor([0.0 if ok else 1.0], device=device)
        torch.distributed.all_reduce(flag)
        ok = flag.item() == 0
    return ok


def _divergence_message(loss: float, grad_norm: torch.Tensor | None, step: int, epoch: int, t: TrainConfig,
                        ckpt_path: Path | None) -> str:
    what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {float(grad_norm)}"
    where = f"step {step + 1} (epoch {epoch + 1})"
    if ckpt_path is not None and ckpt_path.exists():
        saved = f"the last good checkpoint is {ckpt_path} (resumable with --resume)"
    else:
        saved = "no checkpoint was written before it"
    clip = (f"lower train.grad_clip (now {t.grad_clip:g})" if t.grad_clip > 0 else "set train.grad_clip (now off)")
    return (f"training diverged: {what} at {where}; lower train.lr (now {t.lr:g}) or {clip} in a new --out, "
            f"or allow a few bad steps with train.max_nonfinite; {saved}")


def run_search(cfg: SearchConfig, out_dir: str | Path, resume: bool = False,
               progress: bool | None = None, extend: bool = False) -> dict[str, Any]:
    """Train the supernet, score candidates, write ``result.json``; returns the result.

    ``extend``: continue a run (finished or not) with more ``train.epochs``: the learning-rate schedule
    is recomputed for the new total and continued from the checkpoint's step (so the new epochs follow the
    tail of the longer schedule, whose learning rate is higher than where the shorter one ended).

    The run directory is locked for the whole run (:func:`distilnas.fileio.run_lock`): a second run
    into it stops at once with the holder's PID. Everything that can be checked without data (the
    device, the output directory, ``select.archs_file``) is checked before the data is loaded."""
    dist.setup()
    is_main = dist.rank() == 0
    out = Path(out_dir)
    device = _device(cfg.train.device)
    with contextlib.ExitStack() as stack:
        if is_main:
            _refuse_foreign_dir(out)
            prepare_out_dir(out)
            stack.enter_context(run_lock(out))
            (out / "checkpoint.pt.tmp").unlink(missing_ok=True)  # left by a kill -9 while saving
        ckpt = out / "checkpoint.pt"
        resume = resume or extend
        if ckpt.exists() and not resume:
            raise RunError(f"{out} already holds a search (checkpoint.pt); pass --resume to continue it "
                           f"or choose another --out")
        if resume and not ckpt.exists():
            raise RunError(f"--resume: no checkpoint.pt in {out}; drop --resume to start a new search there")
        stack.enter_context(torch_threads(cfg.train.threads))  # restored when the search returns
        run = build_run(cfg, device)
        candidates = (read_archs(cfg.select.archs_file, run.space) if cfg.select.archs_file else None)
        _check_select_range(run, candidates)
        if cfg.train.tensorboard and is_main:
            _tensorboard(out).close()  # the package is there (checked before any data is loaded)
        data = load_dataset(cfg.data)
        check_data(run.space, data, cfg.data.name)
        if is_main:
            dump_yaml(to_dict(cfg), out / "config.yaml")
        stats = train_supernet(run, data, out, resume=resume, progress=progress, extend=extend)
        if dist.world_size() > 1:  # every rank leaves the process group together (a rank exiting while
            torch.distributed.barrier()  # the others still hold it aborted in gloo's teardown)
            torch.distributed.destroy_process_group()
        if not is_main:
            return {}
        return _select(run, data, candidates, out, stats, progress)
    raise AssertionError("unreachable")


# Keys that change how a run executes, not what it computes: a resumed run may set them anew.
RUNTIME_KEYS = ("train.threads", "train.log_every", "train.tensorboard", "train.snapshot_every")

RUN_FILES = ("config.yaml", "checkpoint.pt", "checkpoint.pt.tmp", "metrics.jsonl", "scores.jsonl", "scores.csv",
             "result.json", LOCK_NAME)


def _refuse_foreign_dir(out: Path) -> None:
    """A run directory is new, empty, or a distilnas run's (so a search never scatters its files among a
    user's own, nor into ``/`` or a home directory)."""
    if out.is_symlink() and not out.exists():
        raise OutputError(f"--out {out} is a dangling symbolic link; point it at a directory or choose another path")
    if out.is_dir():
        names = {p.name for p in out.iterdir()}
        others = sorted(names - set(RUN_FILES))
        if others and not names & {"config.yaml", "checkpoint.pt", "metrics.jsonl"}:
            raise OutputError(f"--out {out} is a directory with other files ({', '.join(others[:3])}"
                              f"{', ...' if len(others) > 3 else ''}); choose a new or empty directory")


def _check_select_range(run: Run, candidates: list[Any] | None) -> None:
    """Before training: the selection's FLOPs range must hold an architecture of the space (else the search
    would train, then find nothing to select)."""
    sel = run.cfg.select
    if candidates is not None or not (sel.flops_min or sel.flops_max):
        return
    if sel.flops_max and sel.flops_min > sel.flops_max:
        raise ConfigError(f"select.flops_min={sel.flops_min:g} is above select.flops_max={sel.flops_max:g}; "
                          f"swap them (select.flops_max=0 means no upper bound)")
    if type(run.algorithm).candidates is Algorithm.candidates and not samples_in_range(
            run.space, 1, random.Random(0), sel.flops_min, sel.flops_max, max_tries=2000):
        raise ConfigError(f"select: no architecture with FLOPs in [{sel.flops_min:,.0f}, "
                          f"{sel.flops_max or math.inf:,.0f}] in 2,000 uniform samples of the space; widen "
                          f"select.flops_min / select.flops_max (`distilnas list` shows the space's options)")


def _select(run: Run, data: Splits, candidates: list[Any] | None, out: Path, stats: dict[str, Any],
            progress: bool | None) -> dict[str, Any]:
    """Score the candidates into ``out/scores.jsonl`` and write ``out/result.json``. A score that is not
    finite (a path whose shared weights overflow) is kept in scores.jsonl as null, listed under
    ``nonfinite`` in the result and never selected."""
    cfg, sel, t0 = run.cfg, run.cfg.select, time.time()
    own = type(run.algorithm).candidates is not Algorithm.candidates  # e.g. Cream's board
    # evolution breeds whole architectures of the space: not for methods that score their own units (DNA)
    evolve = not own and type(run.algorithm).score is Algorithm.score and sel.method == "evolution"
    rng = random.Random(sel.sample_seed)
    if candidates is not None and own:
        print(f"distilnas: note: select.archs_file replaces {cfg.algorithm['name']}'s own candidates "
              f"(e.g. Cream's board); the result is the best of the listed architectures", file=sys.stderr)
    scores, bad = [], []

    def score(archs: list[Any]) -> Iterator[dict[str, Any]]:
        for r in run.algorithm.score(archs, data, cfg.score, progress, channels_last=cfg.train.channels_last):
            finite = all(math.isfinite(v) for v in r.values() if isinstance(v, float))
            (scores if finite else bad).append(r)
            yield r if finite else {**r, "accuracy": -math.inf}  # never bred from

    with atomic_open(out / "scores.jsonl") as f:
        if candidates is None and evolve:
            for r in evolution_search(run.space, score, sel.num_archs, rng, sel.population, sel.parents,
                                      sel.mutation_prob, sel.flops_min, sel.flops_max):
                f.write(dumps({**r, "accuracy": None} if r["accuracy"] == -math.inf else r) + "\n")
        else:
            if candidates is None and not own and (sel.flops_min or sel.flops_max):
                candidates = samples_in_range(run.space, sel.num_archs, rng, sel.flops_min, sel.flops_max)
                if not candidates:
                    raise ConfigError(f"select: no architecture of the space has FLOPs in [{sel.flops_min:,.0f}, "
                                      f"{sel.flops_max or math.inf:,.0f}] (in {1000 * sel.num_archs:,} uniform "
                                      f"samples); widen select.flops_min / select.flops_max")
            elif candidates is None:
                candidates = run.algorithm.candidates(sel.num_archs, rng)
            for r in score(candidates):
                f.write(dumps(r) + "\n")
    if not scores:
        raise DivergenceError(f"none of the {len(bad)} scored architectures has a finite score (the supernet's "
                              f"weights are not finite); see {out / 'scores.jsonl'}; train again with a lower train.lr")
    if bad:
        print(f"distilnas: warning: {len(bad)} of {len(bad) + len(scores)} architectures have non-finite scores "
              f"and cannot be selected (listed under 'nonfinite' in result.json)", file=sys.stderr)
    final = run.algorithm.finalize(scores, cfg.select.top)
    bad_archs = {r["arch"] for r in bad}
    ranked = [r for r in final.pop("ranked") if r["arch"] not in bad_archs]  # e.g. Cream's select_by=board
    for r in ranked:
        if "flops" not in r:
            r.update(run.space.cost(run.space.parse(r["arch"])))
    result = {"algorithm": cfg.algorithm["name"], "space": cfg.space["name"], "seed": cfg.seed,
              "arch": ranked[0]["arch"] if ranked else None, "best": ranked[0] if ranked else None,
              "top": ranked, "num_scored": len(scores) + len(bad), **stats,
              "score_seconds": round(time.time() - t0, 2), **final, "environment": environment(run.device)}
    if bad:
        result["nonfinite"] = [r["arch"] for r in bad]
    result["fields"] = RESULT_FIELDS
    _write_csv(run, scores + bad, out / "scores.csv")
    with atomic_open(out / "result.json") as f:
        f.write(dumps(result, indent=2) + "\n")
    return result


RESULT_FIELDS = {
    "accuracy": "the supernet's shared-weight top-1 on the validation images (%), after BatchNorm recalibration: "
                "it ranks architectures; it is not the accuracy of the architecture trained on its own "
                "(distilnas retrain gives that)",
    "loss": "the shared-weight validation cross-entropy",
    "arch": "the selected architecture, the same as best.arch (kept at the top level for scripts)",
    "passes": "forward/backward passes of training (a step of a pair-sampling method counts 2)",
    "forward_images": "images run forward besides the training passes (Cream's teacher, board and meta "
                      "evaluations; 0 for methods without them)",
    "num_scored": "architectures scored by the final selection (scores.jsonl, scores.csv)",
}


def _write_csv(run: Run, rows: list[dict[str, Any]], path: Path) -> None:
    """scores.jsonl as a spreadsheet: arch, accuracy, loss, flops, params (and generation)."""
    import csv

    cols = ["arch", "accuracy", "loss", "flops", "params"] + (["generation"] if any("generation" in r for r in rows)
                                                              else [])
    with atomic_open(path) as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            try:
                cost = run.space.cost(run.space.parse(r["arch"]))
            except ValueError:  # a unit of the method's own (DNA's block candidates carry their costs)
                cost = {}
            full = {**cost, **r}
            w.writerow(["" if full.get(c) is None or (isinstance(full.get(c), float) and not math.isfinite(full[c]))
                        else full.get(c) for c in cols])


def load_supernet(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Run, dict[str, Any]]:
    """Rebuild a trained supernet from a search checkpoint (config and weights); ``path`` may be the
    run directory. ``overrides`` are whole sections merged into the saved config (e.g. ``{"data":
    {...}}``); an override that changes the network so that the weights no longer fit is named as such."""
    state = load_checkpoint(path)
    saved = state.get("config") or {}
    data = {**saved, **overrides} if overrides else saved
    cfg = resolve_config(data)
    run = build_run(cfg)
    try:
        run.supernet.load_state_dict(state["model"])
    except (KeyError, RuntimeError, TypeError, AttributeError) as e:
        changed = []
        if overrides:
            base = _with_defaults(saved)
            changed = [d for d in _config_diff(to_dict(cfg), base)
                       if d.key.split(".")[0] in ("space", "algorithm")]
        if changed:
            raise CheckpointError(f"overriding {changed[0]} does not fit the weights in {path} (it changes the "
                                  f"network the checkpoint was trained as); drop that override") from None
        raise CheckpointError(f"checkpoint {path} does not match its own config ({type(e).__name__})") from None
    return run, state
