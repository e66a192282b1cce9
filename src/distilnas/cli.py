"""The ``distilnas`` command line: the parser is built from the command modules in
:mod:`distilnas.commands` (one per command); this module only runs one and turns errors and
interrupts into one line and an exit status.

    distilnas search CONFIG [--out DIR] [--resume] [key=value ...]      train a supernet, select architectures
    distilnas score CHECKPOINT --archs FILE --out OUT.jsonl [key=value ...]
    distilnas rank PRED.jsonl TRUTH [--key accuracy] [--pred-key KEY] [--lower-is-better]
    distilnas train ARCH [--space nb201] [--config FILE] [--out DIR] [key=value ...]
    distilnas retrain RESULT_OR_ARCH [--config FILE] [--out DIR] [key=value ...]
    distilnas random-search CONFIG [--out DIR] [key=value ...]
    distilnas proxy NAME --space SPACE --archs FILE --out OUT.jsonl [key=value ...]
    distilnas bench build CONFIG --out DIR [--archs FILE] [key=value ...] | bench report DIR
    distilnas dna-merge DIR... --out POTENTIALS.json | dna-search POTENTIALS --max-flops F --out RESULT.json
    distilnas dna-fit POTENTIALS TRUTH --out FIT.json | dna-score POTENTIALS --archs FILE --out OUT.jsonl
    distilnas report RUN [--truth TABLE] [--out DIR]
    distilnas config [CONFIG] [key=value ...]
    distilnas list [spaces|algorithms|datasets|proxies] [PATTERN]

Bad input (unknown config keys, malformed architectures, missing data or checkpoints) ends with one
line ``distilnas: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

__all__ = ["main"]

def _known_errors() -> tuple[type[BaseException], ...]:
    from .arch import ArchError
    from .config import ConfigError
    from .data import DataError
    from .errors import RunError
    from .fileio import OutputError
    from .registry import RegistryError
    from .report import ReportError
    from .train.checkpoint import CheckpointError
    from .train.parallel import WorkerError
    from .train.standalone import TrainingDiverged

    return (ArchError, ConfigError, DataError, RegistryError, CheckpointError, RunError, OutputError,
            ReportError, WorkerError, TrainingDiverged, FileNotFoundError, FileExistsError)


def _interrupted(args: argparse.Namespace | None) -> str:
    """What an interrupted command kept, and how its rerun continues (its module's ``interrupted``)."""
    func = getattr(args, "func", None)
    said = getattr(sys.modules.get(getattr(func, "__module__", "")), "interrupted", None)
    return said(args) if said else "nothing was kept; rerun the command"


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``), raised where the process is, so that cleanup runs as for Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (``kill``) ends a command like Ctrl-C: its cleanup runs (worker processes stop,
    temporary files are removed, locks are released) and it says what it kept."""
    raise Terminated


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from . import __version__
    from .commands import COMMANDS

    p = argparse.ArgumentParser(prog="distilnas", description="One-shot NAS with distillation.")
    p.add_argument("--version", action="version", version=f"distilnas {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    for name in COMMANDS:
        importlib.import_module(f"{__package__}.commands.{name}").add_parser(sub)
    for sp in sub.choices.values():  # each command's own parser, for its usage line in errors
        sp.set_defaults(_parser=sp)
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                for nested in action.choices.values():
                    nested.set_defaults(_parser=nested)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (2: bad input, 130 / 143: interrupted by SIGINT / SIGTERM)."""
    import signal
    import threading

    in_main = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    previous_int = signal.getsignal(signal.SIGINT) if in_main else None
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may come after options (argparse stops filling positionals at the first one)
        stray = [e for e in extra if e.startswith("-") or "=" not in e]
        own = getattr(args, "_parser", parser)  # the command's usage, not the top-level one
        if stray or (extra and not hasattr(args, "overrides")):
            bare = [e for e in stray if not e.startswith("-")]
            if bare and hasattr(args, "overrides"):
                own.error(f"override {bare[0]!r} is not key=value (e.g. train.epochs=5)")
            own.error(f"unrecognized arguments: {' '.join(stray or extra)}")
        if extra:
            args.overrides = list(args.overrides) + extra
        return int(args.func(args) or 0)
    except SystemExit:  # argparse's --help and usage errors (before the import-heavy clause below)
        raise
    except KeyboardInterrupt as e:
        if in_main:  # a second signal during the message must not cut it short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"distilnas: interrupted; {_interrupted(args)}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
    except BrokenPipeError:  # whoever read our output stopped (`distilnas bench report DIR | head`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 128 + 13  # as a process killed by SIGPIPE
    except _known_errors() + (ValueError,) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"distilnas: error: {msg}", file=sys.stderr)
        return 2
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
