"""Throughput of every zero-cost proxy on the official NAS-Bench-201 network.

Official size: C=16, N=5, 3x32x32 inputs, 10 classes, ``dead_edges: full`` (every edge runs, as in the
official network, so NASWOT and Zen see its modules); one batch of 64. CIFAR-10 is not on this machine,
so the batch is seeded random normal images with random labels (throughput does not depend on the
pixels). Each proxy scores the same few random architectures with
:func:`distilnas.proxies.score_archs` (network built from the seed, proxy, bookkeeping) after one
untimed warm-up architecture; ``params`` / ``flops`` read the space's cost table.

    python benchmarks/bench_proxies.py --threads 1 --archs 5
    python benchmarks/bench_proxies.py --proxies snip,synflow --workers 2 --archs 8
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
import warnings

import torch

from distilnas.proxies import PROXIES, score_archs
from distilnas.spaces import NB201Config, NB201Space


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads of this process (default 1)")
    p.add_argument("--archs", type=int, default=5, help="random architectures per proxy (default 5)")
    p.add_argument("--workers", type=int, default=1, help="score_archs worker processes (default 1)")
    p.add_argument("--proxies", default="", help="comma-separated names (default: all registered)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    space = NB201Space(NB201Config(dead_edges="full"))  # the official NB201 network, every edge run
    rng = random.Random(args.seed)
    archs = [space.sample(rng) for _ in range(args.archs + 1)]
    warm, timed = archs[0], archs[1:]
    g = torch.Generator().manual_seed(args.seed)
    batch = (torch.randn(64, *space.input_shape(), generator=g), torch.randint(0, 10, (64,), generator=g))
    names = [n for n in args.proxies.split(",") if n] or PROXIES.list()

    print(f"NB201 C={space.cfg.C} N={space.cfg.N} {space.input_shape()} {space.cfg.num_classes} classes, "
          f"dead_edges {space.cfg.dead_edges}, batch 64 "
          f"of seeded random normal data (CIFAR-10 is not on this machine)")
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.workers} worker(s), "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"{len(timed)} archs per proxy after 1 warm-up; the machine may be shared, so times are noisy")
    print(f"{'proxy':<10} {'archs/s':>9} {'median s/arch':>14} {'failed':>7}")
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # failures are counted below
            list(score_archs(name, space, [warm], batch, seed=args.seed))
            t0 = time.perf_counter()
            rows = list(score_archs(name, space, timed, batch, seed=args.seed, workers=args.workers))
            elapsed = time.perf_counter() - t0
        median = statistics.median(r["seconds"] for r in rows)
        failed = sum("error" in r for r in rows)
        print(f"{name:<10} {len(rows) / elapsed:>9.2f} {median:>14.3f} {failed:>7}")


if __name__ == "__main__":
    main()
