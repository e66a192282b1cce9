"""``distilnas train ARCH [--space SPACE] [--config FILE] [--out DIR] [key=value ...]``: one architecture
trained from scratch (``retrain`` of a literal architecture, without ONNX export unless asked)."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import load_config


def add_parser(sub: Any) -> None:
    """Add ``train``."""
    s = sub.add_parser("train", help="train one architecture from scratch")
    s.add_argument("arch")
    s.add_argument("--space", default=None, help="search space (default nb201)")
    s.add_argument("--config", default=None, help="YAML with seed/space/data/recipe sections")
    s.add_argument("--out", default=None, help="directory for result.json and model.pt")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """One architecture trained standalone: ``distilnas retrain`` for a literal arch, without ONNX export
    unless ``export_onnx`` is set; prints the result as one JSON line."""
    from ..config import from_dict
    from ..train.retrain import RetrainConfig, train_architecture

    raw = load_config(args.config, args.overrides)
    if args.space:
        raw["space"] = {**(raw.get("space") or {}), "name": args.space}
    raw.setdefault("export_onnx", False)
    result = train_architecture(args.arch, from_dict(RetrainConfig, raw), args.out)
    from ..fileio import dumps

    print(dumps({k: v for k, v in result.items() if k != "config"}))
    return 0
