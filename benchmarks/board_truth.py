"""Are Cream's teachers good architectures? The final boards' paths against the ground truth.

    # the board paths of every committed Cream seed, trained on their own with the ground truth's recipe
    python benchmarks/board_truth.py archs benchmarks/results/nb201_fmnist16/cream > runs/board_archs.txt
    distilnas bench build configs/bench/groundtruth_nb201_fmnist16.yaml --archs runs/board_archs.txt \\
        --out benchmarks/groundtruth/nb201_fmnist16_cream_boards "seeds=[0]"
    python benchmarks/board_truth.py compare benchmarks/results/nb201_fmnist16/cream \\
        benchmarks/groundtruth/nb201_fmnist16_cream_boards --truth benchmarks/groundtruth/nb201_fmnist16 \\
        benchmarks/groundtruth/nb201_fmnist16_more

``compare`` prints, per seed and overall, where the board's paths fall in the ground truth's distribution
of standalone accuracy (the same recipe and training seeds; percentile against the 128 sampled cells), how
their shared-weight board accuracy ranks them against their standalone accuracy, and the operations they
are made of against a uniform sample (NB201: each of the 5 ops on 1 in 5 edges).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import seed_metadata  # noqa: E402

from distilnas.evaluate.groundtruth import load_truth_dir  # noqa: E402
from distilnas.spaces.nb201 import NB201Arch  # noqa: E402

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def boards(predictions: Path) -> dict[int, Any]:
    """search seed -> the final board (arch, shared-weight accuracy) per seed, from the suite's ``seed<k>.result.json``."""
    return seed_metadata(predictions, "board", "board_truth")


def ops_of(arch: str) -> list[str]:
    return list(NB201Arch.parse(arch).ops)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("archs", help="print the boards' architectures, one per line (for bench build --archs)")
    a.add_argument("predictions")
    c = sub.add_parser("compare", help="the boards' paths against the ground truth")
    c.add_argument("predictions")
    c.add_argument("boards_truth", help="the bench build of the board paths")
    c.add_argument("--truth", nargs="+", required=True, help="the ground-truth builds of the sampled cells")
    args = ap.parse_args(argv)
    bs = boards(Path(args.predictions))
    if args.cmd == "archs":
        print("\n".join(dict.fromkeys(e["arch"] for b in bs.values() for e in b)))
        return 0

    def seed0(path: str) -> dict[str, float]:
        """Training seed 0's accuracy per arch (from runs.jsonl while a build is still running)."""
        return {a: v[0] for a, v in load_truth_dir(path, seed=0).items()}

    board_acc = seed0(args.boards_truth)
    sample: dict[str, float] = {}
    for t in args.truth:
        sample.update(seed0(t))
    ref = np.array(sorted(sample.values()))
    median = float(np.median(ref))
    print(f"ground truth: {len(ref)} sampled cells, standalone test accuracy (training seed 0) median {median:.2f}%")
    rows = []
    for seed, board in sorted(bs.items()):
        accs = [board_acc.get(e["arch"], np.nan) for e in board]
        if not np.isfinite(accs).any():
            print(f"seed {seed}: no board path trained yet")
            continue
        pct = [100.0 * np.searchsorted(ref, x) / len(ref) for x in accs if np.isfinite(x)]
        shared = [e["accuracy"] for e in board]
        tau = kendalltau(shared, accs, nan_policy="omit")[0] if np.isfinite(accs).sum() >= 3 else np.nan
        rows += [(seed, e["arch"], s, x) for e, s, x in zip(board, shared, accs)]
        print(f"seed {seed}: {len(pct)} of {len(board)} board paths trained, standalone {np.nanmean(accs):.2f}% on average, "
              f"percentile {np.mean(pct):.0f} of the sampled cells ({sum(p < 50 for p in pct)} of {len(pct)} "
              f"below the median); board accuracy vs standalone tau {tau:.3f}")
    allacc = np.array([x for *_, x in rows if np.isfinite(x)])
    print(f"all boards: {len(allacc)} paths, standalone {allacc.mean():.2f}% (sampled cells {ref.mean():.2f}%), "
          f"{(allacc < median).mean():.0%} below the sampled cells' median")
    count = Counter(op for _, arch, *_ in rows for op in ops_of(arch))
    total = sum(count.values())
    print("operations on the boards (uniform: 20% each): "
          + ", ".join(f"{op} {count[op] / total:.0%}" for op in OPS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
