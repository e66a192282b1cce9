"""Data parallelism: ``torchrun --nproc_per_node=2`` (gloo, CPU) trains the weights one process trains with
the same global batch, for SPOS and Cream; Cream's board (paths, accuracies, stored slices) is the same
on both ranks (the search itself checks that after every epoch and fails otherwise) and the one process's.

The comparisons run in float64 (``torch.set_default_dtype``, set by the launcher below): there, the two
runs agree to about 1e-12. In float32 they agree step for step to rounding (1e-7 relative), but the
all-reduced BatchNorm sums round differently from one process's, and a ReLU input that rounding moves
across zero changes that element's gradient by its full size; over a few steps such flips grow to
about 1e-2 in the weights, as they do between two one-process runs that differ only in
``train.channels_last`` (docs: README, "GPUs and torchrun").
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as tdist

from distilnas.config import ConfigError, dump_yaml
from distilnas.data import TensorLoader
from distilnas.train import distributed as dist
from distilnas.train.loop import resolve_config, run_search

from conftest import SEARCH_DICT

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
needs_torchrun = pytest.mark.skipif(
    not (tdist.is_available() and tdist.is_gloo_available() and TORCHRUN),
    reason="torch.distributed with the gloo backend and torchrun are needed")

# ``distilnas`` CLI in float64: torchrun runs this file (it cannot run ``python -c``)
LAUNCHER = """import sys, torch
torch.set_default_dtype(torch.float64)
from distilnas.cli import main
sys.exit(main(sys.argv[1:]))
"""

CREAM = {"name": "cream", "warmup_epochs": 0, "update_iter": 2, "board_size": 3, "board_val_size": 64,
         "meta_val_batch": 16}
CASES: dict[str, dict[str, Any]] = {
    # augmentation draws for the global batch; every step trains one path
    "spos": {"data": {"augment": True}, "algorithm": {"name": "spos"}},
    # board accuracy on the training batch (summed over ranks); slices of 20 images span both ranks'
    # parts (16 images each); exact meta-gradient: a double backward through the all-reduces
    "cream": {"algorithm": {**CREAM, "board_eval": "train", "slice": 20, "meta_grad": "exact"}},
    # board accuracy on held-out images (rank 0's count); finite-difference meta-gradient
    "cream_fd": {"data": {"augment": True}, "algorithm": {**CREAM, "board_eval": "val", "slice": 4, "meta_grad": "fd"}},
}


def case_config(name: str) -> dict[str, Any]:
    d = copy.deepcopy(SEARCH_DICT)  # 128 training images, global batch 32: 4 steps per epoch
    for section, values in CASES[name].items():
        d[section] = {**d.get(section, {}), **values}
    d["train"].update(epochs=2, threads=1)
    return d


def run_two_ranks(tmp_path: Path, name: str) -> Path:
    cfg, out = tmp_path / f"{name}.yaml", tmp_path / f"{name}-2ranks"
    dump_yaml(case_config(name), cfg)
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", str(launcher), "search", str(cfg),
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def run_one_process(tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}-1proc"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        run_search(resolve_config(case_config(name)), out, progress=False)
    finally:
        torch.set_default_dtype(previous)
    return out


def max_diff(a: Any, b: Any, where: str = "") -> float:
    """The largest absolute difference between two nested checkpoints' tensors (non-tensors must be equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype, where
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        return max((max_diff(a[k], b[k], f"{where}.{k}") for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        return max((max_diff(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))), default=0.0)
    assert a == b, f"{where}: {a!r} != {b!r}"
    return 0.0


@needs_torchrun
@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_train_the_one_process_weights(tmp_path, name):
    two = torch.load(run_two_ranks(tmp_path, name) / "checkpoint.pt", weights_only=True)
    one = torch.load(run_one_process(tmp_path, name) / "checkpoint.pt", weights_only=True)
    assert two["step"] == one["step"] == 8
    assert next(iter(one["model"].values())).dtype == torch.float64
    # the supernet: parameters and BatchNorm running statistics (over the global batch)
    assert max_diff(two["model"], one["model"]) < 1e-9
    assert max_diff(two["optimizer"]["state"], one["optimizer"]["state"]) < 1e-9
    if name.startswith("cream"):
        b2, b1 = two["algorithm"]["board"], one["algorithm"]["board"]
        assert len(b1) == 3 and [e["arch"] for e in b2] == [e["arch"] for e in b1]
        for e2, e1 in zip(b2, b1):  # same accuracies and steps, the same stored images, the same softmaxes
            assert (e2["accuracy"], e2["step"], e2["flops"]) == (e1["accuracy"], e1["step"], e1["flops"])
            assert torch.equal(e2["inputs"], e1["inputs"])
            assert len(e2["inputs"]) == CASES[name]["algorithm"]["slice"]
            assert max_diff(e2["probs"], e1["probs"]) < 1e-9
        assert two["algorithm"]["stats"] == one["algorithm"]["stats"]
        assert two["algorithm"]["stats"]["meta_updates"] > 0
        assert max_diff(two["algorithm"]["meta"], one["algorithm"]["meta"]) < 1e-9


def test_shards_split_every_global_batch():
    """Rank r of w gets the r-th contiguous part of each batch one process gets, with its augmentation."""
    x = torch.randn(40, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(40)

    def batches(shard: tuple[int, int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = TensorLoader(x, y, 8, shuffle=True, drop_last=True, augment=True, pad=2, shard=shard,
                              generator=torch.Generator().manual_seed(1))
        return [b for _ in range(2) for b in loader]  # two epochs: the generator advances alike

    one = batches((0, 1))
    for world in (2, 4):
        parts = [batches((r, world)) for r in range(world)]
        assert all(len(p) == len(one) == 10 for p in parts)
        for i, (xb, yb) in enumerate(one):
            assert torch.equal(torch.cat([p[i][0] for p in parts]), xb)
            assert torch.equal(torch.cat([p[i][1] for p in parts]), yb)
    with pytest.raises(ValueError, match="does not split"):
        TensorLoader(x, y, 6, shard=(0, 4))


def test_batch_size_must_split_over_the_ranks(tmp_path, monkeypatch):
    monkeypatch.setattr(dist, "world_size", lambda: 3)
    with pytest.raises(ConfigError, match=r"train.batch_size=32 \(the global batch\) is not divisible by the 3"):
        run_search(resolve_config(copy.deepcopy(SEARCH_DICT)), tmp_path / "run", progress=False)
