"""Standalone training and supernet scoring against a plain PyTorch loop, measured side by side in one run.

    python benchmarks/bench_standalone.py [--what both] [--archs 4] [--rounds 5] [--steps 40] [--compile]

The micro-benchmark: NAS-Bench-201 cells (C=8, N=3) on fmnist16 (20,000 training and 10,000 validation
images), the first ``--archs`` architectures of the committed ground truth
(benchmarks/groundtruth/nb201_fmnist16/archs.txt), one torch thread.

* standalone: ``train_standalone`` (the ground-truth recipe of bench_config.json, cut to ``--steps`` steps
  of one epoch: the first ``steps x 128`` training images) against a plain loop over the same model
  (``space.build(arch, seed=0)``, channels_last), the same batches (the same seeded permutation), the same
  SGD / cosine ``LambdaLR`` / clipping; then the final evaluation on the 10,000 test images (``evaluate``
  against a plain chunked loop). The two must end with identical weights and metrics (checked).
* scoring: ``score_archs`` (configs/bench/spos_nb201_fmnist16.yaml ``score:`` with ``val_size=10000``,
  as the suite) against a plain loop doing the same BatchNorm recalibration (10 batches of 256, cumulative
  average) and validation pass (chunks of 1000) on one (untrained) supernet in channels_last; the results
  must be identical (checked).

Every round runs the variants in turn (order alternating between rounds), so load changes on a shared
machine hit them alike. Times are the process's CPU time (``time.process_time``; one thread, so waiting
for a core held by another process is not counted) and wall time; the script prints medians over rounds
and the median of the per-round ratios to the plain loop, then architectures scored per second and
ground-truth runs per CPU-hour (one run = one arch x one seed: 3 epochs x 156 steps + the test
evaluation, extrapolated from the per-step and evaluation times).

``--compile``: also time ``torch.compile`` (inductor, default mode) of the same plain loops: the first
call (compilation; cold, then with the on-disk cache warm) and the steady state, interleaved with eager,
and how many steps (or scorings of one architecture) it takes to pay off.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

# ruff: noqa: I001  (distilnas before torch: it sets OMP_WAIT_POLICY before torch starts OpenMP)
import distilnas  # noqa: F401
import torch
import torch.nn.functional as F
from torch import nn

from distilnas.config import from_dict
from distilnas.data import DataConfig, Splits, load_dataset
from distilnas.evaluate.scoring import ScoreConfig, score_archs
from distilnas.spaces import build_space_config, create_space
from distilnas.train.evaluation import bn_layers, evaluate
from distilnas.train.standalone import Recipe, train_standalone

ROOT = Path(__file__).resolve().parents[1]
GT = ROOT / "benchmarks/groundtruth/nb201_fmnist16"
CL = torch.channels_last


def clock() -> tuple[float, float]:
    """CPU seconds of this process and its reaped children (gcc under torch.compile), wall seconds."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system, time.perf_counter()


def since(t: tuple[float, float]) -> tuple[float, float]:
    c, w = clock()
    return c - t[0], w - t[1]


# ----------------------------------------------------------------------------------------- plain loops
def plain_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, r: Recipe, seed: int) -> nn.Module:
    """One epoch over ``x`` the textbook way: same permutation, SGD, cosine LambdaLR, clipping."""
    model.train().to(memory_format=CL)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    steps = len(x) // r.batch_size
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                          weight_decay=r.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(1.0, s / steps))))
    for b in range(steps):
        idx = order[b * r.batch_size:(b + 1) * r.batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def plain_eval(fwd, x: torch.Tensor, y: torch.Tensor, bs: int = 1000) -> dict[str, float]:
    correct, loss_sum = 0, 0.0
    for i in range(0, len(x), bs):
        logits = fwd(x[i:i + bs])
        yb = y[i:i + bs]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    return {"accuracy": 100.0 * correct / len(x), "loss": loss_sum / len(x)}


def _recal_batches(data: Splits, cfg: ScoreConfig) -> tuple:
    g = torch.Generator().manual_seed(cfg.recal_seed)
    idx = torch.randperm(len(data.train_x), generator=g)[: cfg.bn_recal_batches * cfg.bn_recal_batch_size]
    return data.train_x[idx].contiguous(memory_format=CL).split(cfg.bn_recal_batch_size)


def plain_score_one(supernet: nn.Module, fwd, recal, vx, vy, cfg: ScoreConfig) -> dict:
    """BatchNorm recalibration of one path (reset, cumulative average over ``recal``) and validation."""
    layers = bn_layers(supernet)
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    supernet.train()
    with torch.no_grad():
        for xb in recal:
            fwd(xb)
    for m in layers:
        m.momentum = 0.1
    supernet.eval()
    return plain_eval(fwd, vx, vy, cfg.batch_size)


def plain_score(supernet: nn.Module, archs: list, data: Splits, cfg: ScoreConfig) -> list[dict]:
    """BatchNorm recalibration (reset, cumulative average over the same batches) and validation."""
    recal = _recal_batches(data, cfg)
    vx, vy = data.val_x[:cfg.val_size].contiguous(memory_format=CL), data.val_y[:cfg.val_size]
    return [{"arch": str(arch), **plain_score_one(supernet, lambda t, a=arch: supernet(t, a), recal, vx, vy, cfg)}
            for arch in archs]


# ------------------------------------------------------------------------------------------- helpers
def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float]) -> str:
    return f"{med(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})" if xs else "-"


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", choices=("standalone", "scoring", "both"), default="both")
    ap.add_argument("--archs", type=int, default=4, help="architectures (the first of the ground truth's)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40, help="training steps per standalone measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the plain loops")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    bench = json.loads((GT / "bench_config.json").read_text())
    space = create_space("nb201", build_space_config("nb201", bench["space_cfg"]))
    data = load_dataset(from_dict(DataConfig, bench["data"]))
    recipe = from_dict(Recipe, bench["recipe"])
    archs = [space.parse(a) for a in (GT / "archs.txt").read_text().split()[: args.archs]]
    n_train = args.steps * recipe.batch_size
    sub = replace(data, train_x=data.train_x[:n_train], train_y=data.train_y[:n_train])
    steps_run = recipe.epochs * (len(data.train_x) // recipe.batch_size)
    r1 = replace(recipe, epochs=1)
    score_cfg = replace(ScoreConfig(bn_recal_batches=10, bn_recal_batch_size=256), val_size=10000)
    tx, ty = data.test_x.contiguous(memory_format=CL), data.test_y
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {torch.backends.cpu.get_cpu_capability()}; "
          f"{len(archs)} archs, {args.rounds} rounds, {args.steps} steps/measurement; times: CPU s (wall s)")

    t: dict[str, list[tuple[float, float]]] = {}
    ratios: dict[str, list[float]] = {}
    checks: list[str] = []

    def record(name: str, dt: tuple[float, float]) -> None:
        t.setdefault(name, []).append(dt)

    for rnd in range(args.rounds + 1):  # round 0 warms up (oneDNN primitive caches, allocator) untimed
        flip = rnd % 2 == 1
        if args.what in ("standalone", "both"):
            lib_s, pl_s, lib_e, pl_e = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
            for arch in archs:
                for variant in (("plain", "lib") if flip else ("lib", "plain")):
                    model = space.build(arch, seed=0)
                    t0 = clock()
                    if variant == "lib":
                        train_standalone(model, sub, r1, seed=0, eval_sets=())
                    else:
                        plain_train(model, sub.train_x, sub.train_y, r1, seed=0)
                    dt = since(t0)
                    t0 = clock()
                    if variant == "lib":
                        res = evaluate(model, tx, ty)
                    else:
                        res = plain_eval(model, tx, ty)
                    de = since(t0)
                    acc_s, acc_e = (lib_s, lib_e) if variant == "lib" else (pl_s, pl_e)
                    for acc, d in ((acc_s, dt), (acc_e, de)):
                        acc[0] += d[0]
                        acc[1] += d[1]
                    if rnd == 0:
                        if variant == "lib":
                            lib_model, lib_res = model, res
                        else:
                            checks.append(f"standalone {arch}: weights {'identical' if same_weights(model, lib_model) else 'DIFFER'},"
                                          f" test metrics {'identical' if res == lib_res else 'DIFFER'}")
            if rnd:
                n = len(archs) * args.steps
                record("standalone lib", (lib_s[0] / n, lib_s[1] / n))
                record("standalone plain", (pl_s[0] / n, pl_s[1] / n))
                record("test eval lib", (lib_e[0] / len(archs), lib_e[1] / len(archs)))
                record("test eval plain", (pl_e[0] / len(archs), pl_e[1] / len(archs)))
                ratios.setdefault("standalone", []).append(lib_s[0] / pl_s[0])
                ratios.setdefault("test eval", []).append(lib_e[0] / pl_e[0])
        if args.what in ("scoring", "both"):
            torch.manual_seed(0)
            supernet = space.supernet().to(memory_format=CL)
            res = {}
            for variant in (("plain", "lib") if flip else ("lib", "plain")):
                t0 = clock()
                if variant == "lib":
                    res[variant] = list(score_archs(supernet, archs, data, score_cfg, progress=False, channels_last=True))
                else:
                    res[variant] = plain_score(supernet, archs, data, score_cfg)
                dt = since(t0)
                if rnd:
                    record(f"scoring {variant}", (dt[0] / len(archs), dt[1] / len(archs)))
            if rnd:
                ratios.setdefault("scoring", []).append(t["scoring lib"][-1][0] / t["scoring plain"][-1][0])
            else:
                checks.append(f"scoring: results {'identical' if res['lib'] == res['plain'] else 'DIFFER'}")

    print("\nchecks (round 0):")
    for c in checks:
        print("  " + c)
    print(f"\n{'measurement':22s} {'CPU s':>10s} {'wall s':>10s}   (medians over {args.rounds} rounds)")
    for name, v in t.items():
        unit = "/step" if name.startswith("standalone") else "/arch"
        print(f"{name + unit:22s} {med([a for a, _ in v]):10.4f} {med([b for _, b in v]):10.4f}")
    print("\nratio library / plain loop, CPU time, median (min-max) over rounds:")
    for name, v in ratios.items():
        print(f"  {name:12s} {spread(v)}")
    if "scoring lib" in t:
        lib, pl = med([a for a, _ in t["scoring lib"]]), med([a for a, _ in t["scoring plain"]])
        print(f"\narchitectures scored per CPU-second: library {1 / lib:.3f}, plain loop {1 / pl:.3f}")
    if "standalone lib" in t:
        def per_hour(kind: str) -> float:
            step = med([a for a, _ in t[f"standalone {kind}"]])
            ev = med([a for a, _ in t[f"test eval {kind}"]])
            return 3600.0 / (steps_run * step + ev)
        print(f"ground-truth runs per CPU-hour ({steps_run} steps + test evaluation): "
              f"library {per_hour('lib'):.0f}, plain loop {per_hour('plain'):.0f}")
    if args.compile:
        compile_report(space, archs, sub, r1, data, score_cfg, args, steps_run)


# ------------------------------------------------------------------------------------------ compile
class Trainer:
    """The plain loop's step on ``model`` (batch ``b`` of ``x``) through ``m``: eager or compiled."""

    def __init__(self, model: nn.Module, r: Recipe, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model, self.r, self.x, self.y = model.to(memory_format=CL).train(), r, x, y
        self.opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                                   weight_decay=r.weight_decay)

    def step(self, m: nn.Module, b: int) -> None:
        bs = self.r.batch_size
        loss = F.cross_entropy(m(self.x[b * bs:(b + 1) * bs]), self.y[b * bs:(b + 1) * bs])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.r.grad_clip)
        self.opt.step()


def compile_report(space, archs, sub: Splits, r: Recipe, data: Splits, cfg: ScoreConfig, args,
                   steps_run: int) -> None:
    """torch.compile (inductor, default mode) of the plain loops: the first call (compilation, with an empty
    and with a warm on-disk cache) and the steady state, interleaved with eager."""
    import tempfile

    import torch._dynamo
    import torch._inductor.config

    # an empty on-disk cache (the first compile of each graph is cold); compilation in this process, so
    # that its CPU time (and gcc's, a reaped child) is counted
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_standalone_inductor_")
    torch._inductor.config.compile_threads = 1
    # BN recalibration (momentum=None) breaks the graph at float(num_batches_tracked): a warning per graph
    torch._logging.set_logs(dynamo=logging.ERROR)
    print(f"\ntorch.compile (inductor, default mode, compile_threads=1, cache {os.environ['TORCHINDUCTOR_CACHE_DIR']})")
    x, y = sub.train_x.contiguous(memory_format=CL), sub.train_y
    bs, steps = r.batch_size, args.steps
    rows, runs = [], []
    for arch in archs:
        firsts = []
        for seed in (0, 1):  # seed 0: cold cache; seed 1: the same graph again (a new process would see this)
            torch._dynamo.reset()
            trainer = Trainer(space.build(arch, seed=seed), r, x, y)
            cmodel = torch.compile(trainer.model)
            t0 = clock()
            trainer.step(cmodel, 0)
            firsts.append(since(t0))
        model, step = trainer.model, trainer.step
        eager, comp = [], []
        for rnd in range(args.rounds):
            for variant in (("c", "e") if rnd % 2 else ("e", "c")):
                t0 = clock()
                for b in range(steps):
                    step(cmodel if variant == "c" else model, b % (len(x) // bs))
                (comp if variant == "c" else eager).append(since(t0)[0] / steps)
        rows.append(("train step", arch, firsts, med(eager), med(comp)))
        runs.append((med(eager), med(comp), firsts))
    # scoring: the path is a constant of the graph, so every architecture compiles its own graphs (train
    # mode for the BN recalibration, eval mode for validation)
    torch.manual_seed(0)
    supernet = space.supernet().to(memory_format=CL)
    vx, vy = data.val_x[:cfg.val_size].contiguous(memory_format=CL), data.val_y[:cfg.val_size]
    recal = _recal_batches(data, cfg)

    def score(f) -> dict:
        return plain_score_one(supernet, f, recal, vx, vy, cfg)

    for arch in archs:
        firsts = []
        for _ in range(2):  # cold, then warm on-disk cache (the same architecture on another supernet)
            torch._dynamo.reset()
            fwd = torch.compile(lambda t, a=arch: supernet(t, a))
            t0 = clock()
            score(fwd)
            firsts.append(since(t0))
        eager, comp = [], []
        for rnd in range(args.rounds):
            for variant in (("c", "e") if rnd % 2 else ("e", "c")):
                t0 = clock()
                score(fwd if variant == "c" else (lambda t, a=arch: supernet(t, a)))
                (comp if variant == "c" else eager).append(since(t0)[0])
        rows.append(("score arch", arch, firsts, med(eager), med(comp)))
    print("CPU s (first call: CPU s / wall s); pay-off = (first call - compiled) / (eager - compiled), in steps "
          "or in scorings of the same architecture")
    print(f"{'what':11s} {'cold first':>13s} {'warm first':>13s} {'eager':>8s} {'compiled':>9s} {'ratio':>6s}"
          f" {'pays off cold/warm':>19s}  arch")
    for what, arch, firsts, e, c in rows:
        pays = [(f[0] - c) / (e - c) if e > c else float("inf") for f in firsts]
        fs = [f"{f[0]:6.1f}/{f[1]:6.1f}" for f in firsts]
        print(f"{what:11s} {fs[0]:>13s} {fs[1]:>13s} {e:8.4f} {c:9.4f} {c / e:6.2f} "
              f"{' / '.join(f'{p:.0f}' for p in pays):>19s}  {arch}")
    if runs:  # one ground-truth run's training (steps_run steps), mean over the archs
        eager = statistics.mean(steps_run * e for e, _, _ in runs)
        cold = statistics.mean(f[0][0] + (steps_run - 1) * c for _, c, f in runs)
        warm = statistics.mean(f[1][0] + (steps_run - 1) * c for _, c, f in runs)
        print(f"training of one ground-truth run ({steps_run} steps), CPU s, mean over the archs: eager {eager:.1f}, "
              f"compiled with a cold cache {cold:.1f}, with a warm cache {warm:.1f}")


if __name__ == "__main__":
    main()
