"""``distilnas rank PRED.jsonl TRUTH``: rank correlation (Kendall tau, Spearman, top-k) of predictions
against a ground truth, with bootstrap intervals and the truth's noise ceiling."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Add ``rank``."""
    s = sub.add_parser("rank", help="rank correlation of predictions against ground truth")
    s.add_argument("pred", help="JSON lines with 'arch' and a score")
    s.add_argument("truth", help="ground-truth table.json, {arch: acc or [acc per seed]}, or JSON lines")
    s.add_argument("--key", default="accuracy", help="ground-truth field (default accuracy)")
    s.add_argument("--pred-key", default=None, help="prediction field (default accuracy, else score)")
    s.add_argument("--lower-is-better", action="store_true",
                   help="the prediction field is better when lower (e.g. --pred-key loss)")
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
    s.add_argument("--drop-nonfinite", action="store_true",
                   help="rank without predictions that are null/NaN/inf (default: refuse them)")
    s.set_defaults(func=cmd_rank)


def cmd_rank(args: argparse.Namespace) -> int:
    from ..evaluate.groundtruth import load_truth
    from ..evaluate.metrics import align, format_table, noise_ceiling, rank_metrics

    pred = _read_pred(args.pred, args.pred_key)
    bad = sorted(a for a, v in pred.items() if not math.isfinite(v))
    if bad and not args.drop_nonfinite:
        raise ValueError(f"{len(bad)} of {len(pred)} predictions in {args.pred} are not finite (null, NaN or inf; "
                         f"e.g. {bad[0]}): a diverged run? pass --drop-nonfinite to rank the rest")
    if bad:
        print(f"distilnas: warning: dropped {len(bad)} non-finite predictions of {len(pred)}", file=sys.stderr)
        pred = {a: v for a, v in pred.items() if math.isfinite(v)}
    if args.lower_is_better:  # e.g. --pred-key loss: rank by the negated score
        pred = {a: -v for a, v in pred.items()}
    truth = load_truth(args.truth, args.key)
    bad_truth = sorted(a for a, v in truth.items() if not all(math.isfinite(x) for x in v))
    if bad_truth:
        raise ValueError(f"{len(bad_truth)} ground-truth entries in {args.truth} are not finite (null or NaN; e.g. "
                         f"{bad_truth[0]}): a diverged training? rebuild or drop them")
    archs, p, t = align(pred, truth)
    rows = [(f"{Path(args.pred).name} vs truth", rank_metrics(p, t, bootstrap=args.bootstrap))]
    multi = {a: truth[a] for a in archs if len(truth[a]) >= 2}
    if len(multi) >= 2:
        rows.append(("noise ceiling (seed vs seed)", noise_ceiling(multi, bootstrap=args.bootstrap)))
    print(f"{len(archs)} architectures in common (pred {len(pred)}, truth {len(truth)}); "
          f"pred key {args.pred_key or 'auto'}{' (lower is better)' if args.lower_is_better else ''}, "
          f"truth key {args.key}")
    print(format_table(rows))
    return 0


def _read_pred(path: str, key: str | None) -> dict[str, float]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"prediction file {p} not found (JSON lines with 'arch' and a score)")
    out: dict[str, float] = {}
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            k = key or ("accuracy" if "accuracy" in r else "score")
            if isinstance(r[k], bool):
                raise TypeError("a boolean is not a score")
            out[r["arch"].strip()] = math.nan if r[k] is None else float(r[k])  # null: not finite
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise ValueError(f"{p}:{n}: expected a JSON object with 'arch' and "
                             f"{key or 'accuracy/score'!r}") from None
    if not out:
        raise ValueError(f"prediction file {p} holds no predictions (JSON lines with 'arch' and a score)")
    return out
