"""Where a Cream step's time goes: the parts of one step, timed one by one on synthetic inputs.

    python benchmarks/bench_cream_parts.py CONFIG [--device cuda] [--batch 64] [--reps 10] [--threads 1] [key=value ...]

Builds the space and supernet of a search config (e.g. configs/gpu/cream_mobilenet_imagenet.yaml), fills
the board with K random paths, and times on random inputs of the space's shape: the plain student step
(forward + backward, i.e. SPOS), the teacher's forward, the board evaluation on ``board_val_size``
images, the matching network's input (the student on every entry's slice), and one meta update
(create-graph gradient, the unrolled validation loss and the meta step). The last line gives the
amortised step of Cream against SPOS for the config's ``update_iter``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import distilnas  # noqa: F401  (first: sets OpenMP's passive waiting before torch loads its runtime)
import torch
import torch.nn.functional as F

from distilnas.algorithms.cream import BoardEntry
from distilnas.config import apply_overrides, load_yaml
from distilnas.data import Splits
from distilnas.train.loop import build_run, resolve_config


def timed(fn, reps: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` after two warm-up calls."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()
    torch.set_num_threads(args.threads)
    cfg = resolve_config(apply_overrides(load_yaml(args.config), [f"train.device={args.device}", *args.overrides]))
    run = build_run(cfg)
    dev, algo, net, space = run.device, run.algorithm, run.supernet, run.space
    net.to(memory_format=torch.channels_last).train()
    shape = space.input_shape()
    classes = space.cfg.num_classes
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.randn(n, *shape, generator=g).to(dev).contiguous(memory_format=torch.channels_last)

    n_val = max(algo.cfg.board_val_size, algo.cfg.meta_val_batch)
    val_x, val_y = images(n_val).cpu(), torch.randint(0, classes, (n_val,), generator=g)
    data = Splits(val_x, val_y, val_x, val_y, val_x[:1], val_y[:1], classes)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    algo.setup(data, dev, opt)
    rng = random.Random(0)
    for _ in range(algo.cfg.board_size):
        a = algo.sample(rng)
        xs = images(algo.cfg.slice)
        with torch.no_grad():
            p = F.softmax(net(xs, a), 1)
        algo.board.update(BoardEntry(str(a), rng.random() * 100, 0.0, 0.0, 0, xs, p))
    arch = algo.sample(rng)
    x, y = images(args.batch), torch.randint(0, classes, (args.batch,), generator=g).to(dev)
    teacher = space.parse(algo.board.entries[0].arch)

    def student() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, arch), y).backward()

    def teacher_forward() -> None:
        with torch.no_grad():
            net(x, teacher)

    def board_eval() -> None:
        with torch.no_grad():
            net(algo._val_x[: algo.cfg.board_val_size], arch)

    def deltas() -> None:
        with torch.no_grad():
            algo._deltas(arch)

    def meta() -> None:
        algo.meta_update(arch, x, step=0)

    parts = {"student fwd+bwd (SPOS step)": student, "teacher forward": teacher_forward,
             f"board eval ({algo.cfg.board_val_size} imgs)": board_eval,
             f"matching input ({len(algo.board)} x {algo.cfg.slice} imgs)": deltas, "meta update": meta}
    print(f"{args.config} on {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}), "
          f"batch {args.batch}, input {shape}, median of {args.reps}")
    t = {}
    for name, fn in parts.items():
        t[name] = timed(fn, args.reps, dev)
        print(f"  {name:34s} {1000 * t[name]:9.2f} ms")
    spos = t["student fwd+bwd (SPOS step)"]
    cream = sum(v for k, v in t.items() if k != "meta update") + t["meta update"] / algo.cfg.update_iter
    print(f"  amortised Cream step (meta every {algo.cfg.update_iter}) {1000 * cream:9.2f} ms = "
          f"{cream / spos:.2f} x SPOS")


if __name__ == "__main__":
    main()
