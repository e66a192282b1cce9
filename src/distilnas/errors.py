"""Errors shared across layers: of a run as a whole (every entry point: search, retrain, random search,
the commands) and of data (the datasets and the image-folder reader). Errors of one module live with it:
``ConfigError`` (config), ``ArchError`` (arch), ``CheckpointError`` (train.checkpoint)."""

from __future__ import annotations

__all__ = ["RunError", "DivergenceError", "DataError"]


class RunError(RuntimeError):
    """A run that cannot start as asked (e.g. it would overwrite finished work)."""


class DivergenceError(RunError):
    """Training produced a non-finite loss or gradient (more often than ``train.max_nonfinite`` allows)."""


class DataError(RuntimeError):
    """A dataset that cannot be found or read; the message says how to fix it."""
