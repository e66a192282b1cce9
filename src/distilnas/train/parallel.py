"""Independent training jobs in parallel worker processes, with finished results kept in a JSON-lines file.

The pattern behind ``distilnas bench build`` and ``distilnas random-search``: every job trains one network
standalone; jobs run in ``workers`` processes of the ``spawn`` context (safe with CUDA and with torch's
thread pools) with a few torch threads each (on small CPUs several one-thread processes beat one process
with several threads); every finished result is appended to ``runs.jsonl`` and synced at once, so an
interrupted run resumes and keeps finished work; a line cut off by a kill is simply redone. Workers die
with their parent (``kill``, ``kill -9``, Ctrl-C): none is left training on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

from ..fileio import dumps

__all__ = ["WorkerError", "run_jobs", "torch_threads", "read_records", "open_records", "append_record"]


class WorkerError(RuntimeError):
    """A worker process died (killed, out of memory, crashed) before finishing its job."""


def _init_worker(threads: int, parent: int) -> None:
    """Set up a worker process: ``threads`` torch threads; Ctrl-C is left to the parent (which stops the
    pool); and on Linux the worker is killed when its parent dies, even by ``kill -9``
    (``prctl(PR_SET_PDEATHSIG)``), so no orphan keeps training and holding memory."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block, then restore the setting (``n <= 0``: leave it)."""
    import torch

    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_jobs(fn: Callable[..., dict[str, Any]], jobs: Sequence[tuple[Any, ...]], workers: int,
             threads: int = 1, progress: bool | None = None, desc: str = "",
             postfix: Callable[[dict[str, Any]], str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``fn(*job)`` for every job, in the order they finish.

    Args:
        fn: a module-level function (it is pickled by name for the worker processes).
        jobs: the argument tuples.
        workers: parallel processes; ``<= 1`` runs the jobs one by one in this process (no start-up
            cost), with ``threads`` torch threads while a job runs.
        threads: torch threads per worker.
        progress: progress bar over the jobs (``None``: only when stderr is a terminal).
        desc: the progress bar's label.
        postfix: text shown after the bar for a finished result.
    """
    from ..progress import progress_bar

    if not jobs:
        return
    bar = progress_bar(total=len(jobs), desc=desc, disable=None if progress is None else not progress)
    try:
        if workers <= 1:
            for job in jobs:
                with torch_threads(threads):
                    r = fn(*job)
                bar.update(1)
                if postfix:
                    bar.set_postfix_str(postfix(r))
                yield r
            return
        pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads, os.getpid()))
        try:
            futures = [pool.submit(fn, *job) for job in jobs]
            for fut in as_completed(futures):
                try:
                    r = fut.result()
                except BrokenProcessPool:
                    raise WorkerError(f"a worker process died (killed, or out of memory?) while running {desc or 'a job'}; "
                                      f"finished results are kept: rerun the same command to continue") from None
                bar.update(1)
                if postfix:
                    bar.set_postfix_str(postfix(r))
                yield r
        except BaseException:  # an interrupt or error: stop the running jobs now, not after they finish
            for proc in list((getattr(pool, "_processes", None) or {}).values()):  # no public way to kill them
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    finally:
        bar.close()


def read_records(path: str | Path, key: str, value: Any) -> list[dict[str, Any]]:
    """The records of a JSON-lines file whose ``key`` equals ``value`` (e.g. the same recipe hash);
    lines that do not parse (cut off by a kill) are skipped."""
    p = Path(path)
    out = []
    if p.exists():
        for line in p.read_text().splitlines():
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and r.get(key) == value:
                out.append(r)
    return out


def open_records(path: str | Path) -> IO[str]:
    """Open a JSON-lines file for appending; a last line cut off by a kill is ended first, so that the
    next record starts on a line of its own."""
    p = Path(path)
    f = open(p, "a")
    if p.stat().st_size > 0:
        with open(p, "rb") as r:
            r.seek(-1, os.SEEK_END)
            if r.read(1) != b"\n":
                f.write("\n")
    return f


def append_record(f: IO[str], record: dict[str, Any]) -> None:
    """Append one JSON line to the open file ``f`` and sync it to disk."""
    f.write(dumps(record) + "\n")  # NaN (a diverged training) as null: valid JSON
    f.flush()
    os.fsync(f.fileno())
