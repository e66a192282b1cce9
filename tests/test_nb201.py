"""Tests of the NAS-Bench-201 space (distilnas.spaces.nb201) and its ops (distilnas.ops.nb201)."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch
from torch import nn

from distilnas.arch import ArchError
from distilnas.ops.nb201 import AvgPool3x3
from distilnas.spaces import NB201Arch, NB201Config, NB201Space, count_flops, count_params
from distilnas.spaces.base import SearchSpace
from distilnas.spaces.nb201 import ALL_OPS, EDGES

OFFICIAL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
FOUR_OPS = ["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]  # RD-NAS: no `none`


def arch(*ops: str) -> NB201Arch:
    return NB201Arch(tuple(ops))


@pytest.fixture(scope="module")
def all_archs() -> list[NB201Arch]:
    return list(NB201Space().enumerate())


# -- strings ----------------------------------------------------------------------------------------
def test_official_string_round_trips():
    a = NB201Space().parse(OFFICIAL)
    assert a.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    assert str(a) == OFFICIAL


def test_round_trip_all_archs(all_archs):
    space = NB201Space()
    assert len(all_archs) == 5 ** 6 == space.size()
    assert len(set(all_archs)) == len(all_archs)  # hashable, distinct
    for a in all_archs:
        s = str(a)
        assert space.parse(s) == a
        assert str(space.parse(s)) == s


def test_parse_tolerates_surrounding_whitespace():
    assert str(NB201Space().parse(f"  {OFFICIAL}\n")) == OFFICIAL


@pytest.mark.parametrize("text, fragment", [
    ("", "3 '+'-separated"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 '+'-separated"),  # a node group missing
    (OFFICIAL + "+|none~0|", "3 '+'-separated"),  # one group too many
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "should be 'op~0'"),  # wrong source index
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~2|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "should be 'op~1'"),
    ("|nor_conv_3x3|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "should be 'op~0'"),  # no ~index at all
    ("|conv_5x5~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "unknown NB201 op 'conv_5x5'"),
    ("|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "node 1 needs 1 inputs, got 2"),  # an extra edge
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|",
     "node 3 needs 3 inputs, got 2"),  # a missing edge
    ("nor_conv_3x3~0+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "must be enclosed in '|'"),
])
def test_malformed_strings_raise_arch_error(text, fragment):
    with pytest.raises(ArchError) as e:
        NB201Space().parse(text)
    msg = str(e.value)
    assert fragment in msg
    assert "\n" not in msg
    assert isinstance(e.value, ValueError)  # the CLI reports ValueErrors as one-line errors


def test_malformed_message_shows_the_input_and_an_example():
    bad = "|nor_conv_3x3~0|+|oops|"
    with pytest.raises(ArchError, match="expected e.g. ") as e:
        NB201Space().parse(bad)
    assert repr(bad) in str(e.value)


def test_wrong_number_of_ops_in_value():
    with pytest.raises(ArchError, match="6 edges, got 5"):
        NB201Arch(("none",) * 5)


def test_space_excludes_ops_outside_its_op_set():
    space = NB201Space(NB201Config(ops=FOUR_OPS))
    with_none = "|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    with pytest.raises(ArchError, match="excludes") as e:
        space.parse(with_none)
    assert "'none'" in str(e.value)
    assert NB201Space().parse(with_none).ops[0] == "none"  # the full space accepts it
    with pytest.raises(ArchError, match="excludes"):
        space.build(NB201Space().parse(with_none))


def test_unknown_op_in_space_config():
    with pytest.raises(ArchError, match="unknown NB201 ops"):
        NB201Space(NB201Config(ops=["skip_connect", "conv_7x7"]))


# -- structure --------------------------------------------------------------------------------------
def test_isomorphism_classes_match_published_count(all_archs):
    assert len({a.isomorphism_key() for a in all_archs}) == 6466  # NB201 paper: 6,466 unique cells
    assert len({a.isomorphism_key(strict=True) for a in all_archs}) == 4930


def test_isomorphism_key_on_hand_made_cells():
    # node 1 = x, so node 2 = conv3(x) + conv1(node 1) is the same function as conv1(x) + conv3(node 1)
    a = arch("skip_connect", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "none", "avg_pool_3x3")
    b = arch("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3")
    c = arch("skip_connect", "nor_conv_1x1", "nor_conv_1x1", "skip_connect", "none", "avg_pool_3x3")
    assert a != b
    assert a.isomorphism_key() == b.isomorphism_key()
    assert a.isomorphism_key(strict=True) == b.isomorphism_key(strict=True)
    assert a.isomorphism_key() != c.isomorphism_key()
    assert a.isomorphism_key(strict=True) != c.isomorphism_key(strict=True)
    # Nodes 1 and 2 swapped: node 2 also sums the zero term of the none-edge 1->2, which only the strict
    # rule drops.
    d = arch("nor_conv_3x3", "nor_conv_1x1", "none", "skip_connect", "avg_pool_3x3", "avg_pool_3x3")
    e = arch("nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "avg_pool_3x3")
    assert d.isomorphism_key() != e.isomorphism_key()
    assert d.isomorphism_key(strict=True) == e.isomorphism_key(strict=True)
    # A conv applied to a sum of zero terms: equal only under the strict rule.
    f = arch("none", "none", "none", "skip_connect", "none", "nor_conv_3x3")
    g = arch("none", "none", "none", "skip_connect", "none", "none")
    assert f.isomorphism_key() != g.isomorphism_key()
    assert f.isomorphism_key(strict=True) == g.isomorphism_key(strict=True)


@pytest.mark.parametrize("ops, live", [
    (("none",) * 6, []),
    (("none", "none", "none", "skip_connect", "none", "none"), [3]),
    # node 1 is a dead end and node 2 is never reached: nothing joins input and output
    (("nor_conv_3x3", "none", "none", "none", "none", "nor_conv_3x3"), []),
    (("nor_conv_3x3", "none", "skip_connect", "none", "none", "avg_pool_3x3"), [0, 2, 5]),
    # edges 0 and 2 lead to node 2, which has no way out
    (("nor_conv_3x3", "none", "skip_connect", "skip_connect", "none", "none"), [3]),
    (("nor_conv_1x1",) * 6, [0, 1, 2, 3, 4, 5]),
])
def test_live_edges_and_connectivity(ops, live):
    a = NB201Arch(ops)
    assert a.live_edges() == live
    assert a.is_connected() == bool(live)


def test_connected_count_is_consistent(all_archs):
    # A cell is disconnected iff every input->output path has a `none` edge; count those by brute force
    # over the 4 paths 0-3, 0-1-3, 0-2-3, 0-1-2-3 (edge indices in EDGES order).
    paths = [(3,), (0, 4), (1, 5), (0, 2, 5)]
    for a in all_archs[::7]:
        by_paths = any(all(a.ops[k] != "none" for k in p) for p in paths)
        assert a.is_connected() == by_paths


# -- choices, sampling, mutation, distance ---------------------------------------------------------------
def test_choices_and_from_choices():
    space = NB201Space()
    assert list(space.choices) == [f"edge_{j}_{i}" for j, i in EDGES]
    assert all(opts == ALL_OPS for opts in space.choices.values())
    a = space.parse(OFFICIAL)
    assert space.from_choices(dict(zip(space.choices, a.ops))) == a


def test_sample_is_deterministic_and_covers_ops():
    space = NB201Space()
    s1 = [space.sample(random.Random(7)) for _ in range(3)]
    assert s1[0] == s1[1] == s1[2]
    rng = random.Random(0)
    many = [space.sample(rng) for _ in range(300)]
    assert len(set(many)) > 250
    for k in range(len(EDGES)):
        assert {a.ops[k] for a in many} == set(ALL_OPS)


def test_mutate_changes_exactly_one_edge():
    space = NB201Space(NB201Config(ops=FOUR_OPS))
    rng = random.Random(1)
    a = space.sample(rng)
    for _ in range(50):
        b = space.mutate(a, rng)
        assert space.distance(a, b) == 1.0
        assert all(op in FOUR_OPS for op in b.ops)
        a = b


def test_distance_is_hamming():
    space = NB201Space()
    a = space.parse(OFFICIAL)
    b = arch("nor_conv_3x3", "none", "avg_pool_3x3", "skip_connect", "none", "none")
    assert space.distance(a, a) == 0.0
    assert space.distance(a, b) == space.distance(b, a) == 3.0


def test_four_op_space_restricts_sampling_and_enumeration():
    space = NB201Space(NB201Config(ops=FOUR_OPS))
    assert space.size() == 4 ** 6 == len(list(space.enumerate()))
    rng = random.Random(3)
    assert all("none" not in space.sample(rng).ops for _ in range(200))
    net = space.supernet()
    assert not any(name.endswith(".none") for name, _ in net.named_modules())
    assert any(name.endswith(".skip_connect") for name, _ in net.named_modules())


# -- networks ---------------------------------------------------------------------------------------
def test_official_network_has_about_1_53m_params():
    space = NB201Space()  # C=16, N=5, 3x32x32, 10 classes
    net = space.build(NB201Arch(("nor_conv_3x3",) * 6))
    assert round(count_params(net) / 1e6, 2) == 1.53  # NB201 reports ~1.53 MB of parameters for this cell


@pytest.fixture
def small_space() -> NB201Space:
    return NB201Space(NB201Config(C=4, N=1, in_channels=3, input_size=8, num_classes=5))


def _extract_cases(space: NB201Space) -> list[NB201Arch]:
    rng = random.Random(0)
    cases = [space.sample(rng) for _ in range(4)]
    cases.append(arch("nor_conv_3x3", "none", "none", "none", "none", "nor_conv_3x3"))  # disconnected
    cases.append(arch(*["none"] * 6))
    cases.append(arch("nor_conv_3x3", "none", "skip_connect", "skip_connect", "none", "none"))  # dead edges
    return cases


def test_extract_matches_supernet_in_eval_mode(small_space):
    torch.manual_seed(0)
    sn = small_space.supernet()
    x = torch.randn(6, 3, 8, 8)
    sn.train()
    with torch.no_grad():  # give every BN non-trivial running statistics
        for k in range(6):
            sn(x * (1 + k), small_space.sample(random.Random(k)))
    sn.eval()
    outs = []
    for a in _extract_cases(small_space):
        net = sn.extract(a).eval()
        with torch.no_grad():
            y_sn, y_net = sn(x, a), net(x)
        assert y_sn.shape == (6, 5)
        torch.testing.assert_close(y_net, y_sn, rtol=1e-5, atol=1e-6)
        outs.append(y_sn)
    assert not torch.allclose(outs[0], outs[1])  # different paths really compute different things


def test_extract_matches_supernet_in_train_mode(small_space):
    torch.manual_seed(1)
    sn = small_space.supernet()
    x = torch.randn(6, 3, 8, 8)
    for a in _extract_cases(small_space):
        ref = copy.deepcopy(sn).train()
        net = ref.extract(a).train()
        y_sn, y_net = ref(x, a), net(x)
        torch.testing.assert_close(y_net, y_sn, rtol=1e-5, atol=1e-6)
        own = ref.state_dict()
        for k, v in net.state_dict().items():  # the same BN statistics were collected
            torch.testing.assert_close(v, own[k], rtol=1e-5, atol=1e-6)


def test_extract_keeps_trained_weights_and_rejects_foreign_ops():
    space = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=8, ops=FOUR_OPS))
    sn = space.supernet()
    with torch.no_grad():
        for p in sn.parameters():
            p.add_(1.0)
    a = space.sample(random.Random(0))
    net = sn.extract(a)
    own = dict(sn.named_parameters())
    for name, p in net.named_parameters():
        assert torch.equal(p, own[name])
    with pytest.raises(ArchError, match="not in this supernet"):
        sn.extract(arch(*["none"] * 6))


def test_supernet_forward_needs_a_path(small_space):
    with pytest.raises(ValueError, match="needs the path"):
        small_space.supernet()(torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize("cfg", [
    NB201Config(C=4, N=1, in_channels=1, input_size=16),
    NB201Config(C=3, N=2, in_channels=2, input_size=15, num_classes=7, affine=False),  # odd input size
])
def test_cost_table_equals_counting_the_built_network(cfg):
    space = NB201Space(cfg)
    rng = random.Random(5)
    cases = [space.sample(rng) for _ in range(3)]
    cases.append(arch("nor_conv_3x3", "none", "skip_connect", "skip_connect", "none", "nor_conv_1x1"))
    cases.append(arch("nor_conv_3x3", "none", "none", "none", "none", "nor_conv_3x3"))  # disconnected
    for a in cases:
        net = space.build(a, seed=0)
        want = {"params": count_params(net), "flops": count_flops(net, space.input_shape())}
        assert space.cost(a) == want
        assert SearchSpace.cost(space, a) == want  # the generic (counting) implementation agrees


def test_cost_counts_dead_edge_params_but_not_their_flops():
    space = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16))
    live = arch("none", "none", "none", "skip_connect", "none", "none")
    dead = arch("nor_conv_3x3", "none", "none", "skip_connect", "none", "none")  # edge 0 is a dead end
    assert space.cost(dead)["flops"] == space.cost(live)["flops"]
    assert space.cost(dead)["params"] > space.cost(live)["params"]


def test_build_is_deterministic_per_seed_and_keeps_global_rng():
    space = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=8))
    a = space.parse(OFFICIAL)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    s1 = space.build(a, seed=1).state_dict()
    s1b = space.build(a, seed=1).state_dict()
    s2 = space.build(a, seed=2).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(s1[k], s1b[k]) for k in s1)
    assert not all(torch.equal(s1[k], s2[k]) for k in s1)


def test_affine_false_cells():
    cfg = NB201Config(C=4, N=1, in_channels=1, input_size=8, affine=False)
    space = NB201Space(cfg)
    a = arch(*(["nor_conv_3x3"] * 6))
    net = space.build(a, seed=0)
    cell_bns = [m for name, m in net.named_modules() if name.startswith("cells.") and ".edges." in name
                and isinstance(m, nn.BatchNorm2d)]
    assert cell_bns and all(m.weight is None and m.bias is None for m in cell_bns)
    # 6 convs per cell, 3 cells (widths 4, 8, 16): affine BN adds 2 parameters per channel of each
    affine_net = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=8)).build(a, seed=0)
    assert count_params(affine_net) - count_params(net) == 6 * 2 * (4 + 8 + 16)
    out = space.supernet()(torch.randn(3, 1, 8, 8), a)
    out.sum().backward()
    assert out.shape == (3, 10)


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 5, 8, 6), (3, 1, 1, 4)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_avg_pool_matches_torch(shape, channels_last):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    want = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)(x)
    torch.testing.assert_close(AvgPool3x3()(x), want, rtol=1e-5, atol=1e-6)


# -- dead edges as the official cell runs them (issue 12 / 14) ---------------------------------------------------
def _official_cell(self, x, ops, live):
    """The official cell, as xautodl's ``InferCell.forward``: node j = sum of op(node i) over every edge,
    ``none`` included, whatever ``live`` says."""
    nodes = [x]
    for j in (1, 2, 3):
        nodes.append(sum(self.edges[k][ops[k]](nodes[i]) for k, (jj, i) in enumerate(EDGES) if jj == j))
    return nodes[3]


DEAD_EDGE_ARCHS = [
    "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",  # conv of node 1 = 0
    "|none~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|",  # node 2 = a constant
    "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|",  # conv of zero into the output
    "|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|skip_connect~2|",  # disconnected: only a BN shift
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",  # nodes 1, 2: dead ends
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
]


def _dead_edge_nets(arch, affine=True, modes=("official", "full")):
    """Supernets of the tiny space, one per dead-edge mode, with the same random BN parameters and
    statistics (so that the constants of edges fed by zeros are not all zero)."""
    cfg = dict(C=4, N=1, in_channels=1, input_size=8, affine=affine)
    spaces = [NB201Space(NB201Config(**cfg, dead_edges=m)) for m in modes]
    torch.manual_seed(0)
    net = spaces[0].supernet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-1, 1)
    nets = [net] + [s.supernet() for s in spaces[1:]]
    for other in nets[1:]:
        other.load_state_dict(net.state_dict())
    return spaces[0].parse(arch), nets


def _forward_backward(net, x, a, train):
    net.train(train)
    net.zero_grad(set_to_none=True)
    out = net(x, a)
    out.square().sum().backward()
    grads = {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in net.named_parameters()}
    with_grad = {n for n, p in net.named_parameters() if p.grad is not None}  # what an optimiser would step
    return out.detach(), grads, with_grad


@pytest.mark.parametrize("arch", DEAD_EDGE_ARCHS)
def test_full_dead_edges_run_the_official_cell(arch, monkeypatch):
    """dead_edges=full is the official cell: the same outputs, gradients, BatchNorm statistics (dead ends
    included) and activation-function calls (NASWOT's codes) as xautodl's forward, to the bit."""
    from distilnas.proxies import PROXIES
    from distilnas.spaces import nb201 as mod

    a, (full, ref) = _dead_edge_nets(arch, modes=("full", "skip"))
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    nwot = PROXIES.get("nwot")
    got_nwot = nwot(full.extract(a), (x, None), torch.Generator())
    for train in (True, False):
        out, grads, _ = _forward_backward(full, x, a, train)
        with monkeypatch.context() as mp:
            mp.setattr(mod._Cell, "forward", _official_cell)
            expect, expect_grads, _ = _forward_backward(ref, x, a, train)
            if not train:
                want_nwot = nwot(ref.extract(a), (x, None), torch.Generator())
        assert torch.equal(out, expect)
        for name, g in grads.items():
            assert torch.equal(g, expect_grads[name]), name
    for (name, b), (_, r) in zip(full.named_buffers(), ref.named_buffers()):
        assert torch.equal(b, r), name
    assert got_nwot == want_nwot or (math.isnan(got_nwot) and math.isnan(want_nwot))


@pytest.mark.parametrize("arch", DEAD_EDGE_ARCHS)
@pytest.mark.parametrize("affine", [True, False])
def test_official_dead_edges_match_full(arch, affine):
    """dead_edges=official computes the official cell's constants in closed form: the same outputs,
    gradients and running statistics of every edge that reaches the output as dead_edges=full (running
    every edge on zeros), in training and eval mode, within float32 rounding."""
    a, (official, full) = _dead_edge_nets(arch, affine)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for train in (True, False):
        out, grads, with_grad = _forward_backward(official, x, a, train)
        expect, expect_grads, expect_with_grad = _forward_backward(full, x, a, train)
        assert with_grad == expect_with_grad  # zero gradients where the official cell has them, not none
        torch.testing.assert_close(out, expect, rtol=1e-5, atol=1e-5)
        for name, g in grads.items():
            torch.testing.assert_close(g, expect_grads[name], rtol=1e-4, atol=1e-4, msg=name)
    live = set(a.official_edges())
    for (name, b), (_, r) in zip(official.named_buffers(), full.named_buffers()):
        edge = name.split(".")[3] if name.startswith("cells.") and ".edges." in name else None
        if edge is None or int(edge) in live:  # dead-end edges' statistics are never read
            torch.testing.assert_close(b.float(), r.float(), rtol=1e-5, atol=1e-6, msg=name)


def test_official_dead_edges_change_only_cells_with_zero_inputs():
    kw = dict(C=4, N=1, in_channels=1, input_size=8)
    skip = NB201Space(NB201Config(**kw))
    official = NB201Space(NB201Config(**kw, dead_edges="official"))
    full = NB201Space(NB201Config(**kw, dead_edges="full"))
    torch.manual_seed(0)
    net = skip.supernet()
    net_o = official.supernet()
    net_o.load_state_dict(net.state_dict())
    with torch.no_grad():
        for m in list(net.modules()) + list(net_o.modules()):
            if isinstance(m, torch.nn.BatchNorm2d) and m.affine:
                m.bias.fill_(0.3)
    net.eval()
    net_o.eval()
    x = torch.randn(2, 1, 8, 8)
    clean = skip.parse(DEAD_EDGE_ARCHS[-1])  # every edge carries signal
    torch.testing.assert_close(net(x, clean), net_o(x, clean))
    dead = skip.parse(DEAD_EDGE_ARCHS[0])
    assert not torch.allclose(net(x, dead), net_o(x, dead))
    # FLOPs: the official network runs (and counts) every non-none edge, as full does
    assert official.cost(dead)["flops"] > skip.cost(dead)["flops"]
    assert official.cost(clean) == skip.cost(clean) and official.cost(dead)["params"] == skip.cost(dead)["params"]
    for text in DEAD_EDGE_ARCHS:
        a = full.parse(text)
        counted = count_flops(full.build(a, seed=0), full.input_shape())
        assert official.cost(a) == full.cost(a) and full.cost(a)["flops"] == counted


def test_official_size():
    assert NB201Config().official_size and NB201Config(num_classes=100, dead_edges="skip").official_size
    assert not NB201Config(C=8, N=3, in_channels=1, input_size=16).official_size
    assert NB201Config(input_size=16, num_classes=120).official_size  # ImageNet16-120's network
    assert not NB201Config(in_channels=1).official_size


def test_pool_flops_false_counts_pooling_as_nb201_does():
    """NB201's own counter sums convolutions and linear layers only: an avg_pool_3x3 edge is free there."""
    ours = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16))
    nb201 = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16, pool_flops=False))
    pool = arch(*["avg_pool_3x3"] * 6)
    skip = arch(*["skip_connect"] * 6)
    mixed = arch("nor_conv_3x3", "avg_pool_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "avg_pool_3x3")
    conv_only = arch("nor_conv_3x3", "skip_connect", "skip_connect", "skip_connect", "nor_conv_1x1", "skip_connect")
    assert nb201.cost(pool)["flops"] == nb201.cost(skip)["flops"] == ours.cost(skip)["flops"]
    assert ours.cost(pool)["flops"] > ours.cost(skip)["flops"]
    assert nb201.cost(mixed)["flops"] == ours.cost(conv_only)["flops"]
    assert nb201.cost(mixed)["params"] == ours.cost(mixed)["params"]  # parameters do not change
