"""Cost of the official NB201 cell semantics (dead_edges=official) against skipping dead edges, per SPOS
training step, measured side by side (interleaved rounds, medians), one thread.

    python benchmarks/bench_dead_edges.py [--C 8 --N 3 --size 16 --channels 1] [--rounds 5 --steps 30]

Both supernets hold the same weights and train the same random paths on the same batches; the ratio
official / skip is printed with its per-round range. ``dead_edges=full`` (every edge run on its input,
zeros and dead ends included, as the official cell) is timed too, for what computing the constants in
closed form saves.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
import torch.nn.functional as F

from distilnas.spaces import NB201Config, NB201Space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=3)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    kw = dict(C=args.C, N=args.N, in_channels=args.channels, input_size=args.size)
    spaces = {mode: NB201Space(NB201Config(**kw, dead_edges=mode)) for mode in ("skip", "official", "full")}
    nets = {}
    for k, s in spaces.items():
        torch.manual_seed(0)  # the same weights in every variant
        nets[k] = s.supernet().to(memory_format=torch.channels_last)
    opts = {k: torch.optim.SGD(n.parameters(), lr=0.01, momentum=0.9) for k, n in nets.items()}
    x = torch.randn(args.batch, args.channels, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    times: dict[str, list[float]] = {k: [] for k in nets}
    for r in range(args.rounds):
        for name in nets:  # interleaved: every round times each variant on the same paths
            rng = random.Random(r)
            archs = [spaces["skip"].sample(rng) for _ in range(args.steps)]
            t0 = time.perf_counter()
            for a in archs:
                opts[name].zero_grad(set_to_none=True)
                F.cross_entropy(nets[name](x, a), y).backward()
                opts[name].step()
            times[name].append((time.perf_counter() - t0) / args.steps * 1000)
    base = times["skip"]
    print(f"NB201 C={args.C} N={args.N} {args.channels}x{args.size}x{args.size}, batch {args.batch}, 1 thread, "
          f"{args.rounds} rounds x {args.steps} random paths")
    for name, t in times.items():
        ratios = [a / b for a, b in zip(t, base)]
        print(f"{name:9s} {statistics.median(t):7.2f} ms/step  ratio to skip {statistics.median(ratios):.3f} "
              f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
