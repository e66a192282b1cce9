"""Steps: lists of ``distilnas`` subcommand argv, checked before anything runs and run resumably.

Shared by ``search_quality.py`` (an entry's ``steps`` that yield a pick) and ``run_suite.py`` (an entry's
``steps`` and ``scores`` that yield the ranking of the ground-truth architectures). A step is the name of
a ``distilnas`` subcommand and its arguments, run as ``python -m distilnas.cli ...`` (never through a
shell); :func:`parse_step` parses it as ``distilnas`` would and checks the configs it names.

:func:`run_steps` runs the steps of one run directory in order, skipping finished ones: a finished step is
recorded (``{"step": j, "argv": [...], "seconds": s}``) in the run's ``steps.jsonl``; a ``search``,
``train``, ``retrain`` or ``random-search`` step whose ``--out`` holds result.json counts as finished too
(killed between finishing and being recorded), and a killed ``search`` step resumes with ``--resume``.
With ``share=True`` a step whose ``--out`` lies outside the run directory (e.g. one teacher for every
seed of a suite) is *shared*: it runs under a lock beside its ``--out`` (``OUT.lock``; other runs, threads
or processes, wait for it) and is finished when its result.json exists, so it is trained once.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

DONE_WHEN_RESULT = ("search", "train", "retrain", "random-search")  # steps whose --out/result.json means done
EXE = [sys.executable, "-m", "distilnas.cli"]
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")  # {name}; not YAML flow maps such as {name: spos}
WAIT_SECONDS = 2.0  # how often a run waiting for a shared step looks again
_PARSE_LOCK = threading.Lock()  # parse_step swaps sys.stderr: one thread at a time (runs check steps in threads)


class SpecError(Exception):
    """Bad input in the spec: one line, raised before anything runs."""


class JobError(Exception):
    """A command of one entry failed (its entry stops; the others go on)."""


class StepDone(NamedTuple):
    seconds: float | None  # wall seconds (or the result.json's training seconds of one found finished)
    ran: bool  # run now (False: recorded or found finished)


# ---------------------------------------------------------------------------------------------------
# Checking
def strings(value: Any, where: str, key_value: bool = False) -> list[str]:
    """``value`` as a list of strings (numbers allowed); SpecError otherwise (or an item without ``=``
    when ``key_value``)."""
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise SpecError(f"{where}: expected a list of {'key=value strings' if key_value else 'strings'}, got {value!r}")
    out = [str(v) for v in value]
    bad = [v for v in out if key_value and "=" not in v]
    if bad:
        raise SpecError(f"{where}: {bad[0]!r} is not key=value")
    return out


def _spec_errors() -> tuple[type[BaseException], ...]:
    from distilnas.arch import ArchError
    from distilnas.config import ConfigError
    from distilnas.registry import RegistryError

    return (ConfigError, ArchError, RegistryError, ValueError, TypeError, OSError)


@contextlib.contextmanager
def as_spec_error(where: str):
    """Turn the errors of bad input (config, architecture, registry, value, file) into one SpecError line."""
    try:
        yield
    except SpecError:
        raise
    except Exception as e:
        if not isinstance(e, _spec_errors()):
            raise
        raise SpecError(f"{where}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None


def make_space(options: dict[str, Any]):
    """The search space of a ``space`` section (``{name: mobilenet, preset: fmnist16, ...}``)."""
    from distilnas.spaces import build_space_config, create_space

    name = str(options.get("name", ""))
    return create_space(name, build_space_config(name, dict(options)))


def check_config(command: str, path: str, overrides: list[str], where: str) -> None:
    """The config of a ``search`` or ``random_search`` with its overrides, resolved as the command will
    (options, ranges, the space; no data is loaded); SpecError naming the problem."""
    from distilnas.config import apply_overrides, from_dict, load_yaml

    with as_spec_error(where):
        data = apply_overrides(load_yaml(path), overrides)
        if command == "search":
            from distilnas.train.loop import resolve_config

            resolve_config(data)
        else:
            from distilnas.train.random_search import RandomSearchConfig

            make_space(from_dict(RandomSearchConfig, data).space)


def _cli() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The distilnas parser and its subcommands by name (``random-search``, ``dna-merge``, ...)."""
    from distilnas.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, dict(subs.choices)


def parse_step(argv: list[str], where: str) -> argparse.Namespace:
    """``argv`` (a distilnas subcommand and its arguments) parsed as ``distilnas`` would; SpecError unless
    the subcommand exists and the arguments parse, and a config file it names exists."""
    parser, subs = _cli()
    if not argv or argv[0] not in subs:
        raise SpecError(f"{where}: {argv[0] if argv else '(empty)'!r} is not a distilnas subcommand; steps run "
                        f"distilnas commands only ({', '.join(subs)})")
    err = io.StringIO()
    try:
        with _PARSE_LOCK, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args, extra = parser.parse_known_args(argv)
    except SystemExit:
        lines = err.getvalue().strip().splitlines()
        raise SpecError(f"{where}: {lines[-1] if lines else 'asks for help'}") from None
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        raise SpecError(f"{where}: unrecognized arguments: {' '.join(stray or extra)}")
    overrides = [*getattr(args, "overrides", []), *extra]
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SpecError(f"{where}: override {bad[0]!r} is not key=value")
    cfg = getattr(args, "config", None)
    if isinstance(cfg, str) and not Path(cfg).is_file():
        raise SpecError(f"{where}: config file {cfg!r} not found")
    if argv[0] in ("search", "random-search"):
        check_config(argv[0].replace("-", "_"), cfg, overrides, where)
    return args


def substitute(argv: list[str], values: dict[str, str], where: str) -> list[str]:
    """``argv`` with every ``{name}`` replaced by ``values[name]``; SpecError naming an unknown one."""
    out = []
    for a in argv:
        unknown = [m for m in PLACEHOLDER.findall(a) if m not in values]
        if unknown:
            raise SpecError(f"{where}: unknown placeholder {{{unknown[0]}}} in {a!r} (known: "
                            f"{', '.join('{' + k + '}' for k in values)})")
        out.append(PLACEHOLDER.sub(lambda m: values[m.group(1)], a))
    return out


def step_out(argv: list[str], args: argparse.Namespace) -> Path | None:
    """The run directory of a step whose result.json says it finished (None for other steps)."""
    out = getattr(args, "out", None)
    return Path(out) if argv[0] in DONE_WHEN_RESULT and out else None


def is_shared(args: argparse.Namespace, run_dir: Path) -> bool:
    """Whether the step's ``--out`` lies outside ``run_dir`` (so other runs may use it too)."""
    out = getattr(args, "out", None)
    return bool(out) and not Path(os.path.abspath(out)).is_relative_to(os.path.abspath(run_dir))


def check_shared(argv: list[str], args: argparse.Namespace, run_dir: Path, where: str) -> None:
    """SpecError for a step outside ``run_dir`` that is not finished by a result.json (it could not be
    shared safely: every run would redo it)."""
    if is_shared(args, run_dir) and argv[0] not in DONE_WHEN_RESULT:
        raise SpecError(f"{where}: --out {args.out} is outside the run directory {run_dir}, so shared by every "
                        f"run; only {', '.join(DONE_WHEN_RESULT)} steps (finished when their result.json exists) "
                        f"can be shared")


# ---------------------------------------------------------------------------------------------------
# Running: one command at a time per job, its output in a log
_ACTIVE: set[subprocess.Popen[bytes]] = set()  # running commands, stopped when the script is interrupted
_ACTIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


def run_command(cmd: list[str], log: Path, label: str) -> float:
    """Run ``cmd`` with its output appended to ``log``; its wall seconds. JobError when it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(log, "a") as f:
        f.write(shlex.join(cmd) + "\n")
        f.flush()
        with _ACTIVE_LOCK:
            if _STOPPING.is_set():
                raise JobError(f"entry {label}: not started (interrupted)")
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
            _ACTIVE.add(proc)
        try:
            rc = proc.wait()
        except BaseException:  # Ctrl-C or kill while this thread waits (the main thread): stop the command too
            _stop(proc)
            raise
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(proc)
    if rc != 0:
        raise JobError(f"entry {label}: 'distilnas {' '.join(cmd[3:5])} ...' failed with exit status {rc}; "
                       f"see {log}")
    return round(time.time() - t0, 1)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``), raised in the main thread like Ctrl-C's KeyboardInterrupt (see :func:`on_sigterm`)."""


def on_sigterm(signum: int, frame: Any) -> None:
    """A SIGTERM handler: ``signal.signal(signal.SIGTERM, on_sigterm)`` makes a kill stop a script (and,
    through :func:`stop_all` or :func:`run_command`, its commands) the way Ctrl-C does."""
    raise Terminated


def interrupted(script: str, e: KeyboardInterrupt, kept: str = "finished work is kept") -> int:
    """Say how to continue after Ctrl-C or kill; the exit status (130, or 143 after a kill)."""
    print(f"{script}: interrupted; rerun the same command to continue ({kept})", file=sys.stderr)
    return 143 if isinstance(e, Terminated) else 130


def allow_commands() -> None:
    """Let commands start again (after :func:`stop_all`)."""
    _STOPPING.clear()


STOP_SECONDS = 60.0  # how long a stopped command may take to save its work before it is killed


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``proc`` and wait for it; SIGKILL after :data:`STOP_SECONDS`."""
    with contextlib.suppress(OSError):
        proc.terminate()
    try:
        proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()


def stop_all() -> None:
    """SIGTERM to every running command (each keeps what it finished and exits; one that takes longer than
    :data:`STOP_SECONDS` is killed) and wait for them; no command starts afterwards (until
    :func:`allow_commands`)."""
    with _ACTIVE_LOCK:
        _STOPPING.set()
        procs = list(_ACTIVE)
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.terminate()
    for proc in procs:
        _stop(proc)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` (unreadable lines, e.g. one cut by a kill, left out)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


@contextlib.contextmanager
def wait_for_lock(path: Path, what: str, log: Path) -> Any:
    """Hold the lock file ``path`` for the block, waiting (looking again every :data:`WAIT_SECONDS`) while
    another thread or process holds it; the wait is noted once in ``log``."""
    from distilnas.fileio import LockedError, lock_file

    path.parent.mkdir(parents=True, exist_ok=True)
    said = False
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(lock_file(path, what))
                break
            except LockedError as e:
                if not said:
                    log.parent.mkdir(parents=True, exist_ok=True)
                    with open(log, "a") as f:
                        f.write(f"waiting: {e}\n")
                    said = True
                if _STOPPING.is_set():
                    raise JobError(f"{what}: not started (interrupted)") from None
                time.sleep(WAIT_SECONDS)
        yield


def _finished_seconds(done: dict[str, Any]) -> float | None:
    return (done.get("train_seconds") or 0) + (done.get("score_seconds") or 0) or done.get("seconds")


def run_steps(steps: list[list[str]], run_dir: Path, label: str, where: str, *, log: Path, record: Path,
              needs: dict[int, Path] | None = None, share: bool = False) -> list[StepDone]:
    """Run the steps (argv lists, placeholders replaced) not yet finished, in order, recording each finished
    one in ``record``; per step its seconds and whether it ran now. A recorded step whose file in ``needs``
    (step index -> path) is missing runs again. ``share``: steps with ``--out`` outside ``run_dir`` are shared
    (see the module docstring). ``where`` starts the messages (``entry X``; ``: steps[j]`` is added)."""
    out: list[StepDone] = []
    needs = needs or {}
    for j, argv in enumerate(steps):
        recs = [r for r in read_records(record) if r.get("step") == j and r.get("argv") == argv]
        if recs and (j not in needs or needs[j].exists()):
            out.append(StepDone(recs[-1].get("seconds"), False))
            continue
        args = parse_step(argv, f"{where}: steps[{j}]")
        result_dir = step_out(argv, args)
        with (wait_for_lock(Path(str(Path(args.out)) + ".lock"), f"shared step {args.out}", log)
              if share and is_shared(args, run_dir) else contextlib.nullcontext()):
            done = read_json(result_dir / "result.json") if result_dir else None
            if done is not None:  # finished, not recorded (killed in between; or shared, done by another run)
                seconds, ran = _finished_seconds(done), False
            else:
                resume = ["--resume"] if argv[0] == "search" and result_dir and (
                    result_dir / "checkpoint.pt").exists() else []
                seconds, ran = run_command([*EXE, argv[0], *resume, *argv[1:]], log, label), True
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "a") as f:
            f.write(json.dumps({"step": j, "argv": argv, "seconds": seconds}) + "\n")
        out.append(StepDone(seconds, ran))
    return out
