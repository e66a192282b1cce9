"""``distilnas search CONFIG [--out DIR] [--resume | --extend] [key=value ...]``: train a supernet with
the config's algorithm, then score and select architectures (docs/quickstart.md)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ._common import load_config


def add_parser(sub: Any) -> None:
    """Add ``search``."""
    s = sub.add_parser("search", help="train a supernet and select architectures",
                       epilog="config sections: seed, space (name + the space's options), data, algorithm (name + "
                              "its options), train, score, select; 'distilnas config CONFIG' prints them all "
                              "with their defaults")
    s.add_argument("config", help="YAML config, e.g. configs/bench/spos_nb201_fmnist16.yaml")
    s.add_argument("--out", help="run directory (default runs/<config>-seed<seed>-<time>)")
    s.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    s.add_argument("--extend", action="store_true",
                   help="continue DIR with more train.epochs (the schedule is recomputed for the new total)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=2 seed=1")
    s.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from ..train.loop import resolve_config, run_search

    cfg = resolve_config(load_config(args.config, args.overrides))
    out = args.out = args.out or f"runs/{Path(args.config).stem}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.time()
    result = run_search(cfg, out, resume=args.resume, extend=args.extend)
    if result:
        best = result["best"]
        print(f"search finished in {time.time() - t0:.0f}s; results in {out}/ (result.json, scores.jsonl, scores.csv)")
        if best:
            print(f"best: {best['arch']}  shared-weight val acc {best['accuracy']:.2f}%  "
                  f"params {best['params']:,}  FLOPs {best['flops']:,}")
        print(_report(out))
        print(_next_steps(out, cfg))
    return 0


def _report(out: str) -> str:
    """The run's figures and report.md (``distilnas report OUT``), written after every search; a missing
    matplotlib or a failed figure costs the search nothing but this line."""
    from ..report import ReportError, write_report

    try:
        path = write_report(out)
    except ReportError as e:
        return f"no report: {str(e).splitlines()[0]}"
    except Exception as e:  # a figure must never lose a finished search
        return f"no report ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); the run is complete"
    pngs = sorted(p.name for p in path.parent.glob("*.png"))
    return f"report: {path} ({', '.join(pngs)})"


def _next_steps(out: str, cfg: Any) -> str:
    """The commands that usually follow a search, with real paths (a committed ground truth of the same
    space and data when there is one)."""
    truth = _matching_truth(cfg)
    archs = f"{truth}/archs.txt" if truth else "ARCHS.txt"
    table = f"{truth}/table.json" if truth else "TABLE.json"
    return "\n".join(["next:",
                      f"  distilnas score {out} --archs {archs} --out {out}/gt_scores.jsonl",
                      f"  distilnas rank {out}/gt_scores.jsonl {table}",
                      f"  distilnas report {out} --truth {table}   # report.md again, with predicted vs true accuracy",
                      f"  distilnas retrain {out}/result.json   # train the pick from scratch"])


def _matching_truth(cfg: Any) -> str | None:
    root = Path("benchmarks/groundtruth")
    if not root.is_dir():
        return None
    for bc in sorted(root.glob("*/bench_config.json")):
        try:
            saved = json.loads(bc.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        same_space = saved.get("space") == cfg.space.get("name") and all(
            cfg.space.get(k) == v for k, v in (saved.get("space_cfg") or {}).items())
        if same_space and (saved.get("data") or {}).get("name") == cfg.data.name and (bc.parent / "table.json").exists():
            return str(bc.parent)
    return None


def interrupted(args: argparse.Namespace) -> str:
    """What an interrupted search kept, and how its rerun continues (checked on disk)."""
    if args.out and (Path(args.out) / "checkpoint.pt").exists():
        return f"finished epochs are in {args.out}/checkpoint.pt (continue with --resume)"
    return "no epoch had finished, nothing to resume: rerun the command without --resume"
