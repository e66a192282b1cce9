"""``distilnas report RUN [--truth TABLE] [--out DIR]``: figures and report.md of a search run, or of DNA's
potentials (docs/report.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Add ``report``."""
    s = sub.add_parser("report", help="figures and report.md of a search run")
    s.add_argument("run", help="a search's run directory (its --out), or DNA's potentials JSON (dna-merge)")
    s.add_argument("--search", default=None, help="with potentials: dna-search's result JSON (Pareto front)")
    s.add_argument("--truth", default=None, help="ground-truth table.json: predicted vs true accuracy")
    s.add_argument("--pred", default=None, help="predictions to rank (default RUN/gt_scores.jsonl, else RUN/scores.jsonl)")
    s.add_argument("--out", default=None, help="folder for the figures and report.md (default the run directory)")
    s.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_dna_report, write_report

    if Path(args.run).is_file():  # a DNA potentials file (dna-merge's output)
        path = write_dna_report(args.run, args.search, args.out)
    else:
        path = write_report(args.run, args.truth, args.out, args.pred)
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    print(f"report: {path} ({', '.join(pngs)})")
    return 0
