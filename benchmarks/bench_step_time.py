"""Training-step time of every algorithm on the micro-benchmark, measured side by side in one process.

    python benchmarks/bench_step_time.py [--steps 40] [--rounds 3] [--threads 0] [--algorithms spos,cream,...]

Each algorithm is built from its preset (configs/bench/<name>_nb201_fmnist16.yaml) on the same data and
device, brought to its steady state (Cream: board full and distillation on, i.e. past its warm-up; RD-NAS:
lambda > 0), then the algorithms take turns: every round times ``--steps`` consecutive training steps
(zero grad, the algorithm's forward/backward, clipping, SGD step) of each algorithm, so that load changes
on a shared machine hit all of them alike. Prints the mean time per step, the forward/backward passes and
forward-only images per step, and the ratios to SPOS per step and per pass.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from distilnas.config import apply_overrides, load_yaml
from distilnas.data import TensorLoader, load_dataset
from distilnas.train.loop import build_run, resolve_config
from distilnas.train.standalone import Recipe, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithms", default="spos,fairnas,rdnas,cream")
    ap.add_argument("--steps", type=int, default=40, help="steps per algorithm per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("overrides", nargs="*", help="config overrides applied to every preset, e.g. data.name=synthetic")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.algorithms.split(",")
    runs = {}
    for name in names:
        raw = apply_overrides(load_yaml(ROOT / f"configs/bench/{name}_nb201_fmnist16.yaml"),
                              ["train.device=cpu", *args.overrides])
        cfg = resolve_config(raw)
        runs[name] = (cfg, build_run(cfg))
    data = load_dataset(next(iter(runs.values()))[0].data)
    x, y = data.train_x, data.train_y
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {args.rounds} rounds x {args.steps} steps")

    state = {}
    for name, (cfg, run) in runs.items():
        run.supernet.to(memory_format=torch.channels_last)
        steps_total = cfg.train.epochs * (len(x) // cfg.train.batch_size)
        opt, _ = make_optimizer(run.supernet, Recipe(lr=cfg.train.lr), steps_total, len(x) // cfg.train.batch_size)
        run.algorithm.setup(data, run.device, opt)
        loader = TensorLoader(x, y, cfg.train.batch_size, shuffle=True, drop_last=True,
                              generator=torch.Generator().manual_seed(0), channels_last=True)
        # steady state: past Cream's warm-up (the board fills in its first steps), lambda > 0 for RD-NAS
        epoch = max(int(run.cfg.algorithm.get("warmup_epochs", 0)), cfg.train.epochs // 2)
        state[name] = {"run": run, "opt": opt, "batches": iter(loader), "loader": loader, "epoch": epoch,
                       "step": 0, "seconds": 0.0, "steps": 0, "passes": 0, "fwd": 0, "epochs": cfg.train.epochs}

    def take(s: dict, n: int, timed: bool) -> None:
        run, opt = s["run"], s["opt"]
        params = [p for p in run.supernet.parameters() if p.requires_grad]
        t0 = time.perf_counter()
        for _ in range(n):
            try:
                xb, yb = next(s["batches"])
            except StopIteration:
                s["batches"] = iter(s["loader"])
                xb, yb = next(s["batches"])
            opt.zero_grad(set_to_none=True)
            res = run.algorithm.training_step(xb, yb, s["step"], s["epoch"], s["epochs"])
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            s["step"] += 1
            if timed:
                s["passes"] += res.passes
                s["fwd"] += res.forward_images
        if timed:
            s["seconds"] += time.perf_counter() - t0
            s["steps"] += n

    for s in state.values():
        take(s, 20, timed=False)  # warm-up (and Cream's board fills)
    for _ in range(args.rounds):
        for s in state.values():
            take(s, args.steps, timed=True)

    base = state.get("spos")
    base_step = base["seconds"] / base["steps"] if base else None
    base_pass = base["seconds"] / base["passes"] if base else None
    print(f"\n{'algorithm':10s} {'ms/step':>9s} {'passes/step':>12s} {'fwd img/step':>13s} {'ms/pass':>9s}"
          f" {'step/SPOS':>10s} {'pass/SPOS':>10s}")
    for name, s in state.items():
        per_step, per_pass = s["seconds"] / s["steps"], s["seconds"] / s["passes"]
        r1 = f"{per_step / base_step:10.2f}" if base_step else f"{'-':>10s}"
        r2 = f"{per_pass / base_pass:10.2f}" if base_pass else f"{'-':>10s}"
        print(f"{name:10s} {1000 * per_step:9.1f} {s['passes'] / s['steps']:12.2f} {s['fwd'] / s['steps']:13.0f}"
              f" {1000 * per_pass:9.1f} {r1} {r2}")
    cream = state.get("cream")
    if cream:
        a = cream["run"].algorithm
        print(f"\ncream: board {len(a.board)} entries, {a.stats['meta_updates']} meta updates, "
              f"{a.stats['distilled']} distilled steps")


if __name__ == "__main__":
    main()
