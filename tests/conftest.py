"""Shared tiny fixtures: a tiny NB201 configuration, a synthetic-data search config, one trained run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from distilnas.spaces import NB201Config

torch.set_num_threads(1)  # the test machine is shared: stay on one core


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one thread, whatever an earlier test's code (e.g. ``train.threads=N``) set."""
    torch.set_num_threads(1)
    yield

# The tiny NB201 network used throughout: 4 channels, one cell per stage, 1x16x16 inputs (like fmnist16).
TINY_SPACE: dict[str, Any] = {"name": "nb201", "C": 4, "N": 1, "in_channels": 1, "input_size": 16, "num_classes": 10}

# A complete search on the built-in synthetic data (1x16x16, 10 classes): 4 steps per epoch, 4 candidates.
SEARCH_DICT: dict[str, Any] = {
    "seed": 0,
    "space": TINY_SPACE,
    "data": {"name": "synthetic", "val_size": 200, "train_size": 128, "test_size": 50},
    "algorithm": {"name": "spos"},
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "log_every": 2, "device": "cpu"},
    "score": {"bn_recal_batches": 1, "bn_recal_batch_size": 32, "val_size": 64, "batch_size": 64},
    "select": {"num_archs": 4, "top": 2, "sample_seed": 0},
}


def one_error_line(capsys: pytest.CaptureFixture[str], rc: int) -> str:
    """The CLI's contract for bad input: exit status 2 and one ``distilnas: error: ...`` line on stderr
    (after any progress lines, such as ``epoch k/E: ...``, of work done before the error)."""
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("epoch ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("distilnas: error: ")
    return lines[0]


@pytest.fixture
def tiny_space_cfg() -> NB201Config:
    """A tiny NB201 configuration (C=4, N=1, 1x16x16, 10 classes, all five ops)."""
    return NB201Config(**{k: v for k, v in TINY_SPACE.items() if k != "name"})


@pytest.fixture
def search_dict() -> dict[str, Any]:
    """A fresh copy of :data:`SEARCH_DICT` (tests may edit it)."""
    return copy.deepcopy(SEARCH_DICT)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of one finished tiny search (checkpoint.pt, result.json, ...), shared read-only."""
    from distilnas.train.loop import resolve_config, run_search

    out = tmp_path_factory.mktemp("trained") / "run"
    run_search(resolve_config(copy.deepcopy(SEARCH_DICT)), out, progress=False)
    return out
