"""Which operations a supernet's ranking rewards: Kendall tau between each entry's predictions and the number
of edges of each operation kind (NAS-Bench-201 cells), or each network's size (MobileNet-style strings),
beside the same tau for the ground truth.

    python benchmarks/op_bias.py benchmarks/suites/nb201_fmnist16_budget.yaml spos-e6 spos spos-e24 \\
        cream-e6 cream cream-e24 [--seeds 0,1,2] [--half all|tuning|report] [--markdown]
    python benchmarks/op_bias.py benchmarks/suites/mobilenet_w0125_fmnist16.yaml spos cream dna

The suite file supplies the ground truth, the split and the predictions folder (``<label>/seed<s>.jsonl``).
NB201 operation kinds: convolutions (``nor_conv_1x1`` + ``nor_conv_3x3``), pooling (``avg_pool_3x3``), skip
and none. A supernet whose tau with "conv" sits below the ground truth's under-rates convolution-heavy
cells, the bias of weight sharing towards cells that train fast (issue 12: why Cream ranks as it does).
MobileNet features: real (non-``id``) layers, mean kernel size and mean expansion over those layers, and
the FLOPs and params the ground-truth table records: whether a ranking sees capacity as the table does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import SpecError, load_suite, load_truths, read_predictions, render_table, truth_dirs  # noqa: E402

from distilnas.arch import ArchError  # noqa: E402
from distilnas.ops.mbconv import parse_op  # noqa: E402
from distilnas.spaces.mobilenet import MobileNetArch  # noqa: E402

KINDS = {"conv": ("nor_conv_1x1", "nor_conv_3x3"), "pool": ("avg_pool_3x3",), "skip": ("skip_connect",),
         "none": ("none",)}


def op_counts(arch: str) -> dict[str, int]:
    """Edges of each kind in an NB201 cell string (``|op~0|+|op~0|op~1|+|...|``)."""
    ops = [tok.split("~")[0] for tok in arch.replace("+", "|").split("|") if "~" in tok]
    return {k: sum(o in names for o in ops) for k, names in KINDS.items()}


def size_features(arch: str, sizes: dict[str, dict[str, float]]) -> dict[str, float]:
    """A MobileNet-style string's layers, mean kernel and mean expansion of its real layers, and its FLOPs
    and params from the ground-truth table (``sizes``)."""
    ops = [op for codes in MobileNetArch.parse(arch).stages for op in map(parse_op, codes) if op is not None]
    return {"layers": len(ops), "kernel": float(np.mean([k for k, _ in ops])),
            "expansion": float(np.mean([e for _, e in ops])),
            "flops": sizes.get(arch, {}).get("flops", np.nan), "params": sizes.get(arch, {}).get("params", np.nan)}


def table_sizes(suite: dict) -> dict[str, dict[str, float]]:
    """arch -> {flops, params} from the suite's ground-truth tables (``table.json``, else ``runs.jsonl``)."""
    out: dict[str, dict[str, float]] = {}
    for d in truth_dirs(suite):
        if (d / "table.json").exists():
            recs = list(json.loads((d / "table.json").read_text()).get("archs", {}).items())
        elif (d / "runs.jsonl").exists():
            recs = [(r.get("arch"), r) for r in map(json.loads, (d / "runs.jsonl").read_text().splitlines())]
        else:
            continue
        out.update({a: {k: r[k] for k in ("flops", "params") if k in r} for a, r in recs if a})
    return out


def features(archs: list[str], suite: dict) -> dict[str, np.ndarray]:
    """Per feature, its value for every architecture: NB201 edge counts, or MobileNet sizes (ArchError when
    the strings are neither)."""
    if all("|" in a for a in archs):
        return {k: np.array([op_counts(a)[k] for a in archs]) for k in KINDS}
    sizes = table_sizes(suite)
    rows = [size_features(a, sizes) for a in archs]
    return {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]} if rows else {}


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
        if not suite.get("split"):
            print(f"op_bias: error: {args.suite} has no split: use --half all", file=sys.stderr)
            return 2
        keep = set(json.loads(Path(suite["split"]).read_text())[args.half])
        truth = {a: v for a, v in truth.items() if a in keep}
    archs = sorted(truth)
    try:
        counts = features(archs, suite)
    except ArchError as e:
        print(f"op_bias: error: {e}", file=sys.stderr)
        return 2
    kinds = list(counts)
    predictions = Path(suite.get("predictions", ""))
    head = ["entry", "seeds", *[f"tau with {k}" for k in kinds]]
    rows = [["ground truth", "", *[f"{kendalltau([truth[a] for a in archs], counts[k], nan_policy='omit')[0]:+.2f}"
                                   for k in kinds]]]
    for lab in args.labels:
        files = [predictions / lab / f"seed{s}.jsonl" for s in seeds]
        files = [f for f in files if f.exists()]
        if not files:
            print(f"op_bias: error: no predictions of {lab!r} for seeds {seeds} in {predictions}", file=sys.stderr)
            return 2
        taus: dict[str, list[float]] = {k: [] for k in kinds}
        for f in files:
            p = read_predictions(f)
            v = [p.get(a, np.nan) for a in archs]
            for k in kinds:
                taus[k].append(kendalltau(v, counts[k], nan_policy="omit")[0])
        rows.append([lab, str(len(files)), *[f"{np.mean(taus[k]):+.2f}" for k in kinds]])
    print(f"{len(archs)} architectures ({args.half}); per entry the mean over its seeds")
    print(render_table(head, rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
