"""``distilnas dna-merge``, ``dna-search``, ``dna-fit`` and ``dna-score``: DNA's block runs joined into a
potentials file, the exact constrained search over it, DONNA's linear accuracy model, and block-score
sums of given architectures (docs/dna.md).

    distilnas dna-merge DIR [DIR ...] --out POTENTIALS.json
    distilnas dna-search POTENTIALS --max-flops F --out RESULT.json
    distilnas dna-fit POTENTIALS TRUTH --out FIT.json
    distilnas dna-score POTENTIALS --archs FILE --out OUT.jsonl [--metric score] [--skip-missing]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path
from typing import Any

from ..search.potentials import DEFAULT_SEP

__all__ = ["add_parser", "parse_amount"]

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def add_parser(sub: Any) -> None:
    """Add the ``dna-*`` commands."""
    s = sub.add_parser("dna-merge", help="join DNA block runs into a potentials file")
    s.add_argument("dirs", nargs="+", metavar="DIR", help="run directories of blocks 0..n-1 (any order)")
    s.add_argument("--out", required=True, help="potentials JSON (a config.yaml for retrain goes next to it)")
    s.set_defaults(func=cmd_dna_merge)

    s = sub.add_parser("dna-score", help="DNA block-score sums of given architectures (for distilnas rank)")
    s.add_argument("potentials", help="potentials JSON from dna-merge")
    s.add_argument("--archs", required=True, help="file with one architecture string per line")
    s.add_argument("--out", required=True, help="output JSON lines: arch, score (= -sum), block_sum")
    s.add_argument("--metric", default="score", help="candidate field to sum: score (default), mse, rel_l1, nsr")
    s.add_argument("--skip-missing", action="store_true",
                   help="leave out architectures whose block candidates are not in the potentials")
    s.set_defaults(func=cmd_dna_score)

    s = sub.add_parser("dna-search", help="exact constrained search over DNA block potentials")
    s.add_argument("potentials", help="potentials JSON (fixed cost + per-block candidates)")
    s.add_argument("--max-flops", type=parse_amount, required=True, help="FLOPs budget incl. fixed part, e.g. 400M")
    s.add_argument("--max-params", type=parse_amount, default=None, help="params budget incl. fixed part, e.g. 5M")
    s.add_argument("--top", type=int, default=1, help="also keep the K best architectures (default 1)")
    s.add_argument("--out", required=True, help="result JSON")
    s.add_argument("--linear", default=None, help="search DONNA's predicted accuracy (model from dna-fit)")
    s.add_argument("--sep", default=DEFAULT_SEP, help=f"joins block arch strings (default {DEFAULT_SEP!r})")
    s.set_defaults(func=cmd_dna_search)

    s = sub.add_parser("dna-fit", help="fit DONNA's linear accuracy model on block scores")
    s.add_argument("potentials", help="potentials JSON")
    s.add_argument("truth", help="ground truth: table.json from bench build, or {arch: acc or [acc per seed]}")
    s.add_argument("--out", required=True, help="model JSON for dna-search --linear")
    s.add_argument("--key", default="accuracy", help="ground-truth field (default accuracy)")
    s.add_argument("--metric", default="score", help="candidate field used per block (default score; e.g. nsr)")
    s.add_argument("--ridge", type=float, default=0.0, help="L2 penalty on the block weights (default 0)")
    s.add_argument("--folds", type=int, default=None, help="k-fold cross-validation (default leave-one-out)")
    s.add_argument("--seed", type=int, default=0, help="shuffles architectures into folds")
    s.add_argument("--sep", default=DEFAULT_SEP, help=f"joins block arch strings (default {DEFAULT_SEP!r})")
    s.set_defaults(func=cmd_dna_fit)


def cmd_dna_merge(args: argparse.Namespace) -> int:
    from ..search.blocks import merge_blocks, write_run_config
    from ..search.potentials import save_potentials

    pot = merge_blocks(args.dirs)
    out = Path(args.out)
    meta = pot.extra["meta"]
    cfg_path = write_run_config(out, meta)
    save_potentials(pot, out)
    blocks, _ = pot.table
    lo = pot.fixed_flops + sum(float(b[:, 0].min()) for b in blocks)
    hi = pot.fixed_flops + sum(float(b[:, 0].max()) for b in blocks)
    print(f"merged {len(pot.blocks)} blocks ({', '.join(str(len(b)) for b in pot.blocks)} candidates; "
          f"{pot.num_archs:.3g} architectures, FLOPs {lo:,.0f} .. {hi:,.0f}, metric {meta['metric']}) -> {out}")
    print(f"wrote {cfg_path} (space and data, for distilnas retrain); next: distilnas dna-search {out} "
          f"--max-flops F --out {out.parent / 'result.json'}")
    return 0


def cmd_dna_score(args: argparse.Namespace) -> int:
    from ..search.blocks import dna_scores
    from ..search.potentials import load_potentials

    pot = load_potentials(args.potentials)
    p = Path(args.archs)
    if not p.is_file():
        raise FileNotFoundError(f"architecture file {p} not found (one architecture string per line)")
    archs = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rows, skipped = dna_scores(pot, archs, args.metric, args.skip_missing)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
    best = max(rows, key=lambda r: r["score"]) if rows else None
    print(f"scored {len(rows)} architectures ({len(skipped)} skipped: candidates not in the potentials) -> {out}"
          + (f"; best {best['arch']} (sum of {args.metric} {best['block_sum']:.4g})"
             if best and math.isfinite(best["score"]) else ""))
    return 0


def parse_amount(text: str) -> float:
    """A budget such as ``600000000``, ``6e8``, ``600M``, ``4.2m`` or ``1.5G`` (k, M, G, T suffixes)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount (e.g. 600M, 6e8, 4.2M)")
    return float(m.group(1)) * _SUFFIX[m.group(2).lower()]


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def cmd_dna_search(args: argparse.Namespace) -> int:
    from ..search.knapsack import pareto_front, search
    from ..search.linear import load_linear
    from ..search.potentials import load_potentials

    pot = load_potentials(args.potentials)
    model = load_linear(args.linear) if args.linear else None
    if model is not None:
        pot = model.to_potentials(pot)
    t0 = time.perf_counter()
    found = search(pot, args.max_flops, args.max_params, args.top, sep=args.sep)
    seconds = time.perf_counter() - t0
    fronts = {"flops": pareto_front(pot, "flops", sep=args.sep)}
    if args.max_params is not None:
        fronts["params"] = pareto_front(pot, "params", sep=args.sep)
    best = found[0]
    result: dict[str, Any] = {
        **best.to_dict(),
        "budgets": {"max_flops": _number(args.max_flops),
                    "max_params": None if args.max_params is None else _number(args.max_params)},
        "search_seconds": round(seconds, 6),
        "num_archs": pot.num_archs,
        "potentials": str(args.potentials),
        "linear": args.linear,
        "sep": args.sep,
    }
    if model is not None:
        result["predicted_accuracy"] = -best.score
    if args.top > 1:
        result["top"] = [s.to_dict() for s in found]
    result["pareto_front"] = {k: [{"arch": s.arch, "score": s.score, "flops": s.flops, "params": s.params}
                                  for s in v] for k, v in fronts.items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    what = f"predicted accuracy {-best.score:.3f}" if model is not None else f"score {best.score:.4f}"
    print(f"best of {pot.num_archs:,} architectures: {best.arch}  {what}  FLOPs {best.flops:,}  "
          f"params {best.params:,}  (search {seconds * 1000:.0f} ms{f', {len(found)} kept' if args.top > 1 else ''})"
          f" -> {out}")
    return 0


def cmd_dna_fit(args: argparse.Namespace) -> int:
    from ..evaluate.groundtruth import load_truth
    from ..search.linear import fit_linear, save_linear
    from ..search.potentials import load_potentials

    pot = load_potentials(args.potentials)
    truth = load_truth(args.truth, args.key)
    model = fit_linear(pot, truth, metric=args.metric, ridge=args.ridge, folds=args.folds, seed=args.seed,
                       sep=args.sep)
    save_linear(model, args.out)
    cv = "leave-one-out" if args.folds is None else f"{args.folds}-fold"

    def fmt(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.3f}"

    print(f"fit on {model.n} architectures ({model.skipped} not in the potentials): R^2 {fmt(model.r2)}, "
          f"{cv} Kendall tau {fmt(model.kendall_tau)} (plain sum {fmt(model.kendall_tau_sum)}) -> {args.out}")
    return 0
