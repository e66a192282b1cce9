"""Which operations a supernet's ranking rewards: Kendall tau between each entry's predictions and the number
of edges of each operation kind, beside the same tau for the ground truth (NAS-Bench-201 cells).

    python benchmarks/op_bias.py benchmarks/suites/nb201_fmnist16_budget.yaml spos-e6 spos spos-e24 \\
        cream-e6 cream cream-e24 [--seeds 0,1,2] [--half all|tuning|report] [--markdown]

The suite file supplies the ground truth, the split and the predictions folder (``<label>/seed<s>.jsonl``).
Operation kinds: convolutions (``nor_conv_1x1`` + ``nor_conv_3x3``), pooling (``avg_pool_3x3``), skip and
none. A supernet whose tau with "conv" sits below the ground truth's under-rates convolution-heavy cells,
the bias of weight sharing towards cells that train fast (issue 12: why Cream ranks as it does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import SpecError, load_suite, load_truths, read_predictions, render_table  # noqa: E402

KINDS = {"conv": ("nor_conv_1x1", "nor_conv_3x3"), "pool": ("avg_pool_3x3",), "skip": ("skip_connect",),
         "none": ("none",)}


def op_counts(arch: str) -> dict[str, int]:
    """Edges of each kind in an NB201 cell string (``|op~0|+|op~0|op~1|+|...|``)."""
    ops = [tok.split("~")[0] for tok in arch.replace("+", "|").split("|") if "~" in tok]
    return {k: sum(o in names for o in ops) for k, names in KINDS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="op_bias", description=__doc__.splitlines()[0])
    ap.add_argument("suite")
    ap.add_argument("labels", nargs="+")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default the suite's)")
    ap.add_argument("--half", choices=("all", "tuning", "report"), default="all")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    try:
        suite, seeds = load_suite(args.suite, args.seeds)
    except SpecError as e:
        print(f"op_bias: error: {e}", file=sys.stderr)
        return 2
    truth = {a: float(np.mean(v)) for a, v in load_truths(suite).items()}
    if args.half != "all":
        keep = set(json.loads(Path(suite["split"]).read_text())[args.half])
        truth = {a: v for a, v in truth.items() if a in keep}
    archs = sorted(truth)
    counts = {k: np.array([op_counts(a)[k] for a in archs]) for k in KINDS}
    predictions = Path(suite.get("predictions", ""))
    head = ["entry", "seeds", *[f"tau with {k}" for k in KINDS]]
    rows = [["ground truth", "", *[f"{kendalltau([truth[a] for a in archs], counts[k])[0]:+.2f}" for k in KINDS]]]
    for lab in args.labels:
        files = [predictions / lab / f"seed{s}.jsonl" for s in seeds]
        files = [f for f in files if f.exists()]
        if not files:
            print(f"op_bias: error: no predictions of {lab!r} for seeds {seeds} in {predictions}", file=sys.stderr)
            return 2
        taus = {k: [] for k in KINDS}
        for f in files:
            p = read_predictions(f)
            v = [p.get(a, np.nan) for a in archs]
            for k in KINDS:
                taus[k].append(kendalltau(v, counts[k], nan_policy="omit")[0])
        rows.append([lab, str(len(files)), *[f"{np.mean(taus[k]):+.2f}" for k in KINDS]])
    print(f"{len(archs)} cells ({args.half}); per entry the mean over its seeds")
    print(render_table(head, rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
