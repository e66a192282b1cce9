"""Search quality on the micro-benchmark: each method's final pick, trained on its own.

    python benchmarks/pick_truth.py archs benchmarks/results/nb201_fmnist16/{spos,fairnas,rdnas,cream} > runs/picks.txt
    distilnas bench build configs/bench/groundtruth_nb201_fmnist16.yaml --archs runs/picks.txt \\
        --out benchmarks/groundtruth/nb201_fmnist16_picks
    python benchmarks/pick_truth.py compare benchmarks/results/nb201_fmnist16/{spos,fairnas,rdnas,cream} \\
        --picks benchmarks/groundtruth/nb201_fmnist16_picks \\
        --truth benchmarks/groundtruth/nb201_fmnist16 benchmarks/groundtruth/nb201_fmnist16_more

Every search of the suite ends with a pick (``arch`` of ``seed<k>.result.json``: the best of the evolutionary
search over the trained supernet; Cream: the best of its board). ``compare`` gives, per method, the picks'
standalone test accuracy (mean over the ground truth's training seeds, the same recipe as the sampled
cells), averaged over search seeds with a 95% bootstrap interval over search seeds, their percentile among
the sampled cells, and the paired difference from the first method (same search seeds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import seed_metadata  # noqa: E402

from distilnas.evaluate.groundtruth import load_truth_dir  # noqa: E402

RESAMPLES = 2000


def picks(predictions: Path) -> dict[int, Any]:
    """search seed -> the run's pick per search seed, from the suite's ``seed<k>.result.json``."""
    return seed_metadata(predictions, "arch", "pick_truth")


def truth_of(path: Path) -> dict[str, float]:
    """arch -> mean standalone accuracy over training seeds (runs.jsonl while a build is still running)."""
    return {a: float(np.mean(v)) for a, v in load_truth_dir(path).items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("archs", help="every method's picks, one per line (for bench build --archs)")
    a.add_argument("predictions", nargs="+")
    c = sub.add_parser("compare", help="the picks' standalone accuracy, per method")
    c.add_argument("predictions", nargs="+", help="suite prediction folders; the first is the reference")
    c.add_argument("--picks", required=True, help="the bench build of the picks")
    c.add_argument("--truth", nargs="+", required=True, help="the ground-truth builds of the sampled cells")
    c.add_argument("--resamples", type=int, default=RESAMPLES)
    args = ap.parse_args(argv)
    by_method = {Path(p).name: picks(Path(p)) for p in args.predictions}
    if args.cmd == "archs":
        print("\n".join(dict.fromkeys(a for ps in by_method.values() for a in ps.values())))
        return 0
    acc = truth_of(Path(args.picks))
    sample = np.array(sorted(v for t in args.truth for v in truth_of(Path(t)).values()))
    print(f"sampled cells: {len(sample)}, standalone accuracy (mean over training seeds) median "
          f"{np.median(sample):.2f}%, best {sample[-1]:.2f}%")
    ref_name = next(iter(by_method))
    rng = np.random.default_rng(0)
    for name, ps in by_method.items():
        seeds = sorted(s for s in ps if ps[s] in acc)
        if not seeds:
            print(f"{name}: no pick trained yet")
            continue
        x = np.array([acc[ps[s]] for s in seeds])
        boot = x[rng.integers(0, len(x), size=(args.resamples, len(x)))].mean(axis=1)
        pct = np.mean([100.0 * np.searchsorted(sample, v) / len(sample) for v in x])
        line = (f"{name}: {x.mean():.2f}% [{np.percentile(boot, 2.5):.2f}, {np.percentile(boot, 97.5):.2f}] over "
                f"{len(seeds)} search seeds (sd {x.std(ddof=1) if len(x) > 1 else 0:.2f}), percentile {pct:.0f}")
        if name != ref_name:
            paired = [s for s in seeds if ps[s] in acc and by_method[ref_name].get(s) in acc]
            if paired:
                d = np.array([acc[ps[s]] - acc[by_method[ref_name][s]] for s in paired])
                db = d[rng.integers(0, len(d), size=(args.resamples, len(d)))].mean(axis=1)
                lo, hi = np.percentile(db, 2.5), np.percentile(db, 97.5)
                verdict = "better" if lo > 0 else "worse" if hi < 0 else "no evidence"
                line += (f"; vs {ref_name} {d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] over {len(paired)} paired seeds: "
                         f"{verdict if len(paired) >= 3 else 'too few seeds'}")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
