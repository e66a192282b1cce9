"""Tests of the baseline algorithms: SPOS and FairNAS (distilnas.algorithms)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distilnas.algorithms import ALGORITHMS, SPOS, Algorithm, FairNAS, path_rng
from distilnas.algorithms.fairnas import fair_paths
from distilnas.spaces import NB201Arch, NB201Space


class Recorder(nn.Module):
    """Wraps a supernet and records the path of every forward."""

    def __init__(self, supernet: nn.Module) -> None:
        super().__init__()
        self.inner = supernet
        self.paths: list[NB201Arch] = []

    def forward(self, x: torch.Tensor, arch: NB201Arch) -> torch.Tensor:
        self.paths.append(arch)
        return self.inner(x, arch)


@pytest.fixture
def space(tiny_space_cfg) -> NB201Space:
    return NB201Space(tiny_space_cfg)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 1, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)


def make(name: str, space: NB201Space, seed: int = 0) -> tuple[Algorithm, Recorder]:
    torch.manual_seed(seed)
    rec = Recorder(space.supernet())
    cls = ALGORITHMS.get(name)
    return cls(space, rec, cls.Config(), seed), rec


def test_registered():
    assert {"spos", "fairnas"} <= set(ALGORITHMS.list())
    assert ALGORITHMS.get("spos") is SPOS and ALGORITHMS.get("fairnas") is FairNAS


def test_path_rng_is_a_function_of_seed_and_step():
    draw = lambda rng: [rng.random() for _ in range(5)]  # noqa: E731
    assert draw(path_rng(0, 3)) == draw(path_rng(0, 3))
    assert draw(path_rng(0, 3)) != draw(path_rng(0, 4))
    assert draw(path_rng(0, 3)) != draw(path_rng(1, 3))
    random.seed(99)  # the global generator plays no part
    a = draw(path_rng(2, 2))
    random.seed(100)
    assert draw(path_rng(2, 2)) == a


def test_spos_samples_the_path_of_its_step(space, batch):
    algo, rec = make("spos", space, seed=5)
    x, y = batch
    for step in (0, 1, 7, 7):
        out = algo.training_step(x, y, step, epoch=0, num_epochs=1)
        assert rec.paths[-1] == space.sample(path_rng(5, step))
        assert out.passes == 1 and out.samples == 8 and 0 <= out.correct <= 8
    assert rec.paths[2] == rec.paths[3] and rec.paths[0] != rec.paths[1]


def test_spos_trains_only_its_path(space, batch):
    algo, rec = make("spos", space)
    x, y = batch
    algo.training_step(x, y, 3, 0, 1)
    arch = rec.paths[-1]
    for name, p in rec.inner.named_parameters():
        if ".edges." not in name:
            continue
        edge, op = int(name.split(".edges.")[1].split(".")[0]), name.split(".edges.")[1].split(".")[1]
        on_path = arch.ops[edge] == op and edge in arch.live_edges()
        assert (p.grad is not None) == on_path, name


def fair_check(choices: dict[str, tuple], paths: list[dict]) -> None:
    m = len(next(iter(choices.values())))
    assert len(paths) == m
    for label, opts in choices.items():
        assert sorted(p[label] for p in paths) == sorted(opts)  # each option exactly once


def test_fair_paths_property():
    for ops in (NB201Space().choices, NB201Space(NB201Space.Config(ops=["skip_connect", "nor_conv_1x1"])).choices):
        firsts = set()
        for seed in range(300):
            paths = fair_paths(ops, random.Random(seed))
            fair_check(ops, paths)
            firsts.add(tuple(paths[0].values()))
        assert len(firsts) > 50  # the permutations really are random


def test_fair_paths_needs_equal_choice_sizes():
    with pytest.raises(ValueError, match="same number of options"):
        fair_paths({"a": (1, 2), "b": (1, 2, 3)}, random.Random(0))


def test_fairnas_accumulates_gradients_over_m_paths(space, batch):
    algo, rec = make("fairnas", space, seed=2)
    x, y = batch
    sn = rec.inner
    out = algo.training_step(x, y, 4, 0, 1)
    paths = fair_paths(space.choices, path_rng(2, 4))
    fair_check(space.choices, [dict(zip(space.choices, a.ops)) for a in rec.paths])
    assert rec.paths == [space.from_choices(p) for p in paths]
    assert out.passes == len(paths) == 5 and out.samples == 5 * 8
    got = {n: p.grad.clone() for n, p in sn.named_parameters() if p.grad is not None}
    # the same m paths, each backpropagated on its own, summed by hand
    want: dict[str, torch.Tensor] = {}
    losses = []
    for arch in rec.paths:
        sn.zero_grad(set_to_none=True)
        loss = F.cross_entropy(sn(x, arch), y)
        loss.backward()
        losses.append(loss.item())
        for n, p in sn.named_parameters():
            if p.grad is not None:
                want[n] = want.get(n, 0) + p.grad
    assert set(got) == set(want)
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-6)
    assert out.loss == pytest.approx(sum(losses) / len(losses), rel=1e-5)


@pytest.mark.parametrize("name", ["spos", "fairnas"])
def test_a_training_step_updates_the_supernet(name, space, batch):
    algo, rec = make(name, space)
    x, y = batch
    opt = torch.optim.SGD(rec.parameters(), lr=0.1)
    before = {n: p.detach().clone() for n, p in rec.named_parameters()}
    opt.zero_grad()
    out = algo.training_step(x, y, 0, 0, 1)
    opt.step()
    assert torch.isfinite(torch.tensor(out.loss))
    changed = [n for n, p in rec.named_parameters() if not torch.equal(p, before[n])]
    assert "inner.classifier.weight" in changed and "inner.stem.0.weight" in changed
    assert algo.on_epoch_end(0) == {} and algo.state_dict() == {}


def test_default_candidates_and_finalize(space):
    algo, _ = make("spos", space)
    cands = algo.candidates(20, random.Random(0))
    assert len(cands) == len(set(cands)) == 20
    assert cands == algo.candidates(20, random.Random(0))
    scores = [{"arch": "a", "accuracy": 50.0, "loss": 1.0}, {"arch": "b", "accuracy": 60.0, "loss": 2.0},
              {"arch": "c", "accuracy": 60.0, "loss": 1.5}, {"arch": "d", "accuracy": 10.0, "loss": 0.1}]
    assert [r["arch"] for r in algo.finalize(scores, top=3)["ranked"]] == ["c", "b", "a"]
