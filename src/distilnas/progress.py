"""Progress: a tqdm bar on a terminal; elsewhere (logs, CI, nohup) a line every few seconds.

``progress_bar(total, desc, disable)``: ``disable=None`` picks by whether stderr is a terminal: a bar
there, otherwise :class:`LineProgress`, which prints ``desc: n/total (p%), rate/s, ETA m:ss`` to stderr
at most every ``DISTILNAS_PROGRESS_EVERY`` seconds (default 30; 0 silences it). ``disable=True`` prints
nothing.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

__all__ = ["progress_bar", "LineProgress"]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class LineProgress:
    """The subset of tqdm's interface the package uses, as periodic plain lines."""

    def __init__(self, total: int | None = None, desc: str = "", every: float | None = None, initial: int = 0) -> None:
        self.total, self.desc, self.n = total, desc, initial
        self.every = float(os.environ.get("DISTILNAS_PROGRESS_EVERY", "30")) if every is None else every
        self.start = self.last = time.monotonic()
        self.start_n = initial
        self.postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.every > 0 and now - self.last >= self.every:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        parts.append(f"{rate:.2f}/s")
        if self.total and rate > 0:
            parts.append(f"ETA {_clock((self.total - self.n) / rate)}")
        parts.append(f"elapsed {_clock(elapsed)}")
        return ", ".join(parts) + (f"  {self.postfix}" if self.postfix else "")

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def write(self, text: str, file: Any = None) -> None:
        print(text, file=file or sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int | None = None, desc: str = "", disable: bool | None = None, **kw: Any):
    if disable is None and not sys.stderr.isatty():
        return LineProgress(total=total, desc=desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=bool(disable), dynamic_ncols=True, leave=False, **kw)
