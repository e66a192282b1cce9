"""Every shipped config resolves: typed sections, no unknown keys (the presets users start from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distilnas.config import from_dict, load_yaml
from distilnas.evaluate.groundtruth import BenchConfig
from distilnas.train.loop import resolve_config
from distilnas.train.random_search import RandomSearchConfig
from distilnas.train.retrain import RetrainConfig

ROOT = Path(__file__).resolve().parents[1]
SEARCH = sorted(p for d in ("bench", "gpu") for p in (ROOT / "configs" / d).glob("*.yaml")
                if not p.name.startswith("groundtruth"))


@pytest.mark.parametrize("path", SEARCH, ids=lambda p: p.name)
def test_search_configs_resolve(path):
    cfg = resolve_config(load_yaml(path))
    assert cfg.space["name"] and cfg.algorithm["name"]


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "bench").glob("groundtruth_*.yaml")), ids=lambda p: p.name)
def test_groundtruth_configs_resolve(path):
    from_dict(BenchConfig, load_yaml(path))


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "retrain").glob("*.yaml")), ids=lambda p: p.name)
def test_retrain_configs_resolve(path):
    cls = RandomSearchConfig if path.name.startswith("random_search") else RetrainConfig
    from_dict(cls, load_yaml(path))


def test_micro_benchmark_presets_share_the_budget():
    """SPOS, FairNAS, RD-NAS and Cream presets: same space, data, epochs and passes per epoch."""
    cfgs = {n: resolve_config(load_yaml(ROOT / f"configs/bench/{n}_nb201_fmnist16.yaml"))
            for n in ("spos", "fairnas", "rdnas", "cream")}
    passes_per_step = {"spos": 1, "fairnas": len(cfgs["fairnas"].space["ops"]), "rdnas": 2, "cream": 1}
    steps_full = (60000 - cfgs["spos"].data.val_size) // cfgs["spos"].train.batch_size
    budgets = set()
    for name, cfg in cfgs.items():
        assert cfg.space == cfgs["spos"].space and cfg.data == cfgs["spos"].data
        assert cfg.train.epochs == cfgs["spos"].train.epochs and cfg.score == cfgs["spos"].score
        steps = cfg.train.steps_per_epoch or steps_full
        budgets.add(steps * passes_per_step[name])
    assert len(budgets) == 1, budgets
