"""Device names from configs: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked with one-line errors."""

from __future__ import annotations

import re

import torch

from .config import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str, key: str = "device", local_rank: int | None = None) -> torch.device:
    """The ``torch.device`` for ``name``: ``auto`` is CUDA when available (device ``local_rank`` under
    torchrun), else the CPU. An unknown name, or CUDA on a build or machine without it, is a
    :class:`ConfigError` naming ``key`` and the fix."""
    text = str(name).strip().lower()
    cuda = torch.cuda.is_available()
    if text == "auto":
        if not cuda:
            return torch.device("cpu")
        return torch.device("cuda", local_rank) if local_rank is not None else torch.device("cuda")
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if not m:
        raise ConfigError(f"{key}={name!r} is not a device; use auto, cpu, cuda or cuda:N")
    if not cuda:
        why = "this PyTorch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ConfigError(f"{key}={name!r} but {why}; use {key}=cpu or {key}=auto")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise ConfigError(f"{key}={name!r} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return torch.device(text)
