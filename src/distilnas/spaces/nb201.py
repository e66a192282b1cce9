"""NAS-Bench-201 search space (Dong & Yang, "NAS-Bench-201", ICLR 2020).

Cell: 4 nodes, node j = sum_{i<j} op_{j,i}(node i); 6 edges, each one of
``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3`` (5^6 = 15,625 cells).
Macro skeleton: 3x3 conv stem (C) -> N cells -> residual reduction (2C) -> N cells -> residual reduction
(4C) -> N cells -> BN-ReLU -> global average pool -> FC. Every cell shares the one genotype.
Official defaults: C=16, N=5, 3x32x32 input, 10 classes.

Architecture strings are the official ones::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

The supernet keeps every candidate op on every edge (weight sharing across paths) and runs one path per
forward; :meth:`NB201Network.extract` returns a standalone network holding only that path's weights.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

from ..arch import ArchError
from ..config import ConfigError, opt
from ..ops.nb201 import OPS, ResNetBasicBlock, make_op
from .base import SPACES, SearchSpace, seeded

__all__ = ["NB201Arch", "NB201Config", "NB201Space", "NB201Network", "EDGES", "ALL_OPS", "PARAMETRIC"]

EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""Edges (to, from) in the order of the official string."""
ALL_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PARAMETRIC = frozenset({"nor_conv_1x1", "nor_conv_3x3"})


@dataclass(frozen=True)
class NB201Arch:
    """One NB201 cell: the op on each of the 6 edges, in :data:`EDGES` order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise ArchError(f"an NB201 cell has {len(EDGES)} edges, got {len(self.ops)} ops")
        for op in self.ops:
            if op not in OPS:
                raise ArchError(f"unknown NB201 op {op!r}; expected one of {', '.join(ALL_OPS)}")

    def __str__(self) -> str:
        groups, k = [], 0
        for j in (1, 2, 3):
            groups.append("|" + "|".join(f"{self.ops[k + i]}~{i}" for i in range(j)) + "|")
            k += j
        return "+".join(groups)

    @classmethod
    def parse(cls, text: str) -> "NB201Arch":
        """Parse the official string form; raises :class:`ArchError` naming the problem."""
        s = text.strip()
        hint = "expected e.g. |nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
        groups = s.split("+")
        if len(groups) != 3:
            raise ArchError(f"malformed NB201 arch {text!r}: needs 3 '+'-separated node groups; {hint}")
        ops: list[str] = []
        for j, g in enumerate(groups, start=1):
            if not (g.startswith("|") and g.endswith("|")) or len(g) < 2:
                raise ArchError(f"malformed NB201 arch {text!r}: group {g!r} must be enclosed in '|'; {hint}")
            items = g[1:-1].split("|")
            if len(items) != j:
                raise ArchError(f"malformed NB201 arch {text!r}: node {j} needs {j} inputs, got {len(items)}; {hint}")
            for i, item in enumerate(items):
                op, sep, src = item.rpartition("~")
                if not sep or src != str(i):
                    raise ArchError(f"malformed NB201 arch {text!r}: {item!r} should be 'op~{i}'; {hint}")
                ops.append(op)
        return cls(tuple(ops))

    # -- structure ----------------------------------------------------------------------------------
    def live_edges(self) -> list[int]:
        """Indices of edges that carry signal from the input to the output (none-edges and dead ends cut)."""
        fwd = {0}
        for k, (j, i) in enumerate(EDGES):
            if self.ops[k] != "none" and i in fwd:
                fwd.add(j)
        bwd = {3}
        for k in reversed(range(len(EDGES))):
            j, i = EDGES[k]
            if self.ops[k] != "none" and j in bwd:
                bwd.add(i)
        return [k for k, (j, i) in enumerate(EDGES) if self.ops[k] != "none" and i in fwd and j in bwd]

    def official_edges(self) -> list[int]:
        """The edges the official cell runs that can change its output: every non-``none`` edge into a node
        that reaches the output, whether or not its input carries signal (a ReLU-Conv-BN edge fed by an
        all-zero node still adds its BatchNorm's shift). Edges into dead ends are left out: they change
        neither the output nor any gradient."""
        bwd = {3}
        for k in reversed(range(len(EDGES))):
            j, i = EDGES[k]
            if self.ops[k] != "none" and j in bwd:
                bwd.add(i)
        return [k for k, (j, i) in enumerate(EDGES) if self.ops[k] != "none" and j in bwd]

    def is_connected(self) -> bool:
        """True when some path of non-``none`` edges joins the cell input to its output."""
        return bool(self.live_edges())

    def isomorphism_key(self, strict: bool = False) -> str:
        """A string equal for isomorphic cells.

        Default (``strict=False``) is the NB201 rule behind the published count of 6,466 unique cells:
        node j is the sorted '+'-join of its terms, ``skip_connect`` passes its input's expression,
        other ops wrap it, and ``none`` (or a single-input node that is zero) gives the zero term ``#``.
        A sum of zero terms is *not* recognised as zero by that rule. ``strict=True`` drops zero terms,
        treats an empty sum as zero and flattens sums, so every pair of functionally identical cells
        shares a key (4,930 classes).
        """
        nodes: dict[int, tuple[str, ...] | str] = {0: ("x",) if strict else "0"}
        for j in (1, 2, 3):
            terms: list[str] = []
            for k, (jj, i) in enumerate(EDGES):
                if jj != j:
                    continue
                op, src = self.ops[k], nodes[i]
                if strict:
                    assert isinstance(src, tuple)
                    if op == "none" or not src:
                        continue
                    if op == "skip_connect":
                        terms.extend(src)
                    else:
                        terms.append(f"({'+'.join(src)})@{op}")
                else:
                    assert isinstance(src, str)
                    if op == "none" or src == "#":
                        terms.append("#")
                    elif op == "skip_connect":
                        terms.append(src)
                    else:
                        terms.append(f"({src})@{op}")
            nodes[j] = tuple(sorted(terms)) if strict else "+".join(sorted(terms))
        out = nodes[3]
        return "+".join(out) if isinstance(out, tuple) else out


@dataclass
class NB201Config:
    """Shape of the NB201 network. Defaults are the official ones."""

    C: int = opt(16, ge=1)  # channels of the first stage (doubled at each reduction)
    N: int = opt(5, ge=1)  # cells per stage
    in_channels: int = opt(3, ge=1)
    input_size: int = opt(32, ge=1)
    num_classes: int = opt(10, ge=1)
    ops: list[str] = opt(default_factory=lambda: list(ALL_OPS), choices=ALL_OPS)  # candidate ops on every edge
    affine: bool = True  # BatchNorm affine parameters in the cells (RD-NAS uses False in the supernet)
    # skip: edges fed by an all-zero node are not run (they carry no signal); official: they add their
    # BatchNorm's constant as in the official cell (computed in closed form) and count in the FLOPs;
    # full: every edge runs as in the official cell, zeros and dead ends included (for proxies; slower)
    dead_edges: str = opt("skip", choices=("skip", "official", "full"))
    # FLOPs of avg_pool_3x3: true counts its window sums (a depthwise 3x3 box filter); false counts nothing,
    # as NB201's own counter (xautodl's compute_average_flops_cost: convolutions and linear layers only)
    pool_flops: bool = True

    def __post_init__(self) -> None:
        if not self.ops or len(set(self.ops)) != len(self.ops):
            raise ConfigError(f"space.ops={self.ops}: list one or more distinct ops of {', '.join(ALL_OPS)}")

    @property
    def official_size(self) -> bool:
        """True for the network of NB201's tables: C=16, N=5, 3 input channels, any input size and number of
        classes (CIFAR-10/100 at 32 px, ImageNet16-120 at 16 px)."""
        return (self.C, self.N, self.in_channels) == (16, 5, 3)


class NB201Network(nn.Module):
    """The NB201 skeleton whose edges hold one or more candidate ops.

    With one op per edge it is a standalone network; with several it is the weight-sharing supernet,
    and ``forward(x, arch)`` runs the single path ``arch``.
    """

    def __init__(self, cfg: NB201Config, edge_ops: Sequence[Sequence[str]]) -> None:
        super().__init__()
        self.cfg = cfg
        self.edge_ops = [tuple(ops) for ops in edge_ops]
        C, N = cfg.C, cfg.N
        self.stem = nn.Sequential(nn.Conv2d(cfg.in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(c // 2, c))
            layers.extend(_Cell(c, self.edge_ops, cfg.affine, cfg.dead_edges == "official") for _ in range(N))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(4 * C, cfg.num_classes)

    @property
    def is_supernet(self) -> bool:
        return any(len(ops) > 1 for ops in self.edge_ops)

    def forward(self, x: torch.Tensor, arch: NB201Arch | None = None) -> torch.Tensor:
        if arch is None:
            if self.is_supernet:
                raise ValueError("a supernet forward needs the path: model(x, arch)")
            arch = NB201Arch(tuple(ops[0] for ops in self.edge_ops))
        if self.cfg.dead_edges == "full":  # every edge, `none` included, as the official cell runs them
            live = list(range(len(EDGES)))
        else:
            live = arch.official_edges() if self.cfg.dead_edges == "official" else arch.live_edges()
        x = self.stem(x)  # (B, C, H, W)
        for layer in self.cells:
            x = layer(x, arch.ops, live) if isinstance(layer, _Cell) else layer(x)
        x = self.lastact(x)
        x = x.mean(dim=(2, 3))  # (B, 4C)
        return self.classifier(x)

    def extract(self, arch: NB201Arch) -> "NB201Network":
        """A standalone network for ``arch`` that carries this supernet's trained weights."""
        for k, op in enumerate(arch.ops):
            if op not in self.edge_ops[k]:
                raise ArchError(f"op {op!r} on edge {k} is not in this supernet's choices {self.edge_ops[k]}")
        with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten: leave the RNG alone
            net = NB201Network(self.cfg, [[op] for op in arch.ops])
        own = self.state_dict()
        net.load_state_dict({k: own[k] for k in net.state_dict()})
        return net.to(next(self.parameters()).device)


def zero_input_bn(bn: nn.BatchNorm2d, like: torch.Tensor) -> torch.Tensor:
    """What ``bn`` outputs for an all-zero input shaped like ``like``, without running anything before it.

    ReLU and a bias-free convolution map zeros to zeros, so a ReLU-Conv-BN edge fed by an all-zero node
    outputs BatchNorm's response to zeros, a per-channel constant: in training mode the batch statistics
    are mean 0 and variance 0, so the output is the shift beta (0 without affine parameters) and the
    running statistics move towards 0 (mean 0, unbiased variance 0) as BatchNorm would move them; in
    eval mode it is ``(0 - running_mean) / sqrt(running_var + eps) * gamma + beta``.
    """
    C = bn.num_features
    batch_stats = bn.training or not bn.track_running_stats
    if bn.training and bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1.0 - factor)  # + factor * 0
            bn.running_var.mul_(1.0 - factor)
    if batch_stats:
        y = bn.bias if bn.affine else like.new_zeros(C)
    else:
        y = -bn.running_mean / torch.sqrt(bn.running_var + bn.eps)
        if bn.affine:
            y = y * bn.weight + bn.bias
    return y.to(like.dtype).view(1, C, 1, 1).expand_as(like)  # (B, C, H, W), constant per channel


class _Cell(nn.Module):
    def __init__(self, c: int, edge_ops: Sequence[Sequence[str]], affine: bool, official: bool = False) -> None:
        super().__init__()
        self.official = official
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: make_op(op, c, affine) for op in ops}) for ops in edge_ops
        )

    def forward(self, x: torch.Tensor, ops: tuple[str, ...], live: list[int]) -> torch.Tensor:
        """Node j = sum of op(node i) over the edges ``live``. With every edge live (``dead_edges: full``)
        every node is a tensor (``none`` gives zeros) and every op runs on it: the official cell."""
        nodes: list[torch.Tensor | None] = [x, None, None, None]  # None: an all-zero node
        reads_x = [True, False, False, False]  # whether a node depends on the cell's input
        for k in live:  # live edges come in topological order (EDGES is sorted by target node)
            j, i = EDGES[k]
            src, op = nodes[i], self.edges[k][ops[k]]
            if src is not None:
                y = op(src)
                reads_x[j] = reads_x[j] or reads_x[i]
            elif self.official and ops[k] in PARAMETRIC:  # ReLU-Conv-BN of zeros: BatchNorm's constant
                last = op[2]  # a BatchNorm unless a proxy replaced it (synflow: an identity)
                y = zero_input_bn(last, x) if isinstance(last, nn.BatchNorm2d) else last(torch.zeros_like(x))
            else:  # skip / pool of zeros: zeros
                continue
            nodes[j] = y if nodes[j] is None else nodes[j] + y
        out = nodes[3]
        if out is None:
            return x.mul(0.0)  # a disconnected cell outputs zeros
        # (no autograd, as in scoring: no gradient to route)
        return self._zero_gradients(out, x, ops, reads_x[3]) if self.official and torch.is_grad_enabled() else out

    def _zero_gradients(self, out: torch.Tensor, x: torch.Tensor, ops: tuple[str, ...], reads_x: bool) -> torch.Tensor:
        """``out`` plus an exact zero that reaches every weight the official cell's backward reaches: it runs
        every edge (``none`` as ``x * 0``), so the weights of convolutions on zeros, of dead ends, and of
        everything before a constant cell get zero gradients rather than none, and an optimiser still
        applies momentum and weight decay to them (``train.zero_grad: zeros``)."""
        touched = [p.sum() for k, code in enumerate(ops) if code in PARAMETRIC
                   for p in self.edges[k][code].parameters() if p.requires_grad]
        if not reads_x:  # a constant: the official cell's none edges still pass zeros back to its input
            touched.append(x.sum())
        return out + torch.stack(touched).sum().to(out.dtype) * 0.0 if touched else out


@SPACES.register("nb201")
class NB201Space(SearchSpace[NB201Arch]):
    """The NB201 cell space: 6 labelled choices ``edge_{j}_{i}`` over the configured op set."""

    name = "nb201"
    Config = NB201Config

    def __init__(self, cfg: NB201Config | None = None) -> None:
        self.cfg = cfg or NB201Config()
        unknown = [op for op in self.cfg.ops if op not in OPS]
        if unknown or not self.cfg.ops:
            raise ArchError(f"unknown NB201 ops {unknown}; choose from {', '.join(ALL_OPS)}")
        self.ops = tuple(self.cfg.ops)

    @property
    def choices(self) -> dict[str, tuple[str, ...]]:
        return {f"edge_{j}_{i}": self.ops for (j, i) in EDGES}

    def parse(self, text: str) -> NB201Arch:
        arch = NB201Arch.parse(text)
        self.check(arch)
        return arch

    def check(self, arch: NB201Arch) -> None:
        bad = [op for op in arch.ops if op not in self.ops]
        if bad:
            raise ArchError(f"arch {arch} uses {sorted(set(bad))}, which this space excludes (ops={list(self.ops)})")

    def to_choices(self, arch: NB201Arch) -> dict[str, str]:
        return dict(zip(self.choices, arch.ops))

    def from_choices(self, sample: dict[str, str]) -> NB201Arch:
        return NB201Arch(tuple(sample[label] for label in self.choices))

    def sample(self, rng: random.Random) -> NB201Arch:
        return NB201Arch(tuple(rng.choice(self.ops) for _ in EDGES))

    def mutate(self, arch: NB201Arch, rng: random.Random) -> NB201Arch:
        k = rng.randrange(len(EDGES))
        ops = list(arch.ops)
        ops[k] = rng.choice([op for op in self.ops if op != ops[k]])
        return NB201Arch(tuple(ops))

    def distance(self, a: NB201Arch, b: NB201Arch) -> float:
        """Hamming distance: the number of edges whose ops differ."""
        return float(sum(x != y for x, y in zip(a.ops, b.ops)))

    def enumerate(self) -> Iterator[NB201Arch]:
        for ops in itertools.product(self.ops, repeat=len(EDGES)):
            yield NB201Arch(ops)

    def size(self) -> int:
        return len(self.ops) ** len(EDGES)

    def supernet(self) -> NB201Network:
        return NB201Network(self.cfg, [self.ops] * len(EDGES))

    def build(self, arch: NB201Arch, seed: int | None = None) -> NB201Network:
        self.check(arch)
        with seeded(seed):
            return NB201Network(self.cfg, [[op] for op in arch.ops])

    def input_shape(self) -> tuple[int, int, int]:
        return (self.cfg.in_channels, self.cfg.input_size, self.cfg.input_size)

    def cost(self, arch: NB201Arch) -> dict[str, float]:
        """Parameters and FLOPs of the standalone network, from an exact per-op table.

        FLOPs = skeleton + sum over the cells of each stage of the FLOPs of the live edges' ops (dead
        edges are never run); with ``dead_edges: official`` or ``full`` of every non-``none`` edge, as the
        official network runs (and counts) them all. Params = skeleton + the params of every non-``none``
        op (a standalone network holds them even on dead edges). Equal to counting the built network (tested);
        with ``pool_flops: false`` an ``avg_pool_3x3`` edge counts no FLOPs, as in NB201's own tables.
        """
        skel_params, skel_flops, per_stage = self._cost_table()
        official = self.cfg.dead_edges in ("official", "full")
        live = set(range(len(EDGES))) if official else set(arch.live_edges())
        flops, params = skel_flops, skel_params
        for shape_table in per_stage:
            for k, op in enumerate(arch.ops):
                p, f = shape_table[op]
                if op == "avg_pool_3x3" and not self.cfg.pool_flops:
                    f = 0
                params += self.cfg.N * p
                if k in live:
                    flops += self.cfg.N * f
        return {"params": params, "flops": flops}

    def _cost_table(self) -> tuple[int, int, list[dict[str, tuple[int, int]]]]:
        """(skeleton params, skeleton FLOPs, [per stage: {op: (params, FLOPs) of one op}])."""
        if getattr(self, "_costs", None) is None:
            from .base import count_flops, count_params

            skeleton = NB201Network(self.cfg, [["none"]] * len(EDGES))  # cells without ops: the fixed part
            shapes: list[tuple[int, ...]] = []
            hooks = [cell.register_forward_hook(lambda m, inp, out: shapes.append(tuple(inp[0].shape[1:])))
                     for cell in skeleton.cells if isinstance(cell, _Cell)]
            fixed_flops = count_flops(skeleton, self.input_shape())
            for h in hooks:
                h.remove()
            per_stage = []
            for shape in shapes[:: self.cfg.N]:  # the first cell of each stage
                table = {}
                for op in self.ops:
                    m = make_op(op, shape[0], self.cfg.affine)
                    table[op] = (count_params(m), count_flops(m, shape))
                per_stage.append(table)
            self._costs = (count_params(skeleton), fixed_flops, per_stage)
        return self._costs
