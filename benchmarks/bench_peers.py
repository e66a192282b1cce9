"""SPOS training-step time of the NB201 supernet in distilnas and in its peers (xautodl, NNI), side by side.

    python benchmarks/bench_peers.py [--size both] [--rounds 7] [--steps 10] [--threads 1] [--format channels_last] [--no-memory] [--check]

The peers are optional (``pip install -e .[peers]`` for NNI; xautodl with ``pip install --no-deps
xautodl==1.0.0``, see docs/performance.md); a missing one is reported and skipped. Workloads (``--size``):

* ``official``: C=16, N=5, 3x32x32 input, 10 classes, batch 64 (the NB201 paper's CIFAR-10 network);
* ``micro``: C=8, N=3, 1x16x16 input, 10 classes, batch 128 (the fmnist16 micro-benchmark).

One step = zero grad, forward of one uniformly sampled path, cross-entropy, backward, SGD step (lr 0.01,
momentum 0.9) on one fixed random batch; every model and the batch are in ``--format``, by default
channels_last (what distilnas trains with, faster on CPU; the peers get it too, so the memory format is not
part of the comparison; ``--format contiguous`` is the peers' own default). Each round draws ``--steps``
architecture strings from ``random.Random(round)`` and every implementation trains exactly those paths,
in turn (interleaved rounds, the order rotated each round, so load changes on a shared machine hit all
alike). Printed: median ms/step over rounds with the per-round min-max, and the ratio to
``distilnas-official`` per round (median, min-max), all from the same run. What each one computes:

* ``distilnas-official``: ``NB201Space(NB201Config(dead_edges="official")).supernet()``, ``net(x, arch)``:
  runs only the sampled op of each edge, skips ``none`` edges and edges into nodes that cannot reach the
  output, and replaces a ReLU-Conv-BN edge fed by an all-zero node with its BatchNorm's constant (closed
  form); the same outputs and gradients as the official cell. avg_pool_3x3 is a depthwise box filter.
* ``distilnas-skip``: the default ``dead_edges: skip``: also skips edges fed by an all-zero node.
* ``distilnas-standalone``: reference: ``supernet.extract(arch)`` of the official supernet, a
  network holding only that path (built before the round, untimed; one step each, its SGD momentum buffers
  created in that step).
* ``xautodl``: NB201's own code, ``xautodl.models.cell_searchs.TinyNetworkRANDOM`` (the RSPS supernet of the
  NB201 paper; affine BN with running stats, as distilnas), path fixed by ``net.arch_cache =
  CellStructure.str2structure(arch_string)`` (what ``random_genotype`` sets); ``SearchCell.forward_dynamic``
  runs the sampled op of all 6 edges of every cell: ``none`` as ``x.mul(0)``, edges fed by zero nodes and
  edges into dead ends included (the latter forward only: autograd does not reach them), node sums by
  Python ``sum``; avg pool is ``nn.AvgPool2d(count_include_pad=False)`` (the same numbers).
* ``nni``: NNI 3.0 ``nni.nas.hub.pytorch.NasBench201`` turned into a supernet by
  ``nni.nas.oneshot.pytorch.strategy.RandomOneShot().mutate_model`` (LayerChoice -> PathSamplingLayer, the
  SPOS / uniform single-path sampler); the path is fixed by calling every PathSamplingLayer's
  ``resample(memo)`` with the sampled choices, the same call RandomOneShot's training step makes (it just
  draws the choices itself). Like xautodl it runs one op on all 6 edges of every cell (``none`` as
  ``x.mul(0)``), node sums by ``torch.stack(...).sum(0)``, whose result is contiguous whatever the inputs'
  format (in channels_last its cells convert formats back and forth). Only the model is NNI's: the
  Lightning training loop around it is not timed.

``--check`` first copies distilnas-official's weights (with random BatchNorm shifts) into the others in
parameter order and prints the largest logit difference over 40 paths: 0 (or float rounding) for the
peers and the standalone path, which compute the official cell; not 0 for ``distilnas-skip`` whenever a
path has a ReLU-Conv-BN edge fed by an all-zero node (it drops that edge's BatchNorm shift).

The peers' stems take 3 input channels by construction; for ``micro`` their first convolution is replaced
by a 1-channel one (the same shape as distilnas'). All supernets have the same parameter count (printed).

Memory (unless ``--no-memory``): peak bytes the step allocates through PyTorch's CPU allocator above what
it holds between steps (weights, momentum buffers), gradients included, from the allocation events of
``torch.profiler`` (``profile_memory=True``), mean and max over the first 5 paths of round 0, untimed. It
counts every tensor; memory that oneDNN or glibc allocate outside PyTorch's allocator is not seen, and
process RSS is not used (its high-water mark is per process, not per step).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import warnings
from importlib.metadata import version
from typing import Callable

from distilnas.spaces import NB201Arch, NB201Config, NB201Space  # first: distilnas sets OMP_WAIT_POLICY
from distilnas.spaces.nb201 import EDGES

import torch
import torch.nn.functional as F
from torch import nn

SIZES = {  # name -> (C, N, in_channels, input_size, num_classes, batch)
    "official": (16, 5, 3, 32, 10, 64),
    "micro": (8, 3, 1, 16, 10, 128),
}
BASE = "distilnas-official"
FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
NNI_OPS = {"nor_conv_1x1": "conv_1x1", "nor_conv_3x3": "conv_3x3"}  # NNI's names; the others are the same


def find_peers() -> tuple[dict[str, object], dict[str, str]]:
    """The importable peers' modules, and why the others are missing."""
    found, missing = {}, {}
    try:
        from xautodl.models.cell_operations import SearchSpaceNames
        from xautodl.models.cell_searchs import CellStructure, TinyNetworkRANDOM

        found["xautodl"] = (TinyNetworkRANDOM, CellStructure, SearchSpaceNames["nas-bench-201"])
    except Exception as e:  # noqa: BLE001 - any failure to import means: skip this peer
        missing["xautodl"] = f"{type(e).__name__}: {e}"
    try:
        with warnings.catch_warnings():  # NNI 3.0 warns that it does not know newer torch modules
            warnings.simplefilter("ignore")
            from nni.nas.hub.pytorch import NasBench201
            from nni.nas.oneshot.pytorch.strategy import RandomOneShot
            from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule
        found["nni"] = (NasBench201, RandomOneShot, BaseSuperNetModule)
    except Exception as e:  # noqa: BLE001
        missing["nni"] = f"{type(e).__name__}: {e}"
    return found, missing


class Variant:
    """One implementation. ``prepare(archs)`` (untimed) turns each architecture into this implementation's
    way of fixing the path; ``step(k)`` (timed) fixes path ``k`` and trains it for one step."""

    def __init__(self, name: str, net: nn.Module | None, fix: Callable) -> None:
        self.name, self.net, self.fix = name, net, fix
        self.opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9) if net is not None else None
        self.paths: list[tuple[Callable, torch.optim.Optimizer]] = []

    def prepare(self, archs: list[NB201Arch]) -> None:
        self.paths = [self.fix(a) for a in archs]

    def step(self, k: int, x: torch.Tensor, y: torch.Tensor) -> None:
        forward, opt = self.paths[k]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        opt.step()


def build_variants(size: str, peers: dict[str, object], fmt: str) -> list[Variant]:
    C, N, cin, res, classes, _ = SIZES[size]
    kw = dict(C=C, N=N, in_channels=cin, input_size=res, num_classes=classes)
    cl = FORMATS[fmt]
    variants: list[Variant] = []

    def distilnas(name: str, dead_edges: str) -> Variant:
        torch.manual_seed(0)
        net = NB201Space(NB201Config(**kw, dead_edges=dead_edges)).supernet().to(memory_format=cl)
        v = Variant(name, net, lambda a: (lambda x: net(x, a), v.opt))
        return v

    variants.append(distilnas(BASE, "official"))
    variants.append(distilnas("distilnas-skip", "skip"))
    official = variants[0].net

    def standalone(a: NB201Arch):
        net = official.extract(a).to(memory_format=cl)
        return net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    variants.append(Variant("distilnas-standalone", None, standalone))

    def stem_1ch(net: nn.Module) -> None:  # the peers' stems are hard-wired to 3 input channels
        if cin != 3:
            net.stem[0] = nn.Conv2d(cin, C, 3, padding=1, bias=False)

    if "xautodl" in peers:
        TinyNetworkRANDOM, CellStructure, ops = peers["xautodl"]
        torch.manual_seed(0)
        xnet = TinyNetworkRANDOM(C, N, 4, classes, ops, True, True)  # affine BN, tracked running stats
        stem_1ch(xnet)
        xnet = xnet.to(memory_format=cl)

        def x_forward(structure, x):
            xnet.arch_cache = structure  # what TinyNetworkRANDOM.random_genotype(True) sets
            return xnet(x)[1]  # (features, logits)

        def x_fix(a: NB201Arch):
            structure = CellStructure.str2structure(str(a))
            return (lambda x: x_forward(structure, x)), xv.opt

        xv = Variant("xautodl", xnet, x_fix)
        variants.append(xv)
    if "nni" in peers:
        NasBench201, RandomOneShot, BaseSuperNetModule = peers["nni"]
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nnet = NasBench201(C, N, classes)
            RandomOneShot().mutate_model(nnet)
        stem_1ch(nnet)
        nnet = nnet.to(memory_format=cl)
        layers = [m for m in nnet.modules() if isinstance(m, BaseSuperNetModule)]
        labels = set(nnet.simplify())

        def n_forward(sample, x):
            memo = dict(sample)
            for m in layers:  # BaseOneShotLightningModule.resample(), with the choices given
                memo.update(m.resample(memo=memo))
            return nnet(x)

        def n_fix(a: NB201Arch):
            sample = {f"cell/{i}_{j}": NNI_OPS.get(op, op) for (j, i), op in zip(EDGES, a.ops)}
            assert set(sample) == labels, (sorted(sample), sorted(labels))
            return (lambda x: n_forward(sample, x)), nv.opt

        nv = Variant("nni", nnet, n_fix)
        variants.append(nv)
    return variants


def peak_memory_mb(v: Variant, k: int, x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak MiB allocated by one step above the state held between steps (see the module docstring)."""
    from torch.profiler import ProfilerActivity, profile

    v.paths[k][1].zero_grad(set_to_none=True)  # the step's own gradients count, not the previous step's
    sys.stderr.flush()
    saved = os.dup(2)  # the profiler logs start/stop lines to stderr (C++): silence them
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                v.step(k, x, y)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak / 2**20


def check_same_function(size: str, peers: dict[str, object], fmt: str, archs: list[NB201Arch]) -> None:
    """With distilnas-official's weights (BatchNorm made non-trivial) copied into the others in parameter
    order, print the largest logit difference to distilnas-official over ``archs`` (train mode)."""
    variants = build_variants(size, peers, fmt)  # fresh models: the timed ones are left alone
    ref = variants[0].net
    with torch.no_grad():  # random BN shifts, so that the official cell's dead-edge constants matter
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
    state = list(ref.state_dict().values())
    _, _, cin, res, _, _ = SIZES[size]
    x = torch.randn(8, cin, res, res, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=FORMATS[fmt])
    worst = {}
    for v in variants[1:]:
        if v.net is not None:
            keys = list(v.net.state_dict())
            assert [t.shape for t in state] == [v.net.state_dict()[k].shape for k in keys], v.name
            v.net.load_state_dict(dict(zip(keys, state)))
        diffs = []
        with torch.no_grad():
            for a in archs:
                variants[0].prepare([a])
                v.prepare([a])
                diffs.append((v.paths[0][0](x) - variants[0].paths[0][0](x)).abs().max().item())
        worst[v.name] = max(diffs)
    print("same weights, max |logit difference| to " + BASE + f" over {len(archs)} paths: "
          + ", ".join(f"{k} {d:.2g}" for k, d in worst.items()))


def run_size(size: str, peers: dict[str, object], args: argparse.Namespace) -> None:
    C, N, cin, res, classes, batch = SIZES[size]
    variants = build_variants(size, peers, args.format)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, res, res, generator=g).contiguous(memory_format=FORMATS[args.format])
    y = torch.randint(0, classes, (batch,), generator=g)
    space = NB201Space(NB201Config(C=C, N=N, in_channels=cin, input_size=res, num_classes=classes))
    print(f"\n== {size}: NB201 C={C} N={N}, {cin}x{res}x{res}, {classes} classes, batch {batch}; "
          f"{args.rounds} rounds x {args.steps} paths, {args.format} ==")
    nparams = {v.name: sum(p.numel() for p in v.net.parameters()) for v in variants if v.net is not None}
    print("supernet parameters: " + ", ".join(f"{k} {n:,}" for k, n in nparams.items()))

    if args.check:
        rng = random.Random(0)
        check_same_function(size, peers, args.format, [space.sample(rng) for _ in range(40)])
    warm = [space.sample(random.Random(10_000 + i)) for i in range(3)]  # untimed warm-up paths
    for v in variants:
        v.prepare(warm)
        for k in range(len(warm)):
            v.step(k, x, y)

    mem: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(args.rounds):
        rng = random.Random(r)
        archs = [space.sample(rng) for _ in range(args.steps)]
        for v in variants:
            v.prepare(archs)
        if r == 0 and args.memory:
            for v in variants:
                mem[v.name] = [peak_memory_mb(v, k, x, y) for k in range(min(5, args.steps))]
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            t0 = time.perf_counter()
            for k in range(args.steps):
                v.step(k, x, y)
            times[v.name].append((time.perf_counter() - t0) / args.steps * 1000)
        for v in variants:
            v.paths = []  # drop the round's standalone networks

    base = times[BASE]
    head = f"{'implementation':22s} {'ms/step':>8s} {'(rounds min-max)':>17s} {'ratio to ' + BASE:>26s}"
    print(head + (f" {'peak MiB (mean/max)':>20s}" if mem else ""))
    for name, t in times.items():
        ratios = [a / b for a, b in zip(t, base)]
        line = (f"{name:22s} {statistics.median(t):8.1f} {f'({min(t):.1f}-{max(t):.1f})':>17s} "
                f"{f'{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})':>26s}")
        if mem:
            line += f" {f'{statistics.mean(mem[name]):.1f} / {max(mem[name]):.1f}':>20s}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("official", "micro", "both"), default="both")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10, help="paths (training steps) per implementation per round")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--format", choices=tuple(FORMATS), default="channels_last",
                    help="memory format of every model and the batch")
    ap.add_argument("--check", action="store_true",
                    help="first check that all implementations compute the same logits with the same weights")
    ap.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory probe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peers, missing = find_peers()
    versions = [f"{name} {version(name)}" for name in peers]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); peers: "
          f"{', '.join(versions) or 'none'}")
    for name, why in missing.items():
        print(f"skipped {name} (not importable: {why})")
    for size in (("official", "micro") if args.size == "both" else (args.size,)):
        run_size(size, peers, args)


if __name__ == "__main__":
    main()
