"""``distilnas list [spaces|algorithms|datasets|proxies] [PATTERN]``: what is built in (read from the
registering decorators in the source, so that it answers without loading torch)."""

from __future__ import annotations

import argparse
import fnmatch
from pathlib import Path
from typing import Any

# kind -> (package folder, the registry or function whose decorators register its names)
KINDS: dict[str, tuple[str, str]] = {"spaces": ("spaces", "SPACES"), "algorithms": ("algorithms", "ALGORITHMS"),
                                     "datasets": ("data", "DATASETS"), "proxies": ("proxies", "register_proxy")}


def add_parser(sub: Any) -> None:
    """Add ``list``."""
    s = sub.add_parser("list", help="built-in spaces, algorithms, datasets and proxies")
    s.add_argument("kind", nargs="?", choices=list(KINDS))
    s.add_argument("pattern", nargs="?", default="*", help="e.g. 'nb*'")
    s.set_defaults(func=cmd_list)


def builtin(kind: str) -> list[str]:
    """The built-in names of one kind."""
    from ..registry import declared_names

    folder, registrar = KINDS[kind]
    return declared_names(Path(__file__).resolve().parents[1] / folder, registrar)


def cmd_list(args: argparse.Namespace) -> int:
    for kind in KINDS:
        if args.kind in (None, kind):
            names = [n for n in builtin(kind) if fnmatch.fnmatch(n, args.pattern)]
            print(f"{kind}: {', '.join(names) or '(none)'}")
    return 0
