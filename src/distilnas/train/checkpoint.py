"""Checkpoints: written atomically, checked on load with one-line errors for corrupt or foreign files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "FORMAT"]

FORMAT = "distilnas-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, foreign or from an incompatible run."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename (a kill never leaves a
    half-written checkpoint in place of a good one)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    os.replace(tmp, p)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found; pass the checkpoint.pt of a finished or running search")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"checkpoint {p} is corrupt or unreadable ({type(e).__name__}); "
                              f"re-run the search or point to another checkpoint") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a distilnas checkpoint (no '{FORMAT}' header); "
                              f"pass a checkpoint.pt written by 'distilnas search'")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {p} has format version {state.get('version')}, "
                              f"this distilnas reads version {VERSION}")
    return state
