"""Checkpoints: written atomically, read without running code, checked with one-line errors.

Every file a user hands to distilnas that holds tensors (search checkpoints, exported weights, teacher
weights) is read with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which builds
tensors and plain containers (dict, list, tuple, str, numbers, None) and refuses any other Python
object, so a crafted file cannot run code (a plain ``torch.load`` would call whatever its pickle
names, e.g. ``os.system``). distilnas writes only such data, so nothing is allow-listed, and there is no
switch back to unsafe loading: a file that needs it is refused with one line naming it.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..spaces import build_space_config, create_space

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "safe_load", "load_exported", "FORMAT", "ARCH_FORMAT"]

FORMAT = "distilnas-checkpoint"
ARCH_FORMAT = "distilnas-arch"  # arch.json of an exported network (distilnas retrain)
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, foreign, unsafe or from an incompatible run."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` via a temporary file and an atomic rename (a kill never leaves a
    half-written checkpoint in place of a good one; a failed write leaves no temporary file)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def safe_load(path: str | Path, what: str = "file", map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line :class:`CheckpointError` s: a file holding
    other Python objects than tensors and plain containers is refused unread (nothing in it runs), an
    unreadable one is called corrupt. ``what`` names the file's role in the messages."""
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"{what} {p} is a directory; pass the file itself")
    if not p.is_file():
        raise CheckpointError(f"{what} {p} not found")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing: one line only
            warnings.simplefilter("ignore")
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found:  # the restricted unpickler met a Python object: refused before anything ran
            raise CheckpointError(f"{what} {p} holds a Python object ({found.group(1)}) besides tensors and plain "
                                  f"data; distilnas refuses to unpickle it (loading could run code): use a file "
                                  f"written by distilnas, or re-save only its tensors") from None
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(e))
        raise CheckpointError(f"{what} {p} is corrupt, or not a file torch.save wrote that can be read without "
                              f"running code ({detail.group(1).strip() if detail else 'UnpicklingError'}); "
                              f"point to another file") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"{what} {p} is corrupt or unreadable ({type(e).__name__}); "
                              f"point to another file") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A search checkpoint, read safely (:func:`safe_load`) and checked for the distilnas header.
    ``path`` may also be a run directory holding ``checkpoint.pt``."""
    p = Path(path)
    if p.is_dir() and p.name.endswith(".pt"):
        raise CheckpointError(f"checkpoint {p} is a directory, not a file; pass the checkpoint.pt of a search")
    if p.is_dir():
        if not (p / "checkpoint.pt").is_file():
            raise CheckpointError(f"{p} is a directory without checkpoint.pt; pass a search's run directory "
                                  f"or its checkpoint.pt")
        p = p / "checkpoint.pt"
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found; pass the checkpoint.pt of a finished or running search")
    state = safe_load(p, "checkpoint", map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a distilnas checkpoint (no '{FORMAT}' header); "
                              f"pass a checkpoint.pt written by 'distilnas search'")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {p} has format version {state.get('version')}, "
                              f"this distilnas reads version {VERSION}")
    return state


def load_exported(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network written by ``retrain`` (a directory with ``arch.json`` and ``model.pt``, or
    the ``arch.json`` itself) and load its trained weights; returned in eval mode."""
    p = Path(path)
    meta_path = p / "arch.json" if p.is_dir() else p
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found; pass the output directory of distilnas retrain")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        meta = None
    ok = isinstance(meta, dict) and meta.get("format") == ARCH_FORMAT and isinstance(meta.get("space_config"), dict)
    if not ok:
        raise CheckpointError(f"{meta_path} is not an arch.json written by distilnas retrain")
    options = meta["space_config"]
    name = str(options.get("name", "nb201"))
    space = create_space(name, build_space_config(name, dict(options)))
    arch = space.parse(str(meta.get("arch", "")))
    weights = meta_path.parent / str(meta.get("weights", "model.pt"))
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found next to {meta_path.name}")
    model = space.build(arch, seed=0)
    state = safe_load(weights, "model weights", map_location)
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{weights} does not fit the network of {meta_path} "
                              f"({str(e).splitlines()[0][:120]})") from None
    return model.to(map_location).eval()
