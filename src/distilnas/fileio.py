"""Small file helpers shared by the commands: atomic outputs, run-directory locks, strict JSON."""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "OutputError", "LockedError", "run_lock", "lock_file", "prepare_out_dir",
           "json_safe", "dumps", "PartialRows", "LOCK_NAME"]

LOCK_NAME = ".distilnas.lock"


class OutputError(RuntimeError):
    """An output path that cannot be written (read-only file system, a file where a folder should be)."""


class LockedError(OutputError):
    """An output that another running distilnas process holds."""


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", newline: str | None = None) -> Iterator[IO]:
    """Open ``path`` for writing through a temporary sibling that replaces it only when the block ends
    without an error: a killed or failed command never leaves a truncated output that a later step (or a
    resumable script checking for the file) would take for a finished one."""
    p = Path(path)
    _mkdir(p.parent)
    tmp = p.with_name(f"{p.name}.{os.getpid()}.partial")  # one per process: two writers of one file cannot race
    try:
        with open(tmp, mode, newline=newline) as f:
            yield f
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: str | Path, text: str, newline: str | None = None) -> None:
    """``text`` into ``path`` through :func:`atomic_open`; a one-line :class:`OutputError` naming ``path``
    (not the temporary file) when it cannot be written."""
    try:
        with atomic_open(path, newline=newline) as f:
            f.write(text)
    except OSError as e:
        raise OutputError(f"cannot write {path} ({_why(e)}); choose a writable path") from None


def _why(e: OSError) -> str:
    return {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.ENOSPC: "no space left on the device",
            errno.ENOTDIR: "a part of the path is a file", errno.EEXIST: "a file of that name exists"}.get(
        e.errno, e.strerror or type(e).__name__)


def _mkdir(d: Path, what: str = "output directory") -> None:
    if d.exists() and not d.is_dir():
        raise OutputError(f"{what} {d} is a file, not a directory; choose another path")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {what} {d} ({_why(e)}); choose a writable path") from None


def prepare_out_dir(path: str | Path, what: str = "run directory (--out)") -> Path:
    """Create ``path`` (and its parents) and check that it is a writable directory: a one-line
    :class:`OutputError` naming the problem otherwise (a file in the way, read-only, no permission)."""
    d = Path(path)
    _mkdir(d, what)
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {d} is not writable (permission denied or read-only file system); "
                          f"choose a writable path")
    return d


@contextmanager
def lock_file(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file ``path`` (holding the holder's PID) for the block,
    and remove it afterwards. The lock belongs to the open file, so the kernel drops it when the
    process ends in any way: a lock file left by a crash or ``kill -9`` is never stale, the next run
    simply takes it. A second holder gets :class:`LockedError` naming the first one's PID."""
    p = Path(path)
    while True:
        try:
            f = open(p, "a+")
        except OSError as e:
            raise OutputError(f"cannot write {p} ({_why(e)}); choose a writable path") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise LockedError(f"{what} is in use by another distilnas process (PID {holder}); wait for it "
                              f"to finish or choose another output") from None
        try:  # the holder before us may have removed the file after we opened it: lock the current one
            same = os.stat(p).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
    finally:
        p.unlink(missing_ok=True)  # while still locked: nobody else can hold this file now
        f.close()  # releases the lock


@contextmanager
def run_lock(out_dir: str | Path, what: str = "run directory") -> Iterator[None]:
    """:func:`lock_file` on ``out_dir/.distilnas.lock``: one process at a time writes a run directory."""
    d = Path(out_dir)
    with lock_file(d / LOCK_NAME, f"{what} {d}"):
        yield


class PartialRows:
    """A JSON-lines output written row by row to ``OUT.resume`` so that a killed command resumes.

    The first line of the resume file is ``{"distilnas_partial": key}``: rows are reused only by a rerun
    with the same ``key`` (e.g. a digest of the checkpoint, the options and the input list); any other
    resume file is started afresh. :meth:`finish` writes ``OUT`` (rows only, atomically) and removes the
    resume file. Hold a :func:`lock_file` around it so that two processes never write one output.
    """

    def __init__(self, path: str | Path, key: str, id_field: str = "arch") -> None:
        self.path, self.key, self.id_field = Path(path), key, id_field
        self.partial = self.path.with_name(self.path.name + ".resume")
        self._tmp = self.path.with_name(self.path.name + ".writing")
        self.done: dict[str, dict[str, Any]] = {}
        self.reused = 0
        _mkdir(self.path.parent)
        self._tmp.unlink(missing_ok=True)  # left by a kill -9 inside finish()
        if self.partial.exists():
            lines = self.partial.read_text(errors="replace").splitlines()
            rows = []
            for line in lines[1:]:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut off by a kill
                    continue
            if lines and _header(lines[0]) == key:
                self.done = {r[id_field]: r for r in rows if isinstance(r, dict) and id_field in r}
                self.reused = len(self.done)
        # rewrite the reused rows through a temporary file: a kill here never loses them
        with open(self._tmp, "w") as f:
            f.write(json.dumps({"distilnas_partial": key}) + "\n")
            f.writelines(dumps(r) + "\n" for r in self.done.values())
        os.replace(self._tmp, self.partial)
        self._f = open(self.partial, "a")

    def append(self, row: dict[str, Any]) -> None:
        self.done[row[self.id_field]] = row
        self._f.write(dumps(row) + "\n")
        self._f.flush()

    def finish(self, order: list[str]) -> list[dict[str, Any]]:
        """Write the rows of ``order`` (ids) to the output atomically; returns them."""
        self._f.close()
        rows = [self.done[i] for i in order if i in self.done]
        try:
            with open(self._tmp, "w") as f:
                f.writelines(dumps(r) + "\n" for r in rows)
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
        self.partial.unlink(missing_ok=True)
        return rows

    def close(self) -> None:
        """Keep the resume file for a rerun (an interrupt or error)."""
        if not self._f.closed:
            self._f.close()


def _header(line: str) -> Any:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    return obj.get("distilnas_partial") if isinstance(obj, dict) else None


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` with every non-finite float (NaN, inf) replaced by ``None``: JSON has no NaN,
    and ``json.dumps`` would otherwise write the invalid token ``NaN``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(obj)`` that refuses NaN (valid JSON only)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kw)
