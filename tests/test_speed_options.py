"""Standalone training and supernet scoring give exactly what a plain PyTorch loop gives (the speed work on
them must not change a number), and the ``recipe.compile`` option (benchmarks/bench_standalone.py,
docs/performance.md)."""

from __future__ import annotations

import math
import random
import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_SPACE
from torch import nn

from distilnas.data import DataConfig, load_dataset
from distilnas.evaluate.scoring import ScoreConfig, score_archs
from distilnas.spaces import build_space_config, create_space
from distilnas.train.evaluation import bn_layers
from distilnas.train.optim import make_optimizer
from distilnas.train.standalone import Recipe, recipe_hash, train_standalone

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
ARCHS = [ARCH, "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
         "|none~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|skip_connect~2|"]


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(name="synthetic", val_size=64, train_size=128, test_size=48))


@pytest.fixture(scope="module")
def space():
    return create_space("nb201", build_space_config("nb201", TINY_SPACE))


def fmt(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def plain_eval(fwd, x, y, bs=1000):
    correct, loss_sum = 0, 0.0
    for i in range(0, len(x), bs):
        logits = fwd(x[i:i + bs])
        loss_sum += F.cross_entropy(logits, y[i:i + bs], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + bs]).sum().item()
    return {"accuracy": 100.0 * correct / len(x), "loss": loss_sum / len(x)}


def plain_train(model, data, r: Recipe, seed: int, channels_last: bool):
    """The textbook loop: seeded permutation per epoch, single-tensor SGD, cosine LambdaLR, clipping."""
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed)
    per_epoch = len(data.train_x) // r.batch_size
    steps = r.epochs * per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                          weight_decay=r.weight_decay, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(1.0, s / steps))))
    epoch_losses = []
    for _ in range(r.epochs):
        order = torch.randperm(len(data.train_x), generator=gen)
        loss_sum = 0.0
        for b in range(per_epoch):
            idx = order[b * r.batch_size:(b + 1) * r.batch_size]
            loss = F.cross_entropy(model(fmt(data.train_x[idx], channels_last)), data.train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
            opt.step()
            sched.step()
            loss_sum += loss.item() * r.batch_size
        epoch_losses.append(loss_sum / (per_epoch * r.batch_size))
    model.eval()
    out = {}
    for name in ("val", "test"):
        res = plain_eval(model, fmt(getattr(data, f"{name}_x"), channels_last), getattr(data, f"{name}_y"))
        out.update({f"{name}_{k}": v for k, v in res.items()})
    return out, epoch_losses


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("verbose", [False, True])
def test_train_standalone_is_bit_identical_to_a_plain_loop(space, data, channels_last, verbose, capsys):
    """Final weights and buffers, validation and test metrics, and the logged per-epoch training loss are
    exactly those of the textbook loop (progress bar and epoch logging change nothing)."""
    recipe = Recipe(epochs=3, batch_size=32, lr=0.1, grad_clip=5.0)
    arch = space.parse(ARCH)
    lib = space.build(arch, seed=0)
    got = train_standalone(lib, data, recipe, seed=3, channels_last=channels_last, progress=verbose,
                           log_epochs=verbose)
    ref = space.build(arch, seed=0)
    want, epoch_losses = plain_train(ref, data, recipe, seed=3, channels_last=channels_last)
    assert got == want
    a, b = lib.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    if verbose:
        logged = [float(v) for v in re.findall(r"epoch \d+/\d+: loss ([0-9.]+)", capsys.readouterr().err)]
        assert logged == [float(f"{v:.4f}") for v in epoch_losses]


def plain_score(supernet, archs, data, cfg: ScoreConfig, channels_last: bool):
    g = torch.Generator().manual_seed(cfg.recal_seed)
    idx = torch.randperm(len(data.train_x), generator=g)[: cfg.bn_recal_batches * cfg.bn_recal_batch_size]
    recal = fmt(data.train_x[idx], channels_last).split(cfg.bn_recal_batch_size)
    stop = cfg.val_offset + cfg.val_size
    vx, vy = fmt(data.val_x[cfg.val_offset:stop], channels_last), data.val_y[cfg.val_offset:stop]
    out = []
    for arch in archs:
        for m in bn_layers(supernet):
            m.reset_running_stats()
            m.momentum = None
        supernet.train()
        with torch.no_grad():
            for xb in recal:
                supernet(xb, arch)
        for m in bn_layers(supernet):
            m.momentum = 0.1
        supernet.eval()
        out.append({"arch": str(arch), **plain_eval(lambda t, a=arch: supernet(t, a), vx, vy, cfg.batch_size)})
    return out


def trained_supernet(space, data, channels_last: bool):
    """A supernet after a few SPOS steps (weights and statistics away from their initial values)."""
    torch.manual_seed(0)
    net = space.supernet()
    if channels_last:
        net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    rng = random.Random(0)
    for b in range(4):
        loss = F.cross_entropy(net(fmt(data.train_x[b * 32:(b + 1) * 32], channels_last), space.sample(rng)),
                               data.train_y[b * 32:(b + 1) * 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


@pytest.mark.parametrize("channels_last", [True, False])
def test_score_archs_is_bit_identical_to_a_plain_loop(space, data, channels_last):
    """BN recalibration (reset, cumulative average over the same batches) and the validation pass in chunks
    (a short last one) give exactly the plain loop's accuracy and loss; BN momentum is restored."""
    cfg = ScoreConfig(bn_recal_batches=2, bn_recal_batch_size=32, val_size=50, batch_size=20, recal_seed=1,
                      val_offset=6)
    archs = [space.parse(a) for a in ARCHS]
    lib = trained_supernet(space, data, channels_last)
    got = list(score_archs(lib, archs, data, cfg, progress=False, channels_last=channels_last))
    assert all(m.momentum == 0.1 for m in bn_layers(lib))
    ref = trained_supernet(space, data, channels_last)
    assert got == plain_score(ref, archs, data, cfg, channels_last)
    a, b = lib.state_dict(), ref.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("momentum,nesterov,weight_decay,no_decay", [
    (0.9, True, 5e-4, False), (0.9, True, 0.0, False), (0.9, False, 5e-4, True), (0.0, False, 5e-4, False)])
def test_make_optimizer_sgd_matches_single_tensor_sgd(space, data, momentum, nesterov, weight_decay, no_decay):
    """``make_optimizer``'s SGD (foreach) updates the weights exactly as the default single-tensor SGD,
    also on a supernet whose parameters off the path have no gradient (and get momentum later)."""
    from distilnas.train.optim import OptimConfig

    cfg = OptimConfig(lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                      no_decay_bn_bias=no_decay)
    nets = []
    for variant in ("lib", "ref"):
        torch.manual_seed(0)
        net = space.supernet().to(memory_format=torch.channels_last)
        opt, sched = make_optimizer(net, cfg, 6, 3)
        if variant == "ref":
            opt = torch.optim.SGD(opt.param_groups, lr=cfg.lr, momentum=momentum, nesterov=nesterov, foreach=False)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / 6)))
        rng = random.Random(0)
        for b in range(6):
            x, y = data.train_x[b * 16:(b + 1) * 16], data.train_y[b * 16:(b + 1) * 16]
            loss = F.cross_entropy(net(fmt(x, True), space.sample(rng)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], 5.0)
            opt.step()
            sched.step()
        nets.append((net, opt))
    (a, oa), (b, ob) = nets
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    for p, q in zip(a.parameters(), b.parameters()):
        ma, mb = oa.state.get(p, {}).get("momentum_buffer"), ob.state.get(q, {}).get("momentum_buffer")
        assert (ma is None) == (mb is None) and (ma is None or torch.equal(ma, mb))


def test_recipe_compile_is_off_and_out_of_the_hash_by_default():
    assert Recipe().compile is False
    assert recipe_hash(Recipe(compile=False)) == recipe_hash(Recipe())
    assert recipe_hash(Recipe(compile=True)) != recipe_hash(Recipe())  # compiled numbers differ from eager ones


def test_recipe_compile_trains_through_torch_compile(space, data, monkeypatch):
    """``recipe.compile`` hands the network to ``torch.compile`` once and trains through what it returns
    (here the network itself, so the numbers are the eager ones); evaluation stays eager."""
    calls = []

    class Wrapped(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            calls.append(x.shape[0])
            return self.m(x)

    monkeypatch.setattr(torch, "compile", lambda m, **kw: Wrapped(m))
    recipe = Recipe(epochs=1, batch_size=32, compile=True)
    m1 = space.build(space.parse(ARCH), seed=0)
    got = train_standalone(m1, data, recipe, seed=0)
    assert calls == [32] * 4  # the training steps, not the evaluation
    m2 = space.build(space.parse(ARCH), seed=0)
    assert got == train_standalone(m2, data, Recipe(epochs=1, batch_size=32), seed=0)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_recipe_compile_for_real(space, data):
    """With inductor the weights stay close to the eager ones (not bit-identical) and compiled runs repeat."""
    recipe = Recipe(epochs=1, batch_size=32, lr=0.01, compile=True)
    runs = []
    for c in (False, True, True):
        m = space.build(space.parse(ARCH), seed=0)
        res = train_standalone(m, data, Recipe(**{**recipe.__dict__, "compile": c}), seed=0)
        runs.append((res, m.state_dict()))
    (r0, s0), (r1, s1), (r2, s2) = runs
    assert r1 == r2 and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert all(torch.allclose(s0[k].float(), s1[k].float(), rtol=1e-3, atol=1e-4) for k in s0)
    assert abs(r0["val_loss"] - r1["val_loss"]) < 1e-3
