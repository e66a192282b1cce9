"""``distilnas retrain RESULT_OR_ARCH [--config FILE] [--out DIR] [key=value ...]``: train a searched
architecture from scratch with a recipe, and export it (model.pt, arch.json, ONNX; docs/retrain.md)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ._common import load_config


def add_parser(sub: Any) -> None:
    """Add ``retrain``."""
    s = sub.add_parser("retrain", help="train a searched architecture from scratch and export it")
    s.add_argument("target", metavar="RESULT_OR_ARCH",
                   help="a search's result.json or run directory, or an architecture string")
    s.add_argument("--config", default=None, help="YAML with seed/space/data/recipe/device/threads/export_onnx, "
                                                   "e.g. configs/retrain/nb201_fmnist16.yaml")
    s.add_argument("--out", default=None, help="output directory (default runs/retrain-<space>-seed<seed>-<time>)")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. recipe.epochs=50 export_onnx=false")
    s.set_defaults(func=cmd_retrain)


def cmd_retrain(args: argparse.Namespace) -> int:
    import sys

    from ..train.retrain import ExportError, resolve_target, train_architecture

    arch, cfg, source = resolve_target(args.target, load_config(args.config, args.overrides))
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
