"""``distilnas bench build CONFIG --out DIR`` and ``distilnas bench report DIR``: ground-truth tables
(architectures trained standalone with several seeds; resumable) and their summary with the noise ceiling."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ._common import load_config


def add_parser(sub: Any) -> None:
    """Add ``bench build`` and ``bench report``."""
    b = sub.add_parser("bench", help="ground-truth tables").add_subparsers(dest="bench_command", required=True)
    s = b.add_parser("build", help="train sampled architectures standalone (resumable)")
    s.add_argument("config")
    s.add_argument("--out", required=True)
    s.add_argument("--archs", default=None, help="train these instead of sampling")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_bench_build)
    s = b.add_parser("report", help="summary and noise ceiling of a table")
    s.add_argument("path", help="table.json or its directory")
    s.set_defaults(func=cmd_bench_report)


def cmd_bench_build(args: argparse.Namespace) -> int:
    from ..config import from_dict
    from ..evaluate.groundtruth import BenchConfig, build_ground_truth

    from ..evaluate.groundtruth import _space
    from ..spaces import read_archs

    cfg = from_dict(BenchConfig, load_config(args.config, args.overrides))
    archs = [str(a) for a in read_archs(args.archs, _space(cfg))] if args.archs else None  # checked before writing
    t0 = time.time()
    table = build_ground_truth(cfg, args.out, archs=archs, progress=None)
    print(f"ground truth for {len(table['archs'])} architectures in {time.time() - t0:.0f}s -> {args.out}/table.json")
    return _bench_report(Path(args.out) / "table.json")


def cmd_bench_report(args: argparse.Namespace) -> int:
    p = Path(args.path)
    return _bench_report(p / "table.json" if p.is_dir() else p)


def _bench_report(path: Path) -> int:
    import numpy as np

    from ..evaluate.groundtruth import load_truth
    from ..evaluate.metrics import format_table, noise_ceiling

    truth = load_truth(path)
    accs = np.array([np.mean(v) for v in truth.values()])
    print(f"{len(truth)} architectures; mean accuracy {accs.mean():.2f}% (min {accs.min():.2f}, max {accs.max():.2f})")
    multi = {a: v for a, v in truth.items() if len(v) >= 2}
    if len(multi) >= 2:
        nc = noise_ceiling(multi)
        print(format_table([("noise ceiling (seed vs seed)", nc)]))
        print(f"mean per-arch seed std: {nc.get('seed_std', float('nan')):.3f} points")
    return 0


def interrupted(args: argparse.Namespace) -> str:
    """What an interrupted ``bench build`` kept (finished runs are appended to runs.jsonl)."""
    if getattr(args, "bench_command", "") == "build" and (Path(args.out) / "runs.jsonl").exists():
        return f"finished runs are kept in {args.out}/runs.jsonl; rerun the same command to continue"
    return "no run had finished; rerun the command"
