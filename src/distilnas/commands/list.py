"""``distilnas list [spaces|algorithms|datasets|proxies] [PATTERN]``: what is registered."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Add ``list``."""
    s = sub.add_parser("list", help="registered spaces, algorithms, datasets")
    s.add_argument("kind", nargs="?", choices=["spaces", "algorithms", "datasets", "proxies"])
    s.add_argument("pattern", nargs="?", default="*")
    s.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from ..algorithms import ALGORITHMS
    from ..data import DATASETS
    from ..proxies import PROXIES
    from ..spaces import SPACES

    regs = {"spaces": SPACES, "algorithms": ALGORITHMS, "datasets": DATASETS, "proxies": PROXIES}
    for kind, reg in regs.items():
        if args.kind in (None, kind):
            print(f"{kind}: {', '.join(reg.list(args.pattern)) or '(none)'}")
    return 0
