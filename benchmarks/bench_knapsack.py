"""Speed of DNA's exact constrained search (distilnas.search.search) against brute force.

    python benchmarks/bench_knapsack.py [--repeats 3] [--seed 0]

Random potentials with realistic magnitudes (per candidate: FLOPs uniform integers 1e6..1e8, params
uniform integers 1e4..1e6, score uniform 0.1..1.0), in two flavours: ``independent`` (as above) and
``correlated`` (params ~ FLOPs / 100, score falling with log FLOPs plus noise: bigger candidates are
better, which makes the Pareto sets larger). Budgets sit at 20% and 50% of the way from the cheapest to
the most expensive architecture. Every time is the median of ``--repeats`` runs of ``search`` on a freshly
built :class:`Potentials` (so the conversion to arrays is included), measured with ``time.perf_counter``.

1. A size brute force can do (6 blocks x 15 candidates = 1.1e7 architectures): the exhaustive numpy search
   next to the knapsack search, their results checked equal, and the speedup.
2. DNA's size (6 blocks x 7,776 = 6^5 candidates, 2.2e23 architectures): the knapsack search alone, one
   budget and two, top 1 and top 10, and the exact Pareto front.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from distilnas.search import Candidate, Potentials, exhaustive_search, pareto_front, search


def random_arrays(rng: np.random.Generator, blocks: int, n: int, flavour: str) -> list[tuple[np.ndarray, ...]]:
    out = []
    for _ in range(blocks):
        flops = rng.integers(1_000_000, 100_000_001, n)
        if flavour == "correlated":
            params = np.clip(np.round(flops / 100 * rng.uniform(0.5, 1.5, n)), 10_000, 1_000_000).astype(np.int64)
            z = np.log(flops / 1e6) / np.log(100.0)
            score = np.clip(1.0 - 0.8 * z + rng.normal(0.0, 0.05, n), 0.1, 1.0)
        else:
            params = rng.integers(10_000, 1_000_001, n)
            score = rng.uniform(0.1, 1.0, n)
        out.append((score, flops, params))
    return out


def build(arrays: list[tuple[np.ndarray, ...]]) -> Potentials:
    blocks = tuple(tuple(Candidate(f"{i}.{j}", float(s), int(f), int(p)) for j, (s, f, p) in enumerate(zip(*a)))
                   for i, a in enumerate(arrays))
    return Potentials(blocks, 5_000_000, 50_000)


def budgets(arrays: list[tuple[np.ndarray, ...]], frac: float) -> tuple[float, float]:
    lo_f = 5_000_000 + sum(int(a[1].min()) for a in arrays)
    hi_f = 5_000_000 + sum(int(a[1].max()) for a in arrays)
    lo_p = 50_000 + sum(int(a[2].min()) for a in arrays)
    hi_p = 50_000 + sum(int(a[2].max()) for a in arrays)
    return lo_f + frac * (hi_f - lo_f), lo_p + frac * (hi_p - lo_p)


def timed(fn: Callable[[Potentials], Any], arrays: list[tuple[np.ndarray, ...]], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        pot = build(arrays)
        t0 = time.perf_counter()
        out = fn(pot)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def keys(sols: list, two: bool) -> list[tuple]:
    return [(s.score, s.flops) + ((s.params,) if two else ()) for s in sols]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    print("1) 6 blocks x 15 candidates = 11,390,625 architectures: knapsack vs exhaustive (numpy) brute force")
    print(f"{'flavour':<12}{'budgets':<16}{'top':>4}{'knapsack ms':>13}{'brute ms':>10}{'speedup':>9}  same")
    for flavour in ("independent", "correlated"):
        arrays = random_arrays(rng, 6, 15, flavour)
        for frac in (0.2, 0.5):
            f, p = budgets(arrays, frac)
            for two in (False, True):
                for top in (1, 10):
                    pb = p if two else None
                    t_fast, fast = timed(lambda pot: search(pot, f, pb, top), arrays, args.repeats)
                    t_slow, slow = timed(lambda pot: exhaustive_search(pot, f, pb, top), arrays, args.repeats)
                    label = f"{'flops+params' if two else 'flops'} {frac:.0%}"
                    print(f"{flavour:<12}{label:<16}{top:>4}{t_fast * 1e3:>13.1f}{t_slow * 1e3:>10.0f}"
                          f"{t_slow / t_fast:>8.0f}x  {keys(fast, two) == keys(slow, two)}")

    print("\n2) 6 blocks x 7,776 candidates (2.2e23 architectures): knapsack search")
    print(f"{'flavour':<12}{'budgets':<16}{'top':>4}{'knapsack ms':>13}  best score")
    for flavour in ("independent", "correlated"):
        arrays = random_arrays(rng, 6, 7776, flavour)
        for frac in (0.2, 0.5):
            f, p = budgets(arrays, frac)
            for two in (False, True):
                for top in (1, 10):
                    pb = p if two else None
                    t, sols = timed(lambda pot: search(pot, f, pb, top), arrays, args.repeats)
                    label = f"{'flops+params' if two else 'flops'} {frac:.0%}"
                    print(f"{flavour:<12}{label:<16}{top:>4}{t * 1e3:>13.1f}  {sols[0].score:.4f}")
        t, front = timed(lambda pot: pareto_front(pot, "flops"), arrays, args.repeats)
        print(f"{flavour:<12}{'Pareto front':<16}{'':>4}{t * 1e3:>13.1f}  ({len(front)} points)")


if __name__ == "__main__":
    main()
