"""Exact constrained search over block potentials: a multiple-choice knapsack (DNA, Li et al., CVPR 2020).

DNA rates every candidate of every block on its own and then looks for the architecture (one candidate per
block) with the lowest summed score under a FLOPs and/or params budget. Scores and costs both add up over
blocks, so this is the multiple-choice knapsack problem::

    minimise   sum_i s_i(c_i)     subject to   F0 + sum_i f_i(c_i) <= max_flops,  P0 + sum_i p_i(c_i) <= max_params

The official code searches it with a pruned depth-first search (a heuristic, ~30 min on a CPU). Here it is
solved exactly by dynamic programming over Pareto sets with branch-and-bound pruning:

1. Dominance. A partial architecture (blocks 0..i) is a point (budgeted costs..., score). If another
   partial is no worse in every coordinate, the first can be dropped: any completion of it is matched by
   the same completion of the other. For the ``top`` best architectures a point is dropped only outside
   the first ``top`` Pareto layers (then a chain of ``top`` kept points beats it). Each block's
   candidates are pruned the same way first.
2. Bounds. A partial is dropped when no completion fits a budget, or when its score plus a lower bound
   on the rest exceeds an upper bound on the ``top``-th best score. The lower bound is the largest of the
   rest's unconstrained optimum, the exact optimum of each one-budget relaxation of the rest (suffix
   Pareto fronts) and Lagrangian bounds; the upper bound is the ``top``-th best of known feasible
   architectures (Lagrangian minimisers improved by single-block swaps). For ``top`` > 1 the best score
   ``opt`` is found first and the DP reruns with a guessed bound ``opt + step``, widening ``step`` until
   the ``top``-th result scores at most the guess (which proves nothing better was pruned).
3. The last block is not merged into a Pareto set: each kept partial is matched with every kept candidate
   of the last block (vectorised), and the ``top`` best feasible pairs are the answer.

No rule can drop a solution that belongs to the ``top`` best, so the result is exact for any integer or
real costs; only the running time depends on the data. A step over ``n`` kept partials and ``m`` kept
candidates costs O(n m) for the products and bounds plus a Pareto filter of the ``N <= n m`` survivors:
a sort and a running minimum for one budget, a chunked sweep against a staircase for two, O(N log N)
in practice, times ``top`` for the layers. The kept sets are at most the number of distinct total costs
(pseudo-polynomial for integer costs; the problem is NP-hard, so adversarial real costs can blow up),
and in practice stay in the hundreds to thousands (docs/dna_search.md has measured times).

Order of the results: by score, ties by the budgeted costs (FLOPs before params); remaining ties keep a
fixed but unspecified order. Totals are summed as ``fixed + block 0 + block 1 + ...`` (in this order, the
order a brute force uses), so budgets are compared exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .potentials import DEFAULT_SEP, Potentials

__all__ = [
    "Choice",
    "Solution",
    "InfeasibleError",
    "search",
    "pareto_front",
    "exhaustive_search",
]

_COSTS = ("flops", "params")
_CHUNK = 2_000_000  # elements per vectorised step of the final matching and of the exhaustive search


class InfeasibleError(ValueError):
    """No architecture meets the budgets; the message gives the smallest achievable cost."""


@dataclass(frozen=True)
class Choice:
    """The candidate picked for one block."""

    block: int
    index: int
    arch: str


@dataclass(frozen=True)
class Solution:
    """One architecture with its totals.

    Attributes:
        arch: the per-block arch strings joined by the separator (default ``"_"``).
        score: the summed block scores (lower is better).
        flops: total FLOPs, fixed part included.
        params: total parameters, fixed part included.
        choices: the candidate picked in every block.
    """

    arch: str
    score: float
    flops: int | float
    params: int | float
    choices: tuple[Choice, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "score": self.score, "flops": self.flops, "params": self.params,
                "choices": [{"block": c.block, "index": c.index, "arch": c.arch} for c in self.choices]}


# ---------------------------------------------------------------------------------------------------
# Pareto filters. A row r "beats" a row q when it is <= in every column and either differs from q or
# comes first in the input; this is a strict order, and a row with no beater is Pareto-minimal.
def _minimal(cols: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``cols`` (n, d), d in 1..3, that no other row beats (smaller is better)."""
    n, d = cols.shape
    order = np.lexsort(cols.T[::-1])  # by column 0, then 1, ...; stable, so ties keep input order
    c = cols[order]
    if d == 1:
        keep = np.zeros(n, dtype=bool)
        keep[:1] = True
    elif d == 2:
        keep = c[:, 1] < _shifted_cummin(c[:, 1])
    else:
        keep = _minimal_sorted_3d(c[:, 1], c[:, 2])
    mask = np.zeros(n, dtype=bool)
    mask[order[keep]] = True
    return mask


def _shifted_cummin(x: np.ndarray) -> np.ndarray:
    """``out[i] = min(x[:i])`` (inf for i = 0)."""
    out = np.empty_like(x)
    if x.size:
        out[0] = np.inf
        np.minimum.accumulate(x[:-1], out=out[1:])
    return out


def _minimal_sorted_3d(b: np.ndarray, c: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Rows not beaten, for rows already sorted by (a, b, c): an earlier row beats a later one iff it is
    <= in b and c. Sweeps in chunks against a staircase (the 2-D minimal (b, c) points kept so far, b
    ascending and c strictly descending): a row is beaten iff the last stair with b' <= b has c' <= c."""
    n = b.size
    keep = np.zeros(n, dtype=bool)
    sb, sc = np.empty(0), np.empty(0)
    for start in range(0, n, chunk):
        cb, cc = b[start:start + chunk], c[start:start + chunk]
        beaten = np.zeros(cb.size, dtype=bool)
        if sb.size:
            at = np.searchsorted(sb, cb, side="right") - 1
            beaten = (at >= 0) & (sc[np.maximum(at, 0)] <= cc)
        inside = (cb[:, None] <= cb[None, :]) & (cc[:, None] <= cc[None, :])  # (earlier j, later k)
        beaten |= np.triu(inside, 1).any(axis=0)
        new = ~beaten
        keep[start:start + cb.size] = new
        if new.any():
            ab, ac = np.concatenate([sb, cb[new]]), np.concatenate([sc, cc[new]])
            o = np.lexsort((ac, ab))
            ab, ac = ab[o], ac[o]
            stair = ac < _shifted_cummin(ac)
            sb, sc = ab[stair], ac[stair]
    return keep


def _layers(cols: np.ndarray, k: int) -> np.ndarray:
    """Mask of the rows in the first ``k`` Pareto layers. A row outside them is beaten by a chain of ``k``
    rows inside them, so the ``k`` best completions never need it."""
    if k >= cols.shape[0]:
        return np.ones(cols.shape[0], dtype=bool)
    keep = np.zeros(cols.shape[0], dtype=bool)
    rest = np.arange(cols.shape[0])
    for _ in range(k):
        if rest.size == 0:
            break
        m = _minimal(cols[rest])
        keep[rest[m]] = True
        rest = rest[~m]
    return keep


# ---------------------------------------------------------------------------------------------------
@dataclass
class _Problem:
    """The search in arrays: ``costs[i]`` (n_i, d) budgeted costs of block i, ``scores[i]`` (n_i,)."""

    costs: list[np.ndarray]
    scores: list[np.ndarray]
    fixed: np.ndarray  # (d,)
    budgets: np.ndarray  # (d,)

    @property
    def d(self) -> int:
        return self.fixed.size


def _tol(x: np.ndarray | float) -> np.ndarray | float:
    """Slack for pruning tests only (sums in another order may differ in the last bits)."""
    return 1e-9 * np.maximum(1.0, np.abs(x))


def _suffix_fronts(costs: list[np.ndarray], scores: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """For one cost: ``out[i]`` = Pareto front (cost ascending, score descending) of blocks i.. (exact
    optimum of the rest under any single budget); ``out[B]`` is the empty rest (cost 0, score 0)."""
    out = [(np.zeros(1), np.zeros(1))]
    for c, s in zip(reversed(costs), reversed(scores)):
        keep = _minimal(np.column_stack([c, s]))
        c, s = c[keep], s[keep]
        fc, fs = out[-1]
        pts = np.stack([(c[:, None] + fc[None, :]).ravel(), (s[:, None] + fs[None, :]).ravel()], 1)
        pts = pts[_minimal(pts)]
        pts = pts[np.argsort(pts[:, 0], kind="stable")]
        out.append((pts[:, 0], pts[:, 1]))
    return out[::-1]


class _Bounds:
    """Lower bounds on the score still to come, for branch and bound.

    For a partial solution over blocks 0..i-1 that has spent ``cost`` (fixed part included), the rest
    scores at least (a) the sum of the remaining blocks' best scores, (b) for each budget alone, the exact
    optimum of the remaining blocks under the budget left (from the suffix Pareto fronts; inf if nothing
    fits), and (c) for any multipliers lambda >= 0, the Lagrangian bound
    ``sum_{j >= i} min_c (s_j(c) + lambda . cost_j(c)) - lambda . (budget - cost)``.
    """

    def __init__(self, prob: _Problem) -> None:
        self.prob = prob
        nb, d = len(prob.scores), prob.d
        self.min_rest = np.append(np.cumsum([s.min() for s in prob.scores][::-1])[::-1], 0.0)
        self.min_cost = np.array([c.min(axis=0) for c in prob.costs]).reshape(nb, d)
        self.fronts = [_suffix_fronts([c[:, j] for c in prob.costs], prob.scores) for j in range(d)]
        # Lagrangian multipliers on a geometric grid scaled by (score spread) / (cost spread)
        span_s = sum(float(np.ptp(s)) for s in prob.scores) or 1.0
        grids = []
        for j in range(d):
            span_c = sum(float(np.ptp(c[:, j])) for c in prob.costs) or 1.0
            grids.append([0.0] + [span_s / span_c * 2.0 ** e for e in range(-4, 9)])
        combos = list(itertools.product(*grids))
        self.lam = np.array(combos, dtype=float).reshape(len(combos), d)  # (L, d)
        # a minimiser of score + lambda . cost is always among a block's Pareto-minimal candidates
        front = [np.flatnonzero(_minimal(np.column_stack([c, s]))) for c, s in zip(prob.costs, prob.scores)]
        lagr = [s[f, None] + c[f] @ self.lam.T for c, s, f in zip(prob.costs, prob.scores, front)]  # (n_i, L)
        self.argmins = np.array([f[v.argmin(axis=0)] for v, f in zip(lagr, front)])  # (B, L): minimisers
        self.g = np.array([v.min(axis=0) for v in lagr])  # (B, L)
        slack = self.lam @ (prob.fixed - prob.budgets)  # (L,)
        best = np.argsort(self.g.sum(axis=0) + slack)[::-1][:16]  # the multipliers with the best root bound
        self.lam, self.g, self.argmins = self.lam[best], self.g[:, best], self.argmins[:, best]
        self.g_rest = np.vstack([np.cumsum(self.g[::-1], axis=0)[::-1], np.zeros((1, best.size))])
        self.root = float(self.lower(0, prob.fixed[None, :])[0])

    def lower(self, i: int, cost: np.ndarray) -> np.ndarray:
        """Lower bound on the score of blocks i.. for partials of cost ``cost`` (n, d); inf if no
        completion fits a budget."""
        prob = self.prob
        lb = np.full(cost.shape[0], self.min_rest[i])
        if prob.d:
            lagr = (cost - prob.budgets) @ self.lam.T + self.g_rest[i]  # (n, L)
            lb = np.maximum(lb, lagr.max(axis=1))
        for j in range(prob.d):
            fc, fs = self.fronts[j][i]
            room = prob.budgets[j] - cost[:, j]
            at = np.searchsorted(fc, room + _tol(prob.budgets[j]), side="right") - 1
            lb = np.maximum(lb, np.where(at >= 0, fs[np.maximum(at, 0)], np.inf))
        return lb

    def candidates(self, i: int) -> np.ndarray:
        """Lower bound on the total score of any feasible architecture that uses each candidate of block i
        (inf if none fits): bounds (a) and (c) with block i fixed, plus a cost check of the other blocks."""
        prob = self.prob
        c, s = prob.costs[i], prob.scores[i]
        lb = s + (self.min_rest[0] - self.prob.scores[i].min())
        if prob.d:
            cost = c + prob.fixed + (self.min_cost.sum(axis=0) - self.min_cost[i])  # cheapest completion
            lagr = s[:, None] + (c + prob.fixed - prob.budgets) @ self.lam.T + (self.g_rest[0] - self.g[i])
            lb = np.maximum(lb, lagr.max(axis=1))
            lb[np.any(cost > prob.budgets + _tol(prob.budgets), axis=1)] = np.inf
        return lb


def _upper_bound(prob: _Problem, bounds: _Bounds, top: int) -> float:
    """The ``top``-th best score among some feasible architectures (inf if fewer are found): the best
    feasible minimiser of the Lagrangian relaxations, improved by single-block swaps (hill climbing), and
    its swap neighbours."""
    if prob.d == 0:
        return math.inf
    best: tuple[tuple[int, ...], float] | None = None
    for pick in {tuple(int(j) for j in row) for row in bounds.argmins.T}:
        cost, score = _total(prob, pick)
        if np.all(cost <= prob.budgets - _tol(prob.budgets)) and (best is None or score < best[1]):
            best = (pick, score)
    if best is None:
        return math.inf
    pick, score = best
    for _ in range(50):
        s, i, j = _swaps(prob, pick)
        if s.size == 0 or s.min() >= score:
            break
        k = int(np.argmin(s))
        pick, score = pick[:i[k]] + (int(j[k]),) + pick[i[k] + 1:], float(s[k])
    known = np.sort(np.append(_swaps(prob, pick)[0], score))
    if known.size < top:
        return math.inf
    return float(known[top - 1] + _tol(known[top - 1]))


def _total(prob: _Problem, pick: Sequence[int]) -> tuple[np.ndarray, float]:
    cost, score = prob.fixed.copy(), 0.0
    for c, s, j in zip(prob.costs, prob.scores, pick):
        cost, score = cost + c[j], score + float(s[j])
    return cost, score


def _swaps(prob: _Problem, pick: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, blocks and candidates of the architectures one swap away from ``pick`` that clearly fit."""
    cost, score = _total(prob, pick)
    out_s, out_i, out_j = [], [], []
    for i, (c, s) in enumerate(zip(prob.costs, prob.scores)):
        ok = np.all(cost - c[pick[i]] + c <= prob.budgets - _tol(prob.budgets), axis=1)
        ok[pick[i]] = False
        j = np.flatnonzero(ok)
        out_s.append(score - s[pick[i]] + s[j])
        out_i.append(np.full(j.size, i))
        out_j.append(j)
    return np.concatenate(out_s), np.concatenate(out_i), np.concatenate(out_j)


def _solve(prob: _Problem, top: int) -> list[tuple[int, ...]]:
    """Candidate indices (one per block) of the ``top`` best feasible architectures, best first.

    For ``top`` > 1 the best architecture is found first; then the DP runs with a guessed upper bound
    ``guess`` above its score (widened until the ``top``-th result scores at most ``guess``, which proves
    that no better one was pruned), or with the proven heuristic bound once the guess passes it.
    """
    bounds = _Bounds(prob)
    ub = _upper_bound(prob, bounds, top)
    if top == 1:
        return _dp(prob, bounds, 1, ub)
    first = _dp(prob, bounds, 1, _upper_bound(prob, bounds, 1))
    if not first:
        return []
    opt = _total(prob, first[0])[1]
    worst = sum(float(s.max()) for s in prob.scores)  # no architecture scores more
    step = max(opt - bounds.root, float(_tol(opt)))
    while opt + step < min(ub, worst):
        found = _dp(prob, bounds, top, opt + step)
        if len(found) == top and _total(prob, found[-1])[1] <= opt + step:
            return found
        step *= 4
    return _dp(prob, bounds, top, ub)


def _dp(prob: _Problem, bounds: _Bounds, top: int, ub: float) -> list[tuple[int, ...]]:
    """The ``top`` best feasible architectures among those that score at most ``ub`` (and possibly some
    above it), best first: Pareto DP over blocks 0..B-2, then matching with the last block."""
    d, nb = prob.d, len(prob.scores)
    cols = [np.column_stack([c, s]) for c, s in zip(prob.costs, prob.scores)]  # (n_i, d + 1)
    ub = ub + float(_tol(ub)) if math.isfinite(ub) else ub  # bounds and sums may differ in the last bits
    kept = []
    for i, c in enumerate(cols):
        ok = np.flatnonzero(bounds.candidates(i) <= ub)
        kept.append(ok[_layers(c[ok], top)])
    # partial solutions over blocks 0..i-1: totals (n, d + 1) and picked candidates (n, i)
    part = np.concatenate([prob.fixed, [0.0]])[None, :]
    picks = np.zeros((1, 0), dtype=np.int64)
    for i in range(nb - 1):
        cand = cols[i][kept[i]]
        m, rows = cand.shape[0], max(1, _CHUNK // max(1, cand.shape[0]))
        grown, where = [], []  # extensions by block i that pass the bounds, and their (row * m + candidate)
        for start in range(0, part.shape[0], rows):
            prod = (part[start:start + rows, None, :] + cand[None, :, :]).reshape(-1, d + 1)
            ok = np.flatnonzero(prod[:, d] + bounds.lower(i + 1, prod[:, :d]) <= ub)
            grown.append(prod[ok])
            where.append(ok + start * m)
        prod, idx = np.concatenate(grown), np.concatenate(where)
        keep = _layers(prod, top)
        part, idx = prod[keep], idx[keep]
        picks = np.column_stack([picks[idx // m], kept[i][idx % m]])
        if part.shape[0] == 0:
            return []
    return _match_last(prob, part, picks, cols[-1], kept[-1], top)


def _take_top(pool: np.ndarray, new: np.ndarray, d: int, top: int) -> np.ndarray:
    """The ``top`` first rows of ``pool`` (already in order) and ``new`` by (score, costs...) = columns
    0..d; ties keep ``pool`` first, then the order of ``new``."""
    if new.shape[0] > top:
        cut = np.partition(new[:, 0], top - 1)[top - 1]
        new = new[new[:, 0] <= cut]  # every row tied with the top-th score stays, for the cost tie-break
    both = np.concatenate([pool, new])
    return both[np.lexsort(both.T[: d + 1][::-1])][:top]


def _match_last(prob: _Problem, part: np.ndarray, picks: np.ndarray, last: np.ndarray, last_idx: np.ndarray,
                top: int) -> list[tuple[int, ...]]:
    """The ``top`` best feasible (partial, last-block candidate) pairs, ordered by (score, costs)."""
    d = prob.d
    cand = last[last_idx]
    m = cand.shape[0]
    pool = np.empty((0, d + 3))  # score, costs..., partial row, candidate row
    rows = max(1, _CHUNK // max(1, m))
    for start in range(0, part.shape[0], rows):
        tot = part[start:start + rows, None, :] + cand[None, :, :]  # (r, m, d + 1)
        feas = np.all(tot[..., :d] <= prob.budgets, axis=-1)
        a, b = np.nonzero(feas)
        pool = _take_top(pool, np.column_stack([tot[a, b, d], tot[a, b, :d], a + start, b]), d, top)
    return [tuple(picks[int(r[d + 1])].tolist()) + (int(last_idx[int(r[d + 2])]),) for r in pool]


# ---------------------------------------------------------------------------------------------------
def _arrays(pot: Potentials, dims: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    table, fixed = pot.table
    cols = [_COSTS.index(k) for k in dims]
    return [b[:, cols] for b in table], [b[:, 2] for b in table], fixed[cols]


def _solution(pot: Potentials, pick: Sequence[int], sep: str) -> Solution:
    cands = [pot.blocks[i][j] for i, j in enumerate(pick)]
    flops, params, score = pot.fixed_flops, pot.fixed_params, 0.0
    for c in cands:  # the same order of additions as the search and a brute force
        flops, params, score = flops + c.flops, params + c.params, score + c.score
    return Solution(sep.join(c.arch for c in cands), score, flops, params,
                    tuple(Choice(i, j, c.arch) for (i, j), c in zip(enumerate(pick), cands)))


def _budgets(max_flops: float | None, max_params: float | None) -> dict[str, float]:
    out = {}
    for name, b in zip(_COSTS, (max_flops, max_params)):
        if b is None:
            continue
        if not isinstance(b, (int, float)) or isinstance(b, bool) or math.isnan(b):
            raise ValueError(f"max_{name} must be a number, got {b!r}")
        out[name] = float(b)
    return out


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.6g}"


def _infeasible(pot: Potentials, budgets: dict[str, float]) -> InfeasibleError:
    """The error for budgets no architecture meets, with the smallest achievable cost."""
    table, fixed = pot.table
    smallest = {name: float(fixed[k] + sum(b[:, k].min() for b in table)) for k, name in enumerate(_COSTS)}
    for name, b in budgets.items():
        if smallest[name] > b:
            return InfeasibleError(f"no architecture fits max_{name}={_fmt(b)}: the smallest achievable {name} "
                                   f"is {_fmt(smallest[name])}")
    # each budget alone can be met, both together cannot: the fewest params within the FLOPs budget
    prob = _Problem([b[:, :1] for b in table], [b[:, 1] for b in table], fixed[:1], np.array([budgets["flops"]]))
    fewest = _solution(pot, _solve(prob, 1)[0], DEFAULT_SEP).params
    return InfeasibleError(f"no architecture fits both max_flops={_fmt(budgets['flops'])} and "
                           f"max_params={_fmt(budgets['params'])}: the fewest params within the FLOPs budget is "
                           f"{_fmt(fewest)} (smallest achievable alone: flops {_fmt(smallest['flops'])}, "
                           f"params {_fmt(smallest['params'])})")


def search(potentials: Potentials, max_flops: float | None = None, max_params: float | None = None,
           top: int = 1, *, sep: str = DEFAULT_SEP) -> list[Solution]:
    """The best architecture under the budgets, exactly, and the ``top`` best distinct ones in order.

    Args:
        potentials: per-block candidate scores and costs.
        max_flops: FLOPs budget for the total (fixed part included); None for no FLOPs limit.
        max_params: params budget for the total (fixed part included); None for no params limit.
        top: how many of the best distinct architectures to return (fewer if fewer fit).
        sep: joins the block arch strings into :attr:`Solution.arch`.

    Returns:
        Up to ``top`` solutions ordered by score, ties by FLOPs then params (when budgeted).

    Raises:
        InfeasibleError: no architecture meets the budgets (the message gives the smallest cost).
        ValueError: ``top`` < 1 or a budget that is not a number.
    """
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    budgets = _budgets(max_flops, max_params)
    costs, scores, fixed = _arrays(potentials, list(budgets))
    picks = _solve(_Problem(costs, scores, fixed, np.array(list(budgets.values()))), top)
    if not picks:
        raise _infeasible(potentials, budgets)
    return [_solution(potentials, p, sep) for p in picks]


def pareto_front(potentials: Potentials, cost: str = "flops", *, sep: str = DEFAULT_SEP) -> list[Solution]:
    """The exact Pareto front of (total cost, total score) over all architectures, sorted by cost.

    Every returned architecture is the best-scoring one for budgets from its cost up to the next point's;
    points with equal cost and score appear once.

    Args:
        potentials: per-block candidate scores and costs.
        cost: ``"flops"`` or ``"params"``.
        sep: joins the block arch strings.
    """
    if cost not in _COSTS:
        raise ValueError(f"cost must be one of {', '.join(_COSTS)}, got {cost!r}")
    costs, scores, fixed = _arrays(potentials, [cost])
    part = np.array([[fixed[0], 0.0]])
    picks = np.zeros((1, 0), dtype=np.int64)
    for c, s in zip(costs, scores):
        cand = np.column_stack([c, s])
        keep = np.flatnonzero(_minimal(cand))
        n, m = part.shape[0], keep.size
        prod = (part[:, None, :] + cand[keep][None, :, :]).reshape(n * m, 2)
        idx = np.flatnonzero(_minimal(prod))
        part = prod[idx]
        picks = np.column_stack([picks[idx // m], keep[idx % m]])
    order = np.lexsort((part[:, 1], part[:, 0]))
    return [_solution(potentials, picks[r].tolist(), sep) for r in order]


def exhaustive_search(potentials: Potentials, max_flops: float | None = None, max_params: float | None = None,
                      top: int = 1, *, sep: str = DEFAULT_SEP, limit: int = 50_000_000) -> list[Solution]:
    """Reference brute force: score every architecture (vectorised with numpy), same order and ties as
    :func:`search`. For tests and benchmarks; refuses spaces larger than ``limit``.

    Raises:
        ValueError: the space has more than ``limit`` architectures.
        InfeasibleError: no architecture meets the budgets.
    """
    if potentials.num_archs > limit:
        raise ValueError(f"{potentials.num_archs:,} architectures exceed the exhaustive limit {limit:,}")
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    budgets = _budgets(max_flops, max_params)
    costs, scores, fixed = _arrays(potentials, list(budgets))
    d, b = len(budgets), np.array(list(budgets.values()))
    # totals over blocks 0..nb-2 as a flat table, then the last block in chunks of that table
    head = np.concatenate([fixed, [0.0]])[None, :]
    for c, s in zip(costs[:-1], scores[:-1]):
        head = (head[:, None, :] + np.column_stack([c, s])[None, :, :]).reshape(-1, d + 1)
    last = np.column_stack([costs[-1], scores[-1]])
    pool = np.empty((0, d + 2))  # score, costs..., flat index
    rows = max(1, _CHUNK // last.shape[0])
    for start in range(0, head.shape[0], rows):
        tot = (head[start:start + rows, None, :] + last[None, :, :]).reshape(-1, d + 1)
        flat = np.flatnonzero(np.all(tot[:, :d] <= b, axis=1))
        new = np.column_stack([tot[flat, d], tot[flat, :d], flat + start * last.shape[0]])
        pool = _take_top(pool, new, d, top)
    if pool.shape[0] == 0:
        raise _infeasible(potentials, budgets)
    sizes = [len(blk) for blk in potentials.blocks]
    return [_solution(potentials, [int(x) for x in np.unravel_index(int(r[-1]), sizes)], sep) for r in pool]
