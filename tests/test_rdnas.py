"""Tests of RD-NAS: group distance, margin subnet sampler, lambda schedules, ranking loss, the step."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
import torch

from distilnas.algorithms.rdnas import (
    NB201_GROUPS,
    RDNAS,
    group_distance,
    margin_ranking_loss,
    rank_weight,
    sample_pair,
)
from distilnas.config import ConfigError
from distilnas.data import load_dataset
from distilnas.registry import RegistryError
from distilnas.spaces import NB201Arch, NB201Config, NB201Space
from distilnas.train.loop import build_run, resolve_config, run_search

NO_NONE = ["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def arch(*ops: str) -> NB201Arch:
    return NB201Arch(tuple(ops))


def test_group_distance_by_hand():
    a = arch("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "skip_connect", "none")
    assert group_distance(a, a) == 0.0
    # conv3x3 -> conv1x1 is within the parametric group: 0.5; skip -> conv3x3 crosses groups: 2
    b = arch("nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "skip_connect", "none")
    assert group_distance(a, b) == 2.5
    # skip <-> avg_pool (both parameter-free): 0.5 each; none counts as parameter-free
    c = arch("nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_1x1", "none", "skip_connect")
    assert group_distance(a, c) == 2.0
    assert group_distance(a, b) == group_distance(b, a)


@pytest.mark.parametrize("ops, mean_group, mean_hamming", [
    (NO_NONE, 6.75, 4.5),  # the RD-NAS space: mu = 6.7 and 4.5 are the means of random pairs (paper)
    (NO_NONE + ["none"], 6.72, 4.8),  # with `none`, as in our fmnist16 benchmark
])
def test_mu_is_the_mean_distance_of_random_pairs(ops, mean_group, mean_hamming):
    pairs = list(itertools.product(ops, repeat=2))  # uniform per-edge op pairs
    per_edge = sum(0.0 if x == y else (0.5 if NB201_GROUPS[x] == NB201_GROUPS[y] else 2.0) for x, y in pairs)
    assert 6 * per_edge / len(pairs) == pytest.approx(mean_group)
    assert 6 * sum(x != y for x, y in pairs) / len(pairs) == pytest.approx(mean_hamming)


def test_margin_subnet_sampler():
    space = NB201Space(NB201Config(ops=NO_NONE))
    rng = random.Random(0)
    for _ in range(50):
        a, b, d = sample_pair(lambda: space.sample(rng), group_distance, 6.7, 20)
        assert d == group_distance(a, b)
    # an unreachable threshold: the farthest of max_tries pairs
    draws: list[NB201Arch] = []
    rng = random.Random(1)

    def sample() -> NB201Arch:
        draws.append(space.sample(rng))
        return draws[-1]

    a, b, d = sample_pair(sample, group_distance, 100.0, 7)
    assert len(draws) == 14
    assert d == max(group_distance(draws[i], draws[i + 1]) for i in range(0, 14, 2))
    # mu <= 0 (no sampler): the first pair
    draws.clear()
    sample_pair(sample, group_distance, 0.0, 7)
    assert len(draws) == 2


def test_sampler_raises_mean_distance():
    space = NB201Space(NB201Config(ops=NO_NONE))
    rng = random.Random(0)
    plain = [sample_pair(lambda: space.sample(rng), group_distance, 0.0, 1)[2] for _ in range(300)]
    mss = [sample_pair(lambda: space.sample(rng), group_distance, 6.7, 20)[2] for _ in range(300)]
    assert sum(plain) / 300 == pytest.approx(6.75, abs=0.4)
    assert min(mss) >= 6.7 and sum(mss) / 300 > sum(plain) / 300 + 1.0


def test_rank_weight_schedules():
    assert rank_weight("constant", 5, 50) == 2.0
    assert rank_weight("sin", 0, 50) == 0.0
    assert rank_weight("sin", 25, 50) == pytest.approx(2 * math.sin(0.4 * math.pi))
    assert rank_weight("linear", 5, 50, warmup_epochs=10) == pytest.approx(1.0)
    assert rank_weight("linear", 20, 50, warmup_epochs=10) == 2.0
    assert rank_weight("step", 5, 50) == pytest.approx(0.5)  # min(2, epoch / 10)
    assert rank_weight("step", 40, 50) == 2.0
    with pytest.raises(ConfigError, match="schedule"):
        rank_weight("cosine", 0, 1)


def test_margin_ranking_loss():
    worse = torch.tensor(1.0, requires_grad=True)
    better = torch.tensor(0.8, requires_grad=True)
    assert margin_ranking_loss(worse, better, 0.0).item() == 0.0  # already ordered
    loss = margin_ranking_loss(worse, better, 0.5)  # 0.5 - 0.2
    assert loss.item() == pytest.approx(0.3)
    loss.backward()
    assert worse.grad.item() == -1.0 and better.grad.item() == 1.0  # pushes the two losses apart


@pytest.fixture
def tiny_space() -> NB201Space:
    return NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16, ops=NO_NONE))


def make_rdnas(space: NB201Space, **cfg) -> RDNAS:
    torch.manual_seed(0)
    return RDNAS(space, space.supernet(), RDNAS.Config(**cfg), seed=0)


def grads_after_step(algo: RDNAS, x, y, epoch: int = 5) -> list[torch.Tensor]:
    algo.supernet.zero_grad(set_to_none=True)
    out = algo.training_step(x, y, step=3, epoch=epoch, num_epochs=10)
    assert out.passes == 2 and out.samples == 2 * len(y)
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in algo.supernet.parameters()]


def test_step_adds_the_ranking_loss(tiny_space):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)
    plain = grads_after_step(make_rdnas(tiny_space, schedule="constant", scale=0.0), x, y)
    ranked_algo = make_rdnas(tiny_space, schedule="constant", scale=1.0, margin=100.0)
    ranked = grads_after_step(ranked_algo, x, y)
    assert any(not torch.allclose(a, b) for a, b in zip(plain, ranked))
    assert len(ranked_algo.cache) == 2  # both subnets' teacher scores are cached
    # the same step (seed, step) gives the same pair, hence the same gradients
    again = grads_after_step(make_rdnas(tiny_space, schedule="constant", scale=1.0, margin=100.0), x, y)
    assert all(torch.equal(a, b) for a, b in zip(ranked, again))


def test_teacher_is_flops_and_cached(tiny_space):
    algo = make_rdnas(tiny_space)
    a = tiny_space.sample(random.Random(0))
    assert algo.teacher_score(a) == tiny_space.cost(a)["flops"]
    algo.cache[str(a)] = -1.0
    assert algo.teacher_score(a) == -1.0  # served from the cache
    state = algo.state_dict()
    other = make_rdnas(tiny_space)
    other.load_state_dict(json.loads(json.dumps(state)))
    assert other.cache == algo.cache


def test_bad_options(tiny_space):
    with pytest.raises(ConfigError, match="sampler"):
        make_rdnas(tiny_space, sampler="farthest")
    with pytest.raises(ConfigError, match="schedule"):
        make_rdnas(tiny_space, schedule="exp")


def test_search_end_to_end(tmp_path, search_dict):
    search_dict["space"]["ops"] = NO_NONE
    search_dict["algorithm"] = {"name": "rdnas", "schedule": "constant", "margin": 0.1}
    result = run_search(resolve_config(search_dict), tmp_path / "run", progress=False)
    assert result["algorithm"] == "rdnas" and result["passes"] == 2 * result["steps"]
    assert result["arch"] and result["best"]["flops"] > 0


def test_search_on_the_resnet_space(tmp_path, search_dict):
    """RD-NAS on its second benchmark: Hamming sampler over the width codes, the min(2, epoch/10) schedule."""
    search_dict["space"] = {"name": "resnet", "base_widths": [8, 8, 16, 16], "depth_choices": [[1, 2]] * 4,
                            "channel_divisor": 4, "stem": "3x3", "in_channels": 1, "input_size": 16, "num_classes": 10}
    search_dict["algorithm"] = {"name": "rdnas", "sampler": "hamming", "mu": 6.0, "schedule": "step",
                                "teacher": "params", "margin": 0.05}
    result = run_search(resolve_config(search_dict), tmp_path / "run", progress=False)
    assert result["passes"] == 2 * result["steps"] and result["best"]["params"] > 0
    with pytest.raises(ConfigError, match="hamming"):
        search_dict["algorithm"]["sampler"] = "group"
        run_search(resolve_config(search_dict), tmp_path / "run2", progress=False)


def test_rank_average_teacher(tmp_path, search_dict):
    """teacher a+b: the mean over proxies of the rank among a fixed reference sample (empirical CDF)."""
    import random

    search_dict["algorithm"] = {"name": "rdnas", "teacher": "flops+params+nwot", "teacher_reference": 32}
    cfg = resolve_config(search_dict)
    run = build_run(cfg)
    run.algorithm.setup(load_dataset(cfg.data), run.device, None)
    archs = [run.space.sample(random.Random(i)) for i in range(12)]
    scores = [run.algorithm.teacher_score(a) for a in archs]
    assert all(0.0 <= s <= 1.0 for s in scores)
    ref = run.algorithm.reference
    assert sorted(ref) == ["flops", "nwot", "params"] and len(ref["flops"]) == 32  # NaN scores (e.g. nwot of an
    assert 16 < len(ref["nwot"]) <= 32  # all-"none" cell) are left out of the reference
    a = archs[0]  # by hand: the mean of the three empirical CDFs
    import bisect
    expect = sum((bisect.bisect_left(ref[t], v) + bisect.bisect_right(ref[t], v)) / (2 * len(ref[t]))
                 for t, v in (("flops", run.space.cost(a)["flops"]), ("params", run.space.cost(a)["params"]),
                              ("nwot", run.algorithm._proxy("nwot", a)))) / 3
    assert scores[0] == pytest.approx(expect)
    state = run.algorithm.state_dict()
    fresh = build_run(cfg).algorithm
    fresh.load_state_dict(state)
    assert fresh.reference == ref and fresh.cache == run.algorithm.cache
    result = run_search(cfg, tmp_path / "run", progress=False)
    assert result["best"]
    for bad in ("flops+flops", "flops+", "flops+nope"):
        search_dict["algorithm"]["teacher"] = bad
        with pytest.raises((ConfigError, RegistryError)):
            r = build_run(resolve_config(search_dict))
            r.algorithm.setup(load_dataset(cfg.data), r.device, None)


def test_hamming_threshold_that_cannot_be_reached_is_refused(search_dict):
    """The default mu 6.7 is a group distance; the Hamming distance of NB201 cells is at most 6."""
    search_dict["algorithm"] = {"name": "rdnas", "sampler": "hamming"}
    with pytest.raises(ConfigError, match="mu=6.7 can never be reached by the Hamming distance, which is at most 6"):
        build_run(resolve_config(search_dict))
    search_dict["algorithm"]["mu"] = 4.5
    build_run(resolve_config(search_dict))
