"""``distilnas random-search CONFIG [--out DIR] [key=value ...]``: the random-architecture baseline, the
best of N short standalone trainings (resumable; docs/retrain.md)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ._common import load_config


def add_parser(sub: Any) -> None:
    """Add ``random-search``."""
    s = sub.add_parser("random-search", help="random-architecture baseline: best of N short trainings")
    s.add_argument("config", help="YAML config, e.g. configs/retrain/random_search_nb201_fmnist16.yaml")
    s.add_argument("--out", default=None, help="run directory; rerun with the same one to resume "
                                               "(default runs/random-<config>-seed<seed>-<time>)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. num_archs=20 workers=2")
    s.set_defaults(func=cmd_random_search)


def cmd_random_search(args: argparse.Namespace) -> int:
    from ..config import from_dict
    from ..train.random_search import RandomSearchConfig, random_search

    cfg = from_dict(RandomSearchConfig, load_config(args.config, args.overrides))
    out = Path(args.out or f"runs/random-{Path(args.config).stem}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    r = random_search(cfg, out)
    b = r["best"]
    print(f"random search: {r['num_scored']} architectures ({r['trained_now']} trained now) in "
          f"{r['seconds']:.0f}s; results in {out}/")
    print(f"best: {b['arch']}  val acc {b['accuracy']:.2f}%  params {b['params']:,}  FLOPs {b['flops']:,}")
    print(f"retrain it with: distilnas retrain {out / 'result.json'}")
    return 0


def interrupted(args: argparse.Namespace) -> str:
    """What an interrupted random search kept (finished candidates are appended to runs.jsonl)."""
    if args.out and (Path(args.out) / "runs.jsonl").exists():
        return f"finished candidates are kept in {args.out}/runs.jsonl; rerun the same command to continue"
    return "nothing was kept; rerun the command"
