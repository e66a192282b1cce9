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
    s.add_argument("path", help="table.json or its directory (a directory still being built: the runs so far)")
    s.add_argument("--figure", default=None, metavar="PNG",
                   help="also draw accuracy against FLOPs and seed against seed (needs matplotlib)")
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
    # a folder without table.json is a build still running (or cut off): its runs so far
    return _bench_report(p / "table.json" if (p / "table.json").is_file() else p, figure=args.figure)


def _bench_report(path: Path, figure: str | None = None) -> int:
    import numpy as np

    from ..evaluate.groundtruth import load_table, load_truth, load_truth_dir
    from ..evaluate.metrics import format_table, noise_ceiling

    folder = path if path.is_dir() else path.parent if path.name == "table.json" else None  # a bench build's
    if path.is_dir():
        truth = load_truth_dir(path)
        if not truth:
            raise FileNotFoundError(f"{path}/runs.jsonl holds no finished run yet")
        print(f"(no table.json: the {sum(len(v) for v in truth.values())} runs finished so far in {path}/runs.jsonl)")
    else:
        truth = load_truth(path)
    accs = np.array([np.mean(v) for v in truth.values()])
    print(f"{len(truth)} architectures; mean accuracy {accs.mean():.2f}% (min {accs.min():.2f}, max {accs.max():.2f})")
    multi = {a: v for a, v in truth.items() if len(v) >= 2}
    title = f"{(folder or path).name}: {len(truth)} architectures"
    if len(multi) >= 2:
        nc = noise_ceiling(multi, bootstrap=1000)
        print(format_table([("noise ceiling (seed vs seed)", nc)]))
        print(f"mean per-arch seed std: {nc.get('seed_std', float('nan')):.3f} points; the ceiling's interval "
              "resamples the architectures (95%, 1,000 rounds)")
        title += f", noise ceiling tau {nc['kendall_tau']:.3f} ({nc['n']} with >= 2 seeds)"
    if figure:
        from ..report import plot_groundtruth

        # a build's rows carry the seeds' numbers and the FLOPs; another truth file only its values
        rows = load_table(folder) if folder else {a: {"accuracy": v} for a, v in truth.items()}
        print(f"figure -> {plot_groundtruth(rows, figure, title=title)}")
    return 0


def interrupted(args: argparse.Namespace) -> str:
    """What an interrupted ``bench build`` kept (finished runs are appended to runs.jsonl)."""
    if getattr(args, "bench_command", "") == "build" and (Path(args.out) / "runs.jsonl").exists():
        return f"finished runs are kept in {args.out}/runs.jsonl; rerun the same command to continue"
    return "no run had finished; rerun the command"
