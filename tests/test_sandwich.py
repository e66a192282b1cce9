"""Tests of the sandwich rule with in-place distillation (algorithms/sandwich.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distilnas.algorithms import ALGORITHMS, Sandwich
from distilnas.algorithms.sandwich import soft_cross_entropy
from distilnas.config import ConfigError
from distilnas.spaces import NB201Config, NB201Space, ResNetConfig, ResNetSpace


class Recorder(nn.Module):
    """Wraps a supernet; records each forward's arch, and every gradient that reaches its logits."""

    def __init__(self, supernet: nn.Module) -> None:
        super().__init__()
        self.supernet = supernet
        self.archs: list = []
        self.grads: list[tuple[int, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        k = len(self.archs)
        self.archs.append(arch)
        out = self.supernet(x, arch)
        out.register_hook(lambda g: self.grads.append((k, g.clone())))
        return out


@pytest.fixture(scope="module")
def space() -> ResNetSpace:
    cfg = ResNetConfig.fmnist16()
    cfg.base_widths = [8, 16, 16, 32]
    return ResNetSpace(cfg)


def _batch(space, n=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *space.input_shape(), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_registered():
    assert ALGORITHMS.get("sandwich") is Sandwich


@pytest.mark.parametrize("num_random", [0, 2, 3])
def test_step_on_resnet_space(space, num_random):
    torch.manual_seed(0)
    rec = Recorder(space.supernet())
    algo = Sandwich(space, rec, Sandwich.Config(num_random=num_random), seed=0, label_smoothing=0.1)
    x, y = _batch(space)
    out = algo.training_step(x, y, step=0, epoch=0, num_epochs=1)
    assert out.passes == 2 + num_random == len(rec.archs)
    assert out.samples == out.passes * len(y) and 0 <= out.correct <= out.samples
    assert rec.archs[0] == space.largest() and rec.archs[1] == space.smallest()
    assert out.loss > 0
    # every pass's loss reached its own logits once: gradients accumulate, no pass is skipped
    assert sorted(k for k, _ in rec.grads) == list(range(out.passes))
    grads = [p.grad for p in rec.supernet.parameters()]
    assert all(g is not None for g in grads[:2]) and sum(g.abs().sum() for g in grads if g is not None) > 0


def test_paths_depend_on_step(space):
    rec = Recorder(space.supernet())
    algo = Sandwich(space, rec, Sandwich.Config(), seed=0)
    x, y = _batch(space)
    algo.training_step(x, y, 0, 0, 1)
    algo.training_step(x, y, 0, 0, 1)
    algo.training_step(x, y, 1, 0, 1)
    assert rec.archs[2:4] == rec.archs[6:8]  # same step, same random subnets
    assert rec.archs[2:4] != rec.archs[10:12]


def test_teacher_gets_no_kd_gradient(space):
    torch.manual_seed(0)
    rec = Recorder(space.supernet())
    algo = Sandwich(space, rec, Sandwich.Config(num_random=2, temperature=2.0), seed=0, label_smoothing=0.1)
    x, y = _batch(space)
    algo.training_step(x, y, 0, 0, 1)
    teacher = [g for k, g in rec.grads if k == 0]
    assert len(teacher) == 1  # only the label loss back-propagated into the teacher's logits
    with torch.no_grad():  # no optimiser step was taken, and train-mode BN uses batch statistics
        logits = rec.supernet(x, space.largest())
    lg = logits.requires_grad_()
    F.cross_entropy(lg, y, label_smoothing=0.1).backward()
    torch.testing.assert_close(teacher[0], lg.grad)  # the gradient of the smoothed label loss alone


def test_soft_cross_entropy():
    logits = torch.randn(5, 10)
    p = F.softmax(torch.randn(5, 10), 1)
    want = -(p * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(soft_cross_entropy(logits, p), want)
    onehot = F.one_hot(torch.arange(5), 10).float()
    torch.testing.assert_close(soft_cross_entropy(logits, onehot), F.cross_entropy(logits, torch.arange(5)))
    torch.testing.assert_close(soft_cross_entropy(logits, p, 2.0),
                               4 * -(p * F.log_softmax(logits / 2, 1)).sum(1).mean())


def test_nb201_has_no_largest():
    space = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16))
    with pytest.raises(ConfigError, match="largest\\(\\)/smallest\\(\\).*'nb201'"):
        Sandwich(space, space.supernet(), Sandwich.Config(), seed=0)


def test_bad_options(space):
    with pytest.raises(ConfigError, match="temperature"):
        Sandwich(space, space.supernet(), Sandwich.Config(temperature=0.0), seed=0)
