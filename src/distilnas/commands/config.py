"""``distilnas config [CONFIG] [key=value ...]``: a search config resolved with every default (the keys
a user can override), as YAML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import load_config


def add_parser(sub: Any) -> None:
    """Add ``config``."""
    s = sub.add_parser("config", help="print a search config with every default filled in")
    s.add_argument("config", nargs="?", default=None, help="YAML config (default: all defaults)")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    """Print a search config resolved with every default (the keys a user can override)."""
    import yaml

    from ..config import to_dict
    from ..train.loop import resolve_config

    path, overrides = args.config, list(args.overrides)
    if path is not None and "=" in path and not Path(path).exists():  # no config file, only overrides
        path, overrides = None, [path, *overrides]
    cfg = resolve_config(load_config(path, overrides))
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0
