"""SPOS's evolutionary search over a trained supernet (distilnas.search.evolution)."""

from __future__ import annotations

import copy
import json
import random

from distilnas.search.evolution import evolution_search
from distilnas.spaces import NB201Config, NB201Space
from distilnas.train.loop import resolve_config, run_search

from conftest import SEARCH_DICT

SPACE = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16))


def _score(archs):
    """A stand-in supernet: accuracy = the number of 3x3 convolutions (6 is best)."""
    for a in archs:
        yield {"arch": str(a), "accuracy": float(sum(op == "nor_conv_3x3" for op in a.ops)), "loss": 0.0}


def test_evolution_beats_random_at_the_same_budget():
    evo, rnd = [], []
    for seed in range(10):
        rows = evolution_search(SPACE, _score, 60, random.Random(seed), population=10, parents=5, mutation_prob=0.3)
        assert len(rows) == 60 and len({r["arch"] for r in rows}) == 60  # the budget, no repeats
        assert max(r["generation"] for r in rows) == 5
        evo.append(max(r["accuracy"] for r in rows))
        rng = random.Random(seed)
        rnd.append(max(r["accuracy"] for r in _score([SPACE.sample(rng) for _ in range(60)])))
    assert sum(evo) > sum(rnd)


def test_evolution_respects_the_flops_constraint():
    lo, hi = 1.0e6, 1.6e6
    rows = evolution_search(SPACE, _score, 30, random.Random(0), flops_min=lo, flops_max=hi)
    assert rows and all(lo <= SPACE.cost(SPACE.parse(r["arch"]))["flops"] <= hi for r in rows)


def test_search_selects_by_evolution_by_default(tmp_path):
    d = copy.deepcopy(SEARCH_DICT)
    d["select"] = {"num_archs": 8, "top": 2, "population": 4, "parents": 2}
    result = run_search(resolve_config(d), tmp_path / "run", progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {r["generation"] for r in rows} == {0, 1}
    assert result["best"]["accuracy"] == max(r["accuracy"] for r in rows)
    d["select"]["method"] = "random"
    run_search(resolve_config(d), tmp_path / "rnd", progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "rnd" / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and "generation" not in rows[0]


def test_random_selection_scores_num_archs_inside_the_flops_range(tmp_path):
    """select.method=random with a FLOPs range draws num_archs distinct samples inside it (it used to
    filter num_archs uniform samples, leaving fewer)."""
    import pytest

    from distilnas.config import ConfigError
    from distilnas.spaces import create_space, build_space_config
    from distilnas.search.evolution import samples_in_range

    d = copy.deepcopy(SEARCH_DICT)
    space = create_space("nb201", build_space_config("nb201", d["space"]))
    flops = sorted(space.cost(space.sample(random.Random(i)))["flops"] for i in range(200))
    lo, hi = flops[100], flops[160]  # a range that holds about 30% of the space
    assert len(samples_in_range(space, 12, random.Random(0), lo, hi)) == 12
    d["select"] = {"num_archs": 12, "top": 2, "method": "random", "flops_min": lo, "flops_max": hi}
    run_search(resolve_config(d), tmp_path / "rnd", progress=False)
    rows = [json.loads(ln) for ln in (tmp_path / "rnd" / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(lo <= space.cost(space.parse(r["arch"]))["flops"] <= hi for r in rows)
    for bad, msg in (({"flops_min": hi, "flops_max": lo}, "above select.flops_max"),
                     ({"flops_min": 10 * flops[-1]}, "no architecture with FLOPs")):
        d["select"] = {"num_archs": 4, "method": "random", **bad}
        with pytest.raises(ConfigError, match=msg):  # before any training
            run_search(resolve_config(d), tmp_path / f"bad{len(bad)}", progress=False)
        assert not (tmp_path / f"bad{len(bad)}" / "checkpoint.pt").exists()
