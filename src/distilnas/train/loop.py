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

import json
import os
import sys
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..algorithms import ALGORITHMS, Algorithm
from ..config import ConfigError, build_space_config, from_dict, to_dict, dump_yaml
from ..data import DataConfig, Splits, load_dataset, make_loader
from ..evaluate.scoring import ScoreConfig
from ..fileio import atomic_open
from ..spaces import SearchSpace, create_space
from . import distributed as dist
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .standalone import Recipe, make_optimizer

__all__ = ["TrainConfig", "SelectConfig", "SearchConfig", "RunError", "resolve_config", "build_run",
           "run_search", "train_supernet", "load_supernet", "check_data", "read_archs"]


class RunError(RuntimeError):
    """A run that cannot start as asked (e.g. it would overwrite finished work)."""


@dataclass
class TrainConfig:
    """Supernet training: SGD with momentum (or Adam), warm-up then cosine decay, per step."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    grad_clip: float = 5.0  # max global gradient norm; 0 = off
    optimizer: str = "sgd"  # sgd | adam | rmsprop
    schedule: str = "cosine"  # cosine | linear | step (x0.9 per epoch) | constant, after the warm-up
    no_decay_bn_bias: bool = False  # no weight decay on biases and BatchNorm weights
    channels_last: bool = True  # channels_last memory format (faster convolutions on CPUs; same numbers)
    steps_per_epoch: int = 0  # 0 = one pass over the training split; else at most one pass
    device: str = "auto"  # auto = cuda when available, else cpu
    threads: int = 0  # torch CPU threads (0 = torch's default)
    log_every: int = 50  # steps between step lines in metrics.jsonl (0 = epoch lines only)


@dataclass
class SelectConfig:
    """Final selection: which architectures the trained supernet scores."""

    num_archs: int = 100  # distinct random architectures to score (ignored when archs_file is set)
    archs_file: str = ""  # score these instead: one architecture string per line
    top: int = 10  # how many of the best to list in result.json
    sample_seed: int = 0  # seed of the random candidates


@dataclass
class SearchConfig:
    """Everything a search run needs; ``distilnas search CONFIG key=value ...`` fills it."""

    seed: int = 0
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
    if name == "auto":
        if dist.is_distributed() and torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank())
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_data(space: SearchSpace[Any], data: Splits, dataset: str) -> None:
    """One-line ConfigError when the dataset ``dataset`` does not fit the space's input or classes."""
    want, have = space.input_shape(), data.input_shape
    if want != have:
        raise ConfigError(
            f"space expects inputs {want} but {dataset} gives {have}; set space.in_channels={have[0]} "
            f"space.input_size={have[1]}")
    nc = getattr(space.cfg, "num_classes", data.num_classes)
    if nc != data.num_classes:
        raise ConfigError(f"space.num_classes={nc} but {dataset} has {data.num_classes} classes")


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


def _recipe(t: TrainConfig) -> Recipe:
    return Recipe(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                  weight_decay=t.weight_decay, warmup_epochs=t.warmup_epochs,
                  label_smoothing=t.label_smoothing, grad_clip=t.grad_clip, optimizer=t.optimizer,
                  schedule=t.schedule, no_decay_bn_bias=t.no_decay_bn_bias)


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        full = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, full + ".")
        elif va != vb:
            out.append(f"{full}: {vb!r} -> {va!r}")
    return out


def train_supernet(run: Run, data: Splits, out: Path | None, resume: bool = False,
                   progress: bool | None = None) -> dict[str, Any]:
    """Train ``run.supernet`` with ``run.algorithm``; checkpoints and metrics go to ``out``. Every rank
    resumes from ``out/checkpoint.pt``; only rank 0 writes."""
    from ..progress import progress_bar

    cfg, t = run.cfg, run.cfg.train
    rank, world = dist.rank(), dist.world_size()
    is_main = rank == 0
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = data.train_x.to(run.device), data.train_y.to(run.device)
    loader = make_loader(x, y, t.batch_size, shuffle=True, drop_last=True, generator=gen,
                         augment=cfg.data.augment, pad=4 if x.shape[-1] >= 32 else 2, shard=(rank, world),
                         channels_last=t.channels_last)
    if t.channels_last:
        run.supernet.to(memory_format=torch.channels_last)
    if len(loader) == 0:
        raise ConfigError(f"train.batch_size={t.batch_size} is larger than the training split ({len(x)} images)")
    if t.steps_per_epoch > len(loader):
        raise ConfigError(f"train.steps_per_epoch={t.steps_per_epoch} exceeds one pass ({len(loader)} batches)")
    steps_per_epoch = t.steps_per_epoch or len(loader)
    opt, sched = make_optimizer(run.supernet, _recipe(t), t.epochs * steps_per_epoch, steps_per_epoch)
    run.algorithm.setup(data, run.device, opt)
    start_epoch, step, passes, fwd_images, seconds = 0, 0, 0, 0, 0.0
    ckpt_path = out / "checkpoint.pt" if out else None
    metrics_path = out / "metrics.jsonl" if out else None
    if resume and ckpt_path is not None:
        state = load_checkpoint(ckpt_path, map_location=run.device)
        try:  # the checkpoint's config with today's defaults for options added since it was written
            saved = to_dict(resolve_config(state.get("config") or {}))
        except ConfigError:
            saved = state.get("config") or {}
        diff = _config_diff(to_dict(cfg), saved)
        if diff:
            raise CheckpointError(f"{ckpt_path} was written by a different config ({'; '.join(diff[:3])}); "
                                  f"resume with the same config or use a new --out")
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
        passes, seconds = state.get("passes", 0), state.get("seconds", 0.0)
        fwd_images = state.get("forward_images", 0)
        if metrics_path is not None and metrics_path.exists() and is_main:  # drop lines past the checkpoint
            keep = [ln for ln in metrics_path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
            metrics_path.write_text("".join(ln + "\n" for ln in keep))
    params = [p for p in run.supernet.parameters() if p.requires_grad]
    mf = open(metrics_path, "a") if (metrics_path is not None and is_main) else None
    bar = progress_bar(total=t.epochs * steps_per_epoch, desc=f"{cfg.algorithm['name']} search",
                       disable=(None if is_main else True) if progress is None else (not progress or not is_main))
    bar.update(step)
    try:
        for epoch in range(start_epoch, t.epochs):
            run.supernet.train()
            t0 = time.time()
            loss_sum, correct, samples, classified = 0.0, 0, 0, 0
            for i, (xb, yb) in enumerate(loader):
                if i == steps_per_epoch:
                    break
                opt.zero_grad(set_to_none=True)
                res = run.algorithm.training_step(xb, yb, step, epoch, t.epochs)
                dist.all_reduce_grads(params)
                if t.grad_clip > 0:
                    nn.utils.clip_grad_norm_(params, t.grad_clip)
                opt.step()
                sched.step()
                step += 1
                passes += res.passes
                fwd_images += res.forward_images
                loss_sum += res.loss * res.samples
                if res.correct is not None:
                    correct += res.correct
                    classified += res.samples
                samples += res.samples
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix_str(f"ep {epoch + 1}/{t.epochs} loss {res.loss:.3f}")
                if mf and t.log_every and step % t.log_every == 0:
                    mf.write(json.dumps({"step": step, "epoch": epoch + 1, "loss": round(res.loss, 5),
                                         "lr": sched.get_last_lr()[0]}) + "\n")
            seconds += time.time() - t0
            extra = run.algorithm.on_epoch_end(epoch)
            line = {"step": step, "epoch": epoch + 1, "train_loss": loss_sum / max(1, samples),
                    **({"train_acc": 100.0 * correct / classified} if classified else {}), "passes": passes,
                    "forward_images": fwd_images, "epoch_seconds": round(time.time() - t0, 2), **extra}
            if mf:
                mf.write(json.dumps(line) + "\n")
                mf.flush()
            if is_main and progress is not False:
                acc = f" acc {line['train_acc']:.2f}%" if "train_acc" in line else ""
                bar.write(f"epoch {epoch + 1}/{t.epochs}: loss {line['train_loss']:.4f}{acc} "
                          f"({line['epoch_seconds']:.0f}s)", file=sys.stderr)
            if ckpt_path is not None and is_main:
                save_checkpoint({"config": to_dict(cfg), "epoch": epoch + 1, "step": step, "passes": passes,
                                 "forward_images": fwd_images,
                                 "seconds": seconds, "model": run.supernet.state_dict(),
                                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                 "algorithm": run.algorithm.state_dict(), "data_generator": gen.get_state()},
                                ckpt_path)
    finally:
        bar.close()
        if mf:
            mf.close()
    return {"steps": step, "passes": passes, "forward_images": fwd_images, "train_seconds": round(seconds, 2)}


def read_archs(path: str | Path, space: SearchSpace[Any]) -> list[Any]:
    """Architectures of ``space`` from a file of one string per line (blank lines and ``#`` comments
    skipped); a missing file or a malformed line is a one-line ConfigError naming ``file:line``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"architecture file {p} not found (one architecture string per line)")
    archs = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                archs.append(space.parse(line))
            except ValueError as e:
                raise ConfigError(f"{p}:{n}: {e}") from None
    return archs


def run_search(cfg: SearchConfig, out_dir: str | Path, resume: bool = False,
               progress: bool | None = None) -> dict[str, Any]:
    """Train the supernet, score candidates, write ``result.json``; returns the result."""
    out = Path(out_dir)
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise RunError(f"{out} already holds a search (checkpoint.pt); pass --resume to continue it "
                       f"or choose another --out")
    if resume and not ckpt.exists():
        raise RunError(f"--resume: no checkpoint.pt in {out}; drop --resume to start a new search there")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    dist.setup()
    is_main = dist.rank() == 0
    data = load_dataset(cfg.data)
    run = build_run(cfg)
    check_data(run.space, data, cfg.data.name)
    candidates = (read_archs(cfg.select.archs_file, run.space) if cfg.select.archs_file else None)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        dump_yaml(to_dict(cfg), out / "config.yaml")
    stats = train_supernet(run, data, out, resume=resume, progress=progress)
    if not is_main:
        return {}
    t0 = time.time()
    if candidates is None:
        candidates = run.algorithm.candidates(cfg.select.num_archs, random.Random(cfg.select.sample_seed))
    scores = []
    with atomic_open(out / "scores.jsonl") as f:
        for r in run.algorithm.score(candidates, data, cfg.score, progress, channels_last=cfg.train.channels_last):
            f.write(json.dumps(r) + "\n")
            scores.append(r)
    final = run.algorithm.finalize(scores, cfg.select.top)
    ranked = final.pop("ranked")
    for r in ranked:
        if "flops" not in r:
            r.update(run.space.cost(run.space.parse(r["arch"])))
    result = {"algorithm": cfg.algorithm["name"], "space": cfg.space["name"], "seed": cfg.seed,
              "arch": ranked[0]["arch"] if ranked else None, "best": ranked[0] if ranked else None,
              "top": ranked, "num_scored": len(scores), **stats, "score_seconds": round(time.time() - t0, 2),
              **final}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def load_supernet(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Run, dict[str, Any]]:
    """Rebuild a trained supernet from a search checkpoint (config and weights)."""
    state = load_checkpoint(path)
    data = state.get("config") or {}
    if overrides:
        data = {**data, **overrides}
    cfg = resolve_config(data)
    run = build_run(cfg)
    try:
        run.supernet.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} does not match its own config ({type(e).__name__})") from None
    return run, state
