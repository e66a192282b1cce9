"""Zero-cost proxies: every registered proxy on a tiny NB201 (C=4, N=1, 3x8x8) with synthetic tensors."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distilnas.cli import main
from distilnas.proxies import PROXIES, ProxyError, compute, register_proxy, score_archs
from distilnas.proxies.naswot import _OnActivations
from distilnas.proxies.pruning import _loss_grads, hessian_vector_fd
from distilnas.proxies.zen import prepool_features
from distilnas.registry import RegistryError
from distilnas.spaces import NB201Config, NB201Space, count_flops, count_params

GOOD = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
OTHER = "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # no path from input to output
NAMES = PROXIES.list()
DATA_FREE = [n for n in NAMES if not PROXIES.get(n).data]
DATA = [n for n in NAMES if PROXIES.get(n).data]


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space(NB201Config(C=4, N=1, in_channels=3, input_size=8, num_classes=10))


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_names_and_duplicates() -> None:
    assert set(NAMES) == {"grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "nwot", "zen",
                          "params", "flops"}
    assert set(DATA_FREE) == {"synflow", "zen", "params", "flops"}
    with pytest.raises(RegistryError, match="duplicate"):
        register_proxy("snip")(lambda model, x, y, g: 0.0)
    assert len(PROXIES) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_finite_deterministic_and_model_unchanged(name: str, space: NB201Space, batch) -> None:
    model = space.build(space.parse(GOOD), seed=0)
    model.train()
    with torch.no_grad():
        model(batch[0])  # BN running statistics away from their initial values
    model.eval()
    model.cells[0].train()  # a mix of modes
    model.classifier.weight.requires_grad_(False)  # a mix of flags
    model.stem[0].weight.grad = torch.full_like(model.stem[0].weight, 0.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]

    proxy = PROXIES.get(name)
    with torch.no_grad():  # proxies must take their own gradients
        a = proxy(model, batch, _gen(3))
    b = proxy(model, batch, _gen(3))
    assert isinstance(a, float) and math.isfinite(a)
    assert a == b
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state), "weights or BN statistics changed"
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [m.training for m in model.modules()] == modes
    for g0, p in zip(grads, model.parameters()):
        assert (g0 is None and p.grad is None) or torch.equal(g0, p.grad)


@pytest.mark.parametrize("name", NAMES)
def test_compute_and_sweep_agree(name: str, space: NB201Space, batch) -> None:
    archs = [space.parse(GOOD), space.parse(OTHER)]
    single = [compute(name, space, a, batch, seed=1) for a in archs]
    records = list(score_archs(name, space, archs, batch, seed=1))
    assert [r["arch"] for r in records] == [GOOD, OTHER]
    assert [r["score"] for r in records] == single
    assert all("error" not in r and r["seconds"] >= 0 for r in records)
    assert single[0] != single[1]  # the score depends on the architecture
    if not PROXIES.get(name).cost:  # the proxy's generator and the network follow the seed
        again = compute(name, space, archs[0], batch, seed=1)
        assert again == single[0]


@pytest.mark.parametrize("name", [n for n in NAMES if not PROXIES.get(n).cost])
def test_numerical_failure_is_nan_not_an_exception(name: str, space: NB201Space, batch) -> None:
    proxy = PROXIES.get(name)
    if proxy.data:  # NaN images poison every data proxy
        model = space.build(space.parse(GOOD), seed=0)
        score, error = proxy.run(model, (torch.full_like(batch[0], math.nan), batch[1]), _gen())
    else:  # data-free proxies ignore the images; a network without a path gives them nothing to measure
        model = space.build(space.parse(DEAD), seed=0)
        score, error = proxy.run(model, batch, _gen())
    assert math.isnan(score) and error and error.startswith(name)
    assert math.isnan(proxy(model, batch if not proxy.data else (torch.full_like(batch[0], math.nan), batch[1]),
                            _gen()))


def test_failed_arch_warns_and_does_not_stop_the_sweep(space: NB201Space, batch) -> None:
    archs = [space.parse(GOOD), space.parse(DEAD), space.parse(OTHER)]
    with pytest.warns(RuntimeWarning, match=re.escape(DEAD)):
        records = list(score_archs("jacob_cov", space, archs, batch))
    assert [r["score"] is None for r in records] == [False, True, False]
    assert "constant input Jacobian" in records[1]["error"]
    assert json.loads(json.dumps(records[1]))["score"] is None
    with pytest.warns(RuntimeWarning, match=re.escape(DEAD)):
        assert math.isnan(compute("jacob_cov", space, archs[1], batch))


@pytest.mark.parametrize("name", ["params", "flops"])
def test_cost_proxies_equal_space_cost(name: str, space: NB201Space) -> None:
    for text in (GOOD, OTHER, DEAD):
        arch = space.parse(text)
        model = space.build(arch, seed=0)
        counted = count_params(model) if name == "params" else count_flops(model, space.input_shape())
        assert compute(name, space, arch, None) == space.cost(arch)[name] == counted
        assert PROXIES.get(name)(model, None, _gen(), input_shape=(1, *space.input_shape())) == counted


@pytest.mark.parametrize("name", DATA_FREE)
def test_data_free_proxies_need_no_batch(name: str, space: NB201Space, batch) -> None:
    arch = space.parse(GOOD)
    assert math.isfinite(compute(name, space, arch, None))
    with pytest.raises(ProxyError, match="input shape"):
        PROXIES.get(name)(space.build(arch, seed=0), None, _gen())
    if name == "synflow":  # an all-ones input: the batch's values are never read
        model = space.build(arch, seed=0)
        assert PROXIES.get(name)(model, batch, _gen()) == PROXIES.get(name)(model, (batch[0] * 7, batch[1]), _gen())


@pytest.mark.parametrize("name", DATA)
def test_data_proxies_refuse_no_batch(name: str, space: NB201Space) -> None:
    with pytest.raises(ProxyError, match="needs a batch"):
        compute(name, space, space.parse(GOOD), None)


def test_import_distilnas_stays_light() -> None:
    code = "import sys, distilnas; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


# -- networks of other shapes: functional ReLUs + residuals (ResNet-like); Swish + SE gate (MobileNet-like) ---
class _ResLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        self.conv2, self.bn2 = nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        self.prepool = F.relu(self.bn2(self.conv2(x)) + x, inplace=True)  # made by no module
        return self.fc(self.prepool.mean((2, 3)))


class _MBLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.se_reduce, self.se_expand = nn.Conv2d(8, 2, 1), nn.Conv2d(2, 8, 1)
        self.head = nn.Sequential(nn.Conv2d(8, 12, 1, bias=False), nn.BatchNorm2d(12), nn.Hardswish())
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        s = self.se_expand(F.relu(self.se_reduce(F.adaptive_avg_pool2d(self.dw(x), 1))))
        x = x + self.dw(x) * F.hardsigmoid(s)  # hardsigmoid has no double backward
        self.prepool = self.head(x)
        return self.fc(self.pool(self.prepool).flatten(1))


@pytest.mark.parametrize("net", [_ResLike, _MBLike])
@pytest.mark.parametrize("name", NAMES)
def test_proxies_are_generic_over_modules(name: str, net: type[nn.Module], batch) -> None:
    torch.manual_seed(0)
    model = net()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    score = PROXIES.get(name)(model, batch, _gen())
    assert math.isfinite(score)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize("net", [_ResLike, _MBLike])
def test_zen_reads_the_map_that_enters_the_global_pool(net: type[nn.Module], batch) -> None:
    torch.manual_seed(0)
    model = net()
    with torch.no_grad():
        features = prepool_features(model, batch[0])
    assert features is model.prepool and features.shape[2:] == batch[0].shape[2:]


# -- NB201 dead edges: `full` is the official network for proxies that look inside it -------------------------
CONV_OF_ZEROS = "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
DEAD_ENDS = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"  # nodes 1, 2


def _dead_edges(space: NB201Space, mode: str) -> NB201Space:
    return NB201Space(replace(space.cfg, dead_edges=mode))


def test_nwot_under_full_counts_the_codes_of_dead_edges(space: NB201Space, batch) -> None:
    """Node 1 is all-zero, so edges 2 (conv 3x3) and 4 (conv 1x1) apply ReLU to zeros in the official
    network: every such unit has code 0 for every sample and adds 1 to every entry of K."""
    arch = space.parse(CONV_OF_ZEROS)
    nwot = PROXIES.get("nwot")
    skip_score = nwot(space.build(arch, seed=0), batch, _gen())
    full_score = nwot(_dead_edges(space, "full").build(arch, seed=0), batch, _gen())
    assert full_score != skip_score
    model = space.build(arch, seed=0).train()  # K of the skip network, by NASWOT's formula
    codes: list[torch.Tensor] = []
    with _OnActivations(lambda inp: codes.append((inp > 0).flatten(1).double())), torch.no_grad():
        model(batch[0])
    kernel = sum(c @ c.T + (1 - c) @ (1 - c).T for c in codes)
    units = 2 * sum(c * s * s for c, s in ((4, 8), (8, 4), (16, 2)))  # 2 dead edges, 1 cell per stage (C, H=W)
    want = torch.linalg.slogdet(kernel + units)[1].item()
    assert full_score == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", ["synflow", "snip", "jacob_cov", "params"])
def test_proxies_that_read_the_output_agree_across_dead_edge_modes(name: str, space: NB201Space, batch) -> None:
    """Dead edges add zeros under every mode (BatchNorm's beta is 0 at initialisation, synflow removes it)."""
    arch = space.parse(CONV_OF_ZEROS)
    scores = [compute(name, _dead_edges(space, m), arch, batch) for m in ("skip", "official", "full")]
    assert scores == pytest.approx([scores[0]] * 3, rel=1e-9)


def test_zen_is_finite_under_full(space: NB201Space) -> None:
    """A BN fed by an all-zero node has zero input variance: Zen leaves it out instead of adding log 0."""
    zen, full, official = PROXIES.get("zen"), _dead_edges(space, "full"), _dead_edges(space, "official")
    scores = {}
    for text in (CONV_OF_ZEROS, DEAD_ENDS, GOOD):
        arch = space.parse(text)
        scores[text] = [zen(s.build(arch, seed=0), None, _gen(), input_shape=(8, 3, 8, 8))
                        for s in (full, official, space)]
        assert all(math.isfinite(v) for v in scores[text])
    # Zen's BatchNorm init (beta 0) makes dead edges add zeros, so only dead ends' BNs tell full apart
    assert scores[CONV_OF_ZEROS][0] == pytest.approx(scores[CONV_OF_ZEROS][1], rel=1e-6)
    assert scores[CONV_OF_ZEROS][0] == pytest.approx(scores[CONV_OF_ZEROS][2], rel=1e-6)
    assert scores[DEAD_ENDS][0] != pytest.approx(scores[DEAD_ENDS][1], rel=1e-6)


def test_grasp_finite_difference_hessian_matches_double_backward(space: NB201Space, batch) -> None:
    model = space.build(space.parse(GOOD), seed=0).double()
    x = batch[0].double()
    weights, grads = _loss_grads(model, x, batch[1], create_graph=True)
    v = [torch.randn(w.shape, generator=_gen(k), dtype=torch.float64) for k, w in enumerate(weights)]
    exact = torch.autograd.grad(sum((vi * g).sum() for vi, g in zip(v, grads)), weights)
    approx = hessian_vector_fd(model, x, batch[1], v)
    err = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(exact, approx)))
    assert err.item() < 1e-6 * torch.sqrt(sum((a ** 2).sum() for a in exact)).item()


# -- CLI ----------------------------------------------------------------------------------------------------
SYNTH = ["data.name=synthetic", "data.val_size=200"]  # 1x16x16, 10 classes, 2,000 training images
TINY = ["space.C=4", "space.N=1", "space.in_channels=1", "space.input_size=16", "batch_size=8"]


@pytest.fixture
def archs_file(tmp_path: Path) -> Path:
    p = tmp_path / "archs.txt"
    p.write_text(f"# two architectures\n{GOOD}\n\n{DEAD}\n")
    return p


def test_cli_round_trip(archs_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "scores.jsonl"
    with pytest.warns(RuntimeWarning, match=re.escape(DEAD)):
        rc = main(["proxy", "jacob_cov", "--archs", str(archs_file), "--out", str(out), *SYNTH, *TINY])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["arch"] for r in rows] == [GOOD, DEAD]
    assert isinstance(rows[0]["score"], float) and rows[1]["score"] is None and rows[1]["error"]
    assert "scored 2 architectures (1 failed)" in capsys.readouterr().out
    # data-free: no data needed; the space options still apply
    rc = main(["proxy", "flops", "--space", "nb201", "--archs", str(archs_file), "--out", str(out), *TINY])
    space = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16))
    assert rc == 0 and json.loads(out.read_text().splitlines()[0])["score"] == space.cost(space.parse(GOOD))["flops"]
    assert main(["list", "proxies"]) == 0 and "synflow" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    ([], "needs data; pass data with overrides, e.g. data.name=fmnist16 space.in_channels=1"),
    ([*SYNTH, "space.C=4", "space.N=1"], "set space.in_channels=1 space.input_size=16"),
    ([*SYNTH, *TINY, "space.num_classes=5"], "space.num_classes=5 but synthetic has 10"),
    ([*SYNTH, *TINY, "batch=3"], "unknown config key 'batch'"),
    ([*SYNTH, "data.nme=x", *TINY], "unknown config key 'data.nme'"),
    (["space.width=3"], "unknown config key 'space.width'"),
    ([*SYNTH, *TINY, "threads=-1"], "threads=-1: must be a non-negative integer (>= 0)"),
])
def test_cli_one_line_errors(extra: list[str], message: str, archs_file: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["proxy", "snip", "--archs", str(archs_file), "--out", str(tmp_path / "o.jsonl"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and err.startswith("distilnas: error:")


def test_cli_bad_arch_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "archs.txt"
    p.write_text(f"{GOOD}\n# fine\n|nor_conv_3x3~0|+|oops~0|\n")
    rc = main(["proxy", "synflow", "--archs", str(p), "--out", str(tmp_path / "o.jsonl"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and f"{p}:3:" in err and err.count("\n") == 1


def test_cli_nb201_dead_edges_default(tmp_path: Path) -> None:
    """NB201 at the official size scores with dead_edges=full (the published setting), unless the user sets
    it; other sizes (the micro-benchmark) keep skip. FLOPs tell the modes apart (full counts dead edges)."""
    archs, out = tmp_path / "archs.txt", tmp_path / "o.jsonl"
    archs.write_text(CONV_OF_ZEROS + "\n")

    def flops(*extra: str) -> float:
        assert main(["proxy", "flops", "--archs", str(archs), "--out", str(out), *extra]) == 0
        return json.loads(out.read_text())["score"]

    def cost(**cfg: object) -> float:
        space = NB201Space(NB201Config(**cfg))
        return space.cost(space.parse(CONV_OF_ZEROS))["flops"]

    micro = dict(C=8, N=3, in_channels=1, input_size=16)
    assert cost(dead_edges="full") > cost()
    assert flops() == cost(dead_edges="full")
    assert flops("space.num_classes=100") == cost(num_classes=100, dead_edges="full")  # CIFAR-100: still full
    assert flops("space.dead_edges=skip") == cost()
    assert flops(*(f"space.{k}={v}" for k, v in micro.items())) == cost(**micro)
    assert flops("space.dead_edges=full", *(f"space.{k}={v}" for k, v in micro.items())) == cost(**micro,
                                                                                                  dead_edges="full")


def test_process_pool_matches_in_process(space: NB201Space, batch) -> None:
    archs = [space.parse(t) for t in (GOOD, OTHER, DEAD, GOOD)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        one = list(score_archs("snip", space, archs, batch, workers=1))
        two = list(score_archs("snip", space, archs, batch, workers=2))
    assert [r["score"] for r in one] == [r["score"] for r in two]
