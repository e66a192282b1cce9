"""Tests of the ResNet width/depth space (spaces/resnet.py) and its slicing layers (ops/slimmable.py)."""

from __future__ import annotations

import json
import random

import pytest
import torch
from torch import nn

from distilnas.arch import ArchError
from distilnas.config import ConfigError
from distilnas.ops.conv import PointwiseConv2d
from distilnas.ops.slimmable import SlimBatchNorm2d, SlimConv2d, SlimLinear, copy_prefix
from distilnas.spaces import SPACES, count_flops, count_params, create_space
from distilnas.spaces.resnet import ResNet, ResNetArch, ResNetConfig, ResNetSpace, round_channels


@pytest.fixture(scope="module")
def tiny() -> ResNetSpace:
    return ResNetSpace(ResNetConfig.fmnist16())


def _archs(space: ResNetSpace, n: int, seed: int = 0) -> list[ResNetArch]:
    rng = random.Random(seed)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


# -- encoding -----------------------------------------------------------------------------------------
def test_registered_and_code_length():
    assert "resnet" in SPACES
    full = create_space("resnet")
    # ResNet48: 4 depth digits + 4 stage widths + 5+5+8+5 block slots
    assert len(str(full.largest())) == 4 + 4 + 23
    assert str(full.largest()) == "5585" + "1" + "1" * 5 + "1" + "1" * 5 + "1" + "1" * 8 + "1" + "1" * 5


@pytest.mark.parametrize("cfg", [ResNetConfig(), ResNetConfig.fmnist16()], ids=["resnet48", "fmnist16"])
def test_round_trip(cfg):
    space = ResNetSpace(cfg)
    for a in _archs(space, 200):
        text = str(a)
        assert text.isdigit() and len(text) == len(str(space.largest()))
        assert space.parse(text) == a
        assert hash(space.parse(text)) == hash(a)


def test_canonical_zero_padding(tiny):
    a = tiny.smallest()  # depths 1,1,1,1: every slot past the first block holds '0'
    assert str(a) == "1111" + "77" + "0" + "77" + "0" + "77" + "00" + "77" + "0"


BIG = "2232" + "111" + "111" + "1111" + "111"  # the tiny space's largest code: slots 2/2/3/2


@pytest.mark.parametrize("text, needle", [
    ("", "expected 17 digits"),
    (BIG[:-1], "16 digits"),
    (BIG + "1", "18 digits"),
    (BIG[:-1] + "a", "only digits"),
    (BIG[:4] + " " + BIG[5:], "only digits"),
    ("1" + BIG[1:], "canonical"),  # stage 1 at depth 1 but its slot 2 set
    ("3" + BIG[1:], "depth 3 is outside 1..2"),  # stage 1 has 2 slots
    ("0" + BIG[1:], "depth 0 is outside"),
    (BIG[:6] + "0" + BIG[7:], "must be digits 1-9"),  # a present block with code 0
    (BIG[:4] + "8" + BIG[5:], "width code 8 exceeds"),  # 7 ratio choices
])
def test_malformed_codes(tiny, text, needle):
    with pytest.raises(ArchError, match=needle):
        tiny.parse(text)


def test_arch_rejects_nonzero_past_depth():
    with pytest.raises(ArchError, match="canonical"):
        ResNetArch((1,), (1,), ((1, 3),))


def test_depth_outside_choices():
    space = ResNetSpace()  # depths 2..5 in stage 1: depth 1 fits the slots but not the choices
    code = "1585" + "1" + "10000" + str(space.largest())[10:]
    with pytest.raises(ArchError, match="not among the choices"):
        space.parse(code)


def test_bad_config():
    with pytest.raises(ConfigError, match="depth_choices"):
        ResNetSpace(ResNetConfig(depth_choices=[[2, 3]]))
    with pytest.raises(ConfigError, match="width_ratios"):
        ResNetSpace(ResNetConfig(width_ratios=[1.0] + [0.5] * 2))
    with pytest.raises(ConfigError, match="stem"):
        ResNetSpace(ResNetConfig(stem="5x5"))


def test_round_channels():
    assert [round_channels(64, r, 8) for r in ResNetConfig().width_ratios] == [64, 64, 56, 56, 48, 48, 48]
    assert round_channels(40, 0.9, 8) == 40  # 36 is a tie: rounded half up
    assert round_channels(8, 0.1, 8) == 8  # never below one divisor


# -- choices, sample, mutate, distance ---------------------------------------------------------------
def test_choices_and_from_choices(tiny):
    ch = tiny.choices
    assert ch["depth_3"] == (1, 2, 3) and ch["width_1"] == tuple(ResNetConfig().width_ratios)
    assert len([k for k in ch if k.startswith("inner_")]) == sum(tiny.slots)
    rng = random.Random(3)
    for _ in range(50):
        a = tiny.from_choices({label: rng.choice(opts) for label, opts in ch.items()})
        assert tiny.parse(str(a)) == a


def test_sample_covers_choices(tiny):
    rng = random.Random(0)
    archs = [tiny.sample(rng) for _ in range(400)]
    assert {a.depths[2] for a in archs} == {1, 2, 3}
    assert {a.widths[0] for a in archs} == set(range(1, 8))
    assert len({str(a) for a in archs}) == 400


def test_mutate_changes_one_decision(tiny):
    rng = random.Random(1)
    for a in _archs(tiny, 100):
        b = tiny.mutate(a, rng)
        assert b != a and tiny.parse(str(b)) == b
        changed = (sum(x != y for x, y in zip(a.depths, b.depths)) + sum(x != y for x, y in zip(a.widths, b.widths)))
        if changed == 0:  # one inner width changed
            assert tiny.distance(a, b) == 1


def test_distance_is_hamming(tiny):
    a, b = tiny.largest(), tiny.smallest()
    assert tiny.distance(a, a) == 0
    assert tiny.distance(a, b) == sum(x != y for x, y in zip(str(a), str(b))) == tiny.distance(b, a)


# -- cost ---------------------------------------------------------------------------------------------
def test_cost_equals_counters(tiny):
    for a in _archs(tiny, 6):
        net = tiny.build(a, seed=0)
        assert tiny.cost(a) == {"params": count_params(net), "flops": count_flops(net, tiny.input_shape())}


def test_cost_equals_counters_imagenet_stem():
    space = ResNetSpace(ResNetConfig(input_size=40))  # the 7x7 stem + max-pool at a small size
    for a in _archs(space, 1, seed=5)[1:]:
        net = space.build(a, seed=0)
        assert space.cost(a) == {"params": count_params(net), "flops": count_flops(net, space.input_shape())}


def test_largest_is_largest(tiny):
    big, small = tiny.cost(tiny.largest()), tiny.cost(tiny.smallest())
    for a in _archs(tiny, 30)[2:]:
        c = tiny.cost(a)
        assert small["flops"] <= c["flops"] <= big["flops"]
        assert small["params"] <= c["params"] <= big["params"]


# -- slicing units ------------------------------------------------------------------------------------
def test_slim_conv_equals_plain():
    torch.manual_seed(0)
    slim = SlimConv2d(8, 12, 3, stride=2, padding=1, bias=True)
    x = torch.randn(2, 5, 9, 9)
    plain = nn.Conv2d(5, 7, 3, stride=2, padding=1, bias=True)
    with torch.no_grad():
        plain.weight.copy_(slim.weight[:7, :5])
        plain.bias.copy_(slim.bias[:7])
    torch.testing.assert_close(slim(x, 7), plain(x))
    full = torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(slim(full), nn.functional.conv2d(full, slim.weight, slim.bias, 2, 1))
    with pytest.raises(ValueError):
        slim(torch.randn(1, 9, 4, 4))


def test_slim_conv_gradient_lands_in_prefix():
    slim = SlimConv2d(6, 6, 1)
    slim(torch.randn(2, 4, 3, 3), 3).sum().backward()
    assert slim.weight.grad[:3, :4].abs().sum() > 0
    assert slim.weight.grad[3:].abs().sum() == 0 and slim.weight.grad[:, 4:].abs().sum() == 0


def test_slim_bn_equals_plain_and_updates_running_stats_in_place():
    torch.manual_seed(0)
    slim = SlimBatchNorm2d(10)
    with torch.no_grad():
        slim.weight.uniform_(0.5, 1.5)
        slim.bias.uniform_(-1, 1)
        slim.running_mean.uniform_(-1, 1)
        slim.running_var.uniform_(0.5, 2)
    plain = nn.BatchNorm2d(6)
    plain.load_state_dict({k: (v[:6] if v.dim() else v) for k, v in slim.state_dict().items()})
    rest_mean, rest_var = slim.running_mean[6:].clone(), slim.running_var[6:].clone()
    x = torch.randn(4, 6, 5, 5) * 2 + 1
    torch.testing.assert_close(slim(x), plain(x))  # train mode: batch statistics
    torch.testing.assert_close(slim.running_mean[:6], plain.running_mean)
    torch.testing.assert_close(slim.running_var[:6], plain.running_var)
    assert not torch.equal(slim.running_mean[:6], torch.zeros(6))
    assert torch.equal(slim.running_mean[6:], rest_mean) and torch.equal(slim.running_var[6:], rest_var)
    assert int(slim.num_batches_tracked) == int(plain.num_batches_tracked) == 1
    slim.eval()
    plain.eval()
    torch.testing.assert_close(slim(x), plain(x))  # eval mode: running statistics


def test_slim_bn_cumulative_average():
    slim, plain = SlimBatchNorm2d(8, momentum=None), nn.BatchNorm2d(4, momentum=None)
    for _ in range(3):
        x = torch.randn(4, 4, 3, 3)
        slim(x)
        plain(x)
    torch.testing.assert_close(slim.running_var[:4], plain.running_var)


def test_slim_linear_equals_plain():
    slim = SlimLinear(16, 10)
    plain = nn.Linear(11, 10)
    with torch.no_grad():
        plain.weight.copy_(slim.weight[:, :11])
        plain.bias.copy_(slim.bias)
    x = torch.randn(3, 11)
    torch.testing.assert_close(slim(x), plain(x))


def test_copy_prefix_rejects_larger_target():
    with pytest.raises(ValueError, match="not a prefix"):
        copy_prefix(nn.Linear(4, 3), nn.Linear(3, 3).state_dict())


# -- supernet -----------------------------------------------------------------------------------------
def test_supernet_largest_has_every_weight(tiny):
    sup = tiny.supernet()
    assert count_params(sup) == tiny.cost(tiny.largest())["params"]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_extract_equals_supernet_path(tiny, mode):
    torch.manual_seed(0)
    sup = tiny.supernet()
    sup.train()
    with torch.no_grad():  # give the BN layers distinct statistics
        for _ in range(2):
            sup(torch.randn(8, *tiny.input_shape()), tiny.largest())
    x = torch.randn(6, *tiny.input_shape())
    for a in _archs(tiny, 4, seed=7):
        net = tiny.supernet().extract(a)  # a fresh supernet must give a different net ...
        sub = sup.extract(a)
        assert type(sub) is ResNet
        leaves = {type(m) for m in sub.modules() if not list(m.children())}
        # plain layers, no slicing logic (PointwiseConv2d: nn.Conv2d run as subsample + stride 1, ops/conv.py)
        assert leaves == {nn.Conv2d, PointwiseConv2d, nn.BatchNorm2d, nn.Linear}
        assert count_params(sub) == tiny.cost(a)["params"]
        for m in (sup, sub, net):
            m.train(mode == "train")
        with torch.no_grad():
            want = sup(x, a)
            got = sub(x)
            other = net(x)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(other, want, atol=1e-3)  # ... so the equality above is not vacuous
        if mode == "train":  # both updated the same running statistics
            torch.testing.assert_close(sub.stem_bn.running_mean,
                                       sup.stem_bn.running_mean[:sub.stem_bn.num_features])


def test_supernet_backward_and_depth(tiny):
    sup = tiny.supernet()
    a = tiny.smallest()
    sup(torch.randn(4, *tiny.input_shape()), a).logsumexp(1).sum().backward()
    # blocks past the chosen depth get no gradient; the first block does
    assert sup.stages[2][1].conv1.weight.grad is None
    assert sup.stages[2][0].conv1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs the path"):
        sup(torch.randn(1, *tiny.input_shape()))


def test_build_is_seeded(tiny):
    a = tiny.sample(random.Random(2))
    state = torch.random.get_rng_state()
    n1, n2, n3 = tiny.build(a, seed=1), tiny.build(a, seed=1), tiny.build(a, seed=2)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(n1.stem_conv.weight, n2.stem_conv.weight)
    assert not torch.equal(n1.stem_conv.weight, n3.stem_conv.weight)


# -- a two-step search --------------------------------------------------------------------------------
def _search_cfg(algorithm: str):
    from distilnas.train.loop import resolve_config

    tiny = {"name": "resnet", "base_widths": [8, 16, 16, 32], "depth_choices": [[1, 2], [1, 2], [1, 2, 3], [1, 2]],
            "channel_divisor": 4, "stem": "3x3", "in_channels": 1, "input_size": 16, "num_classes": 10}
    return resolve_config({
        "space": tiny, "algorithm": {"name": algorithm},
        "data": {"name": "synthetic", "val_size": 100, "train_size": 256},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 32, "log_every": 0},
        "score": {"bn_recal_batches": 1, "bn_recal_batch_size": 32, "val_size": 64},
        "select": {"num_archs": 3, "top": 2},
    })


@pytest.mark.parametrize("algorithm", ["spos", "sandwich"])
def test_two_step_search(tmp_path, algorithm):
    from distilnas.train.loop import run_search

    cfg = _search_cfg(algorithm)
    run_search(cfg, tmp_path, progress=False)
    result = json.loads((tmp_path / "result.json").read_text())
    space = create_space("resnet", ResNetConfig(**{k: v for k, v in cfg.space.items() if k != "name"}))
    best = space.parse(result["arch"])
    assert result["space"] == "resnet" and result["steps"] == 2 and result["num_scored"] == 3
    assert result["passes"] == 2 * (1 if algorithm == "spos" else 4)
    assert result["best"]["flops"] == space.cost(best)["flops"]
