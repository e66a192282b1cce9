"""Where a Cream step's time goes: the parts of one step, timed one by one on synthetic inputs.

    python benchmarks/bench_cream_parts.py CONFIG [--device cuda] [--batch 64] [--reps 10] [--threads 1] [key=value ...]

Builds the space and supernet of a search config (e.g. configs/gpu/cream_mobilenet_imagenet.yaml), fills
the board with K random paths, and times on random inputs of the space's shape, summed over several
sampled (student, teacher) path pairs (a path's cost depends on its operations): the plain student step
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

import distilnas  # noqa: F401  (first: bounds OpenMP's spin before torch loads its runtime)
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
    ap.add_argument("--paths", type=int, default=8,
                    help="(student, teacher) path pairs the parts are summed over (costs differ by path)")
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
    x, y = images(args.batch), torch.randint(0, classes, (args.batch,), generator=g).to(dev)
    pairs = [(algo.sample(rng), space.parse(algo.board.entries[rng.randrange(len(algo.board))].arch))
             for _ in range(args.paths)]

    def parts(arch, teacher):
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

        return {"student fwd+bwd (SPOS step)": student, "teacher forward": teacher_forward,
                f"board eval ({algo.cfg.board_val_size} imgs)": board_eval,
                f"matching input ({len(algo.board)} x {algo.cfg.slice} imgs)": deltas, "meta update": meta}

    print(f"{args.config} on {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}), "
          f"batch {args.batch}, input {shape}, {args.threads} thread(s), sum over {args.paths} (student, "
          f"teacher) path pairs of the median of {args.reps}")
    t: dict[str, float] = {}
    for arch, teacher in pairs:
        for name, fn in parts(arch, teacher).items():
            t[name] = t.get(name, 0.0) + timed(fn, args.reps, dev)
    spos = t["student fwd+bwd (SPOS step)"]
    for name, v in t.items():
        print(f"  {name:34s} {1000 * v / args.paths:9.2f} ms/step  {v / spos:5.2f} x SPOS")
    meta = t["meta update"] / algo.cfg.update_iter
    board = t[f"board eval ({algo.cfg.board_val_size} imgs)"]
    cream = sum(v for k, v in t.items() if k != "meta update") + meta
    print(f"  amortised Cream step (meta every {algo.cfg.update_iter}): {cream / spos:.2f} x SPOS; "
          f"without the held-out board evaluation (board_eval=train, the official code's): "
          f"{(cream - board) / spos:.2f} x; student + teacher forward alone: "
          f"{(spos + t['teacher forward']) / spos:.2f} x")


if __name__ == "__main__":
    main()
