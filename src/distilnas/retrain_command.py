"""``distilnas retrain`` and ``distilnas random-search`` (see docs/retrain.md).

    distilnas retrain RESULT_OR_ARCH [--config FILE] [--out DIR] [key=value ...]
    distilnas random-search CONFIG [--out DIR] [key=value ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["add_parser", "cmd_retrain", "cmd_random_search"]


def _options(config: str | None, overrides: Sequence[str]) -> dict[str, Any]:
    from .config import apply_overrides, load_yaml

    return apply_overrides(load_yaml(config) if config else {}, list(overrides))


def cmd_retrain(args: argparse.Namespace) -> int:
    import sys

    from .train.retrain import ExportError, resolve_target, train_architecture

    arch, cfg, source = resolve_target(args.target, _options(args.config, args.overrides))
    space = cfg.space.get("name", "nb201")
    out = Path(args.out or f"runs/retrain-{space}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        r = train_architecture(arch, cfg, out, source=source)
    except ExportError as e:
        print(f"distilnas: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"retrained {r['arch']} ({r['space']}{', from ' + source if source else ''}) in {r['seconds']:.0f}s: "
          f"val acc {r['val_accuracy']:.2f}%  test acc {r['test_accuracy']:.2f}%  params {r['params']:,}  "
          f"FLOPs {r['flops']:,}")
    files = ["result.json", "arch.json", "model.pt"] + (["model.onnx"] if r["onnx"] == "exported" else [])
    print(f"wrote {out}/: {', '.join(files)}")
    if "onnx_note" in r:
        print(r["onnx_note"])
    return 0


def cmd_random_search(args: argparse.Namespace) -> int:
    from .config import from_dict
    from .train.random_search import RandomSearchConfig, random_search

    cfg = from_dict(RandomSearchConfig, _options(args.config, args.overrides))
    out = Path(args.out or f"runs/random-{Path(args.config).stem}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    r = random_search(cfg, out)
    b = r["best"]
    print(f"random search: {r['num_scored']} architectures ({r['trained_now']} trained now) in "
          f"{r['seconds']:.0f}s; results in {out}/")
    print(f"best: {b['arch']}  val acc {b['accuracy']:.2f}%  params {b['params']:,}  FLOPs {b['flops']:,}")
    print(f"retrain it with: distilnas retrain {out / 'result.json'}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Add ``retrain`` and ``random-search`` to the ``distilnas`` command line."""
    s = subparsers.add_parser("retrain", help="train a searched architecture from scratch and export it")
    s.add_argument("target", metavar="RESULT_OR_ARCH",
                   help="a search's result.json or run directory, or an architecture string")
    s.add_argument("--config", default=None, help="YAML with seed/space/data/recipe/device/threads/export_onnx, "
                                                   "e.g. configs/retrain/nb201_fmnist16.yaml")
    s.add_argument("--out", default=None, help="output directory (default runs/retrain-<space>-seed<seed>-<time>)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. recipe.epochs=50 export_onnx=false")
    s.set_defaults(func=cmd_retrain)

    s = subparsers.add_parser("random-search", help="random-architecture baseline: best of N short trainings")
    s.add_argument("config", help="YAML config, e.g. configs/retrain/random_search_nb201_fmnist16.yaml")
    s.add_argument("--out", default=None, help="run directory; rerun with the same one to resume "
                                               "(default runs/random-<config>-seed<seed>-<time>)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. num_archs=20 workers=2")
    s.set_defaults(func=cmd_random_search)
