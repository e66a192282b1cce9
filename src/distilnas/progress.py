"""Progress bars (tqdm), off when not attached to a terminal unless forced."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int | None = None, desc: str = "", disable: bool | None = None, **kw: Any):
    from tqdm.auto import tqdm

    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, leave=False, **kw)
