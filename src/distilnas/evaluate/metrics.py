"""Ranking metrics: how well a supernet's (or any proxy's) predicted scores rank architectures.

A weight-sharing supernet, a zero-cost proxy or a short-training estimate assigns every architecture a
score; the ground truth is the accuracy each one reaches when trained standalone. What matters for
architecture search is not the scores themselves but whether they *order* the architectures the same
way the ground truth does, above all among the best ones. This module measures that agreement:

* global rank correlations (Kendall tau-b, Spearman) and the linear Pearson correlation,
* top-k measures that look only at the architectures that are best by ground truth,
* the concordant pair ratio (fraction of correctly ordered pairs),
* percentile-bootstrap confidence intervals over architectures,
* a noise ceiling: how well one ground-truth seed ranks against another, i.e. the best agreement any
  predictor can hope to reach given the seed-to-seed noise of the ground truth itself.

Higher is better for both predicted and true scores throughout.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "rank_metrics",
    "align",
    "noise_ceiling",
    "summarize_seeds",
    "seed_arch_bootstrap",
    "difference_power",
    "detectable_difference",
    "verdict",
    "format_table",
    "DEFAULT_TABLE_KEYS",
]

#: Columns :func:`format_table` shows when none are given.
DEFAULT_TABLE_KEYS: tuple[str, ...] = (
    "n",
    "kendall_tau",
    "spearman",
    "pearson",
    "top10_tau",
    "top20_tau",
    "precision@10",
    "cpr",
)

# Bound on the number of elements of one (resamples x n x n) block in the vectorised bootstrap.
_BOOTSTRAP_BLOCK_ELEMS = 4_000_000
# Bound on the number of elements of one (rows x n) block when counting concordant pairs.
_PAIR_BLOCK_ELEMS = 4_000_000


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _as_vector(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """Converts ``values`` to a 1-D float array.

    Args:
        values: The scores.
        name: Name used in error messages.

    Returns:
        A 1-D ``float64`` array.

    Raises:
        ValueError: If ``values`` is not one-dimensional.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_pair(pred: Sequence[float], truth: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validates and converts a (pred, truth) pair of score vectors.

    Raises:
        ValueError: If the lengths differ or fewer than two architectures are given.
    """
    p = _as_vector(pred, "pred")
    t = _as_vector(truth, "truth")
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"pred and truth must have equal length, got {p.shape[0]} and {t.shape[0]}")
    if p.shape[0] < 2:
        raise ValueError(f"need at least 2 architectures to rank, got {p.shape[0]}")
    return p, t


def _check_ks(ks: Sequence[int]) -> list[int]:
    """Validates the top-k sizes."""
    out = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise ValueError(f"top-k sizes must be positive integers, got {k!r}")
        out.append(int(k))
    return out


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-b; NaN (without warnings) for constant or otherwise degenerate input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.kendalltau(x, y, variant="b")
    return float(res.statistic)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; NaN (without warnings) for constant input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.spearmanr(x, y)
    return float(res.statistic)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN (without warnings) for constant input."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.pearsonr(x, y)
    return float(res.statistic)


def _top_by(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values (ties broken by position, earlier first)."""
    return np.argsort(-values, kind="stable")[:k]


def _top_k_tau(pred: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Kendall tau-b among the ``k`` architectures that are best by ground truth."""
    if k < 2 or truth.shape[0] < k:
        return math.nan
    idx = _top_by(truth, k)
    return _kendall(pred[idx], truth[idx])


def _precision_at_k(pred: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of the true top-k that is also in the predicted top-k."""
    if truth.shape[0] < k:
        return math.nan
    common = np.intersect1d(_top_by(pred, k), _top_by(truth, k), assume_unique=True)
    return common.shape[0] / k


def _concordant_pair_ratio(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of pairs i < j with different truth that pred orders the same way (ties count half)."""
    n = truth.shape[0]
    score = 0.0
    pairs = 0
    rows = max(1, _PAIR_BLOCK_ELEMS // max(n, 1))
    for start in range(0, n - 1, rows):
        stop = min(start + rows, n - 1)
        i = np.arange(start, stop)[:, None]
        j = np.arange(n)[None, :]
        upper = j > i  # only pairs i < j: each unordered pair once, never an item with itself
        st = np.sign(truth[start:stop, None] - truth[None, :])
        sp = np.sign(pred[start:stop, None] - pred[None, :])
        valid = upper & (st != 0)
        agree = (st * sp)[valid]  # +1 same order, -1 opposite, 0 tied in pred
        pairs += agree.shape[0]
        score += float(np.count_nonzero(agree > 0)) + 0.5 * float(np.count_nonzero(agree == 0))
    return score / pairs if pairs else math.nan


def _too_many_pairs(n: int) -> bool:
    """Whether the pair signs of one row of ``n`` items exceed the bootstrap's block of elements."""
    return n * (n - 1) // 2 > _BOOTSTRAP_BLOCK_ELEMS


def _batched_kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of every row pair of two ``(B, n)`` arrays (NaN where a row is constant)."""
    n = x.shape[1]
    if _too_many_pairs(n):  # the pair signs would not fit: scipy's O(n log n) per row
        return np.array([_kendall(a, b) for a, b in zip(x, y)], dtype=np.float64)
    iu, ju = np.triu_indices(n, k=1)
    sx = np.sign(x[:, iu] - x[:, ju])
    sy = np.sign(y[:, iu] - y[:, ju])
    num = np.einsum("bp,bp->b", sx, sy)
    # Pairs untied in x (resp. y) are exactly (n0 - n1) (resp. (n0 - n2)) of the tau-b denominator.
    den = np.sqrt(np.einsum("bp,bp->b", sx, sx) * np.einsum("bp,bp->b", sy, sy))
    out = np.full(x.shape[0], math.nan)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def _batched_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation of every row pair of two ``(B, n)`` arrays (NaN where a row is constant)."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    num = np.einsum("bi,bi->b", rx, ry)
    den = np.sqrt(np.einsum("bi,bi->b", rx, rx) * np.einsum("bi,bi->b", ry, ry))
    out = np.full(x.shape[0], math.nan)
    ok = den > 1e-12
    out[ok] = np.clip(num[ok] / den[ok], -1.0, 1.0)
    return out


def _percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite entries of ``samples`` (NaN, NaN when there are none)."""
    finite = samples[np.isfinite(samples)]
    if finite.shape[0] == 0:
        return math.nan, math.nan
    alpha = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(finite, [alpha, 100.0 - alpha])
    return float(lo), float(hi)


def _bootstrap(
    pred: np.ndarray, truth: np.ndarray, resamples: int, seed: int
) -> dict[str, float]:
    """Percentile-bootstrap 95% intervals of Kendall tau-b and Spearman, resampling architectures."""
    n = truth.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    pairs = n * (n - 1) // 2
    block = max(1, _BOOTSTRAP_BLOCK_ELEMS // max(pairs, 1))
    taus = np.empty(resamples)
    rhos = np.empty(resamples)
    for start in range(0, resamples, block):
        sl = slice(start, min(start + block, resamples))
        xs, ys = pred[idx[sl]], truth[idx[sl]]
        taus[sl] = _batched_kendall_tau_b(xs, ys)
        rhos[sl] = _batched_spearman(xs, ys)
    tau_lo, tau_hi = _percentile_interval(taus)
    rho_lo, rho_hi = _percentile_interval(rhos)
    return {
        "kendall_tau_lo": tau_lo,
        "kendall_tau_hi": tau_hi,
        "spearman_lo": rho_lo,
        "spearman_hi": rho_hi,
    }


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------


def rank_metrics(
    pred: Sequence[float] | np.ndarray,
    truth: Sequence[float] | np.ndarray,
    ks: Sequence[int] = (10, 20),
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Measures how well predicted scores rank architectures against their ground truth.

    Args:
        pred: Predicted score of each architecture (higher = better).
        truth: Ground-truth score of each architecture, in the same order (higher = better).
        ks: Sizes of the top-k sets for ``top{k}_tau`` and ``precision@{k}``.
        bootstrap: Number of bootstrap resamples of the architectures for the 95% intervals of
            Kendall tau and Spearman; 0 skips the bootstrap (the ``*_lo``/``*_hi`` keys are then absent).
        seed: Seed of the bootstrap's random generator.

    Returns:
        A dict with:

        * ``n``: number of architectures;
        * ``kendall_tau``: Kendall tau-b; ``spearman``; ``pearson``;
        * ``top{k}_tau``: Kendall tau-b among the k architectures that are best by ground truth
          (NaN if ``n < k`` or ``k < 2``);
        * ``precision@{k}``: share of the true top-k found in the predicted top-k (NaN if ``n < k``);
        * ``cpr``: concordant pair ratio, the fraction of pairs with different ground truth that the
          prediction orders the same way, a tie in the prediction counting half (NaN if all truths tie);
        * ``kendall_tau_lo``, ``kendall_tau_hi``, ``spearman_lo``, ``spearman_hi``: percentile-bootstrap
          95% intervals (only when ``bootstrap > 0``; resamples with a constant vector are dropped).

        Correlations of constant input are NaN.

    Raises:
        ValueError: If the lengths differ, fewer than two architectures are given, a k is not a
            positive integer or ``bootstrap`` is negative.
    """
    p, t = _check_pair(pred, truth)
    ks_ = _check_ks(ks)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, Integral) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer, got {bootstrap!r}")

    out: dict[str, float] = {
        "n": int(p.shape[0]),
        "kendall_tau": _kendall(p, t),
        "spearman": _spearman(p, t),
        "pearson": _pearson(p, t),
    }
    for k in ks_:
        out[f"top{k}_tau"] = _top_k_tau(p, t, k)
    for k in ks_:
        out[f"precision@{k}"] = _precision_at_k(p, t, k)
    out["cpr"] = _concordant_pair_ratio(p, t)
    if bootstrap > 0:
        out.update(_bootstrap(p, t, int(bootstrap), seed))
    return out


def _truth_value(value: float | Sequence[float]) -> float | None:
    """Mean over seeds of a ground-truth entry (None for an empty list)."""
    if isinstance(value, Real):
        return float(value)
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.shape[0] == 0:
        return None
    return float(arr.mean())


def align(
    pred: Mapping[str, float], truth: Mapping[str, float | Sequence[float]]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pairs predicted and true scores of the architectures present in both.

    Args:
        pred: Predicted score per architecture key.
        truth: Ground truth per architecture key: one value, or a list of per-seed values that is
            averaged (an empty list counts as missing).

    Returns:
        ``(archs, pred_values, truth_values)``: the common architecture keys (stripped of surrounding
        whitespace) in the order of ``truth``, and their predicted and (seed-averaged) true scores.

    Raises:
        ValueError: If fewer than two architectures are in common.
    """
    pred_by_key = {str(k).strip(): float(v) for k, v in pred.items()}
    archs: list[str] = []
    p_vals: list[float] = []
    t_vals: list[float] = []
    seen: set[str] = set()
    for key, value in truth.items():
        arch = str(key).strip()
        if arch in seen or arch not in pred_by_key:
            continue
        tv = _truth_value(value)
        if tv is None:
            continue
        seen.add(arch)
        archs.append(arch)
        p_vals.append(pred_by_key[arch])
        t_vals.append(tv)
    if len(archs) < 2:
        raise ValueError(
            f"only {len(archs)} architecture(s) matched between pred ({len(pred)}) and "
            f"truth ({len(truth)}); need at least 2"
        )
    return archs, np.asarray(p_vals, dtype=np.float64), np.asarray(t_vals, dtype=np.float64)


def noise_ceiling(per_seed: Mapping[str, Sequence[float]], ks: Sequence[int] = (10, 20), bootstrap: int = 0,
                  seed: int = 0) -> dict[str, float]:
    """Rank agreement of the ground truth with itself across seeds.

    For every pair of seed indices ``s < t`` the column of seed ``s`` (``per_seed[a][s]``) is ranked
    against the column of seed ``t`` (which serves as the reference for the top-k measures) over the
    architectures that have both seeds; the metrics are averaged over seed pairs. No predictor is
    expected to agree with the seed-averaged truth much better than this.

    Args:
        per_seed: Per-seed ground-truth values per architecture. Only architectures with at least two
            values are used.
        ks: Sizes of the top-k sets for ``top{k}_tau``.
        bootstrap: Number of bootstrap resamples of the architectures for a percentile 95% interval of
            the ceiling's Kendall tau (each round draws the architectures once, for every seed pair);
            0 skips it.
        seed: Seed of the bootstrap's random generator.

    Returns:
        A dict with ``kendall_tau``, ``spearman`` and ``top{k}_tau`` (means over seed pairs, ignoring
        pairs where a value is NaN; NaN if all are), ``n`` (architectures used), ``seed_pairs`` (seed
        pairs with at least two shared architectures) and ``seed_std`` (mean over architectures of the
        per-architecture standard deviation across seeds, ddof=1); with ``bootstrap > 0`` also
        ``kendall_tau_lo`` and ``kendall_tau_hi``.

    Raises:
        ValueError: If fewer than two architectures have at least two seed values, or ``bootstrap`` is
            not a non-negative integer.
    """
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, Integral) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer, got {bootstrap!r}")
    ks_ = _check_ks(ks)
    rows = {a: np.asarray(v, dtype=np.float64).ravel() for a, v in per_seed.items()}
    rows = {a: v for a, v in rows.items() if v.shape[0] >= 2}
    if len(rows) < 2:
        raise ValueError(
            f"noise ceiling needs at least 2 architectures with >= 2 seed values, got {len(rows)}"
        )
    num_seeds = max(v.shape[0] for v in rows.values())
    keys = ["kendall_tau", "spearman"] + [f"top{k}_tau" for k in ks_]
    collected: dict[str, list[float]] = {key: [] for key in keys}
    used_pairs = 0
    for s, t in combinations(range(num_seeds), 2):
        both = [v for v in rows.values() if v.shape[0] > t]
        if len(both) < 2:
            continue
        col_s = np.array([v[s] for v in both])
        col_t = np.array([v[t] for v in both])
        m = rank_metrics(col_s, col_t, ks=ks_, bootstrap=0)
        for key in keys:
            collected[key].append(m[key])
        used_pairs += 1

    out: dict[str, float] = {}
    for key in keys:
        vals = np.asarray(collected[key], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[key] = float(vals.mean()) if vals.shape[0] else math.nan
    out["n"] = len(rows)
    out["seed_pairs"] = used_pairs
    out["seed_std"] = float(np.mean([np.std(v, ddof=1) for v in rows.values()]))
    if bootstrap > 0:
        lo, hi = _percentile_interval(_ceiling_bootstrap(list(rows.values()), num_seeds, int(bootstrap), seed))
        out["kendall_tau_lo"], out["kendall_tau_hi"] = lo, hi
    return out


def _ceiling_bootstrap(rows: list[np.ndarray], num_seeds: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples,) the noise ceiling's Kendall tau-b over resampled architectures.

    Each round draws n architectures with replacement once; every seed pair ``s < t`` is then ranked over
    the drawn architectures that have seed ``t`` (a weight of 0 leaves out the others), and the pairs'
    taus are averaged as :func:`noise_ceiling` does. A drawn duplicate is a tie, as in :func:`rank_metrics`.
    """
    n = len(rows)
    values = np.zeros((n, num_seeds))
    has = np.zeros((n, num_seeds))
    for i, v in enumerate(rows):
        values[i, : v.shape[0]] = v
        has[i, : v.shape[0]] = 1.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    sums = np.zeros(resamples)
    counts = np.zeros(resamples)
    large = _too_many_pairs(n)  # the pair signs would not fit: scipy per round
    iu, ju = (None, None) if large else np.triu_indices(n, k=1)
    block = 1 if large else max(1, _BOOTSTRAP_BLOCK_ELEMS // max(n * (n - 1) // 2, 1))
    for s, t in combinations(range(num_seeds), 2):
        for start in range(0, resamples, block):
            sl = slice(start, min(start + block, resamples))
            x, y, w = values[idx[sl], s], values[idx[sl], t], has[idx[sl], t]
            if large:
                keep = w[0] > 0
                tau = np.array([_kendall(x[0][keep], y[0][keep]) if keep.sum() >= 2 else math.nan])
            else:
                sx = np.sign(x[:, iu] - x[:, ju])
                sy = np.sign(y[:, iu] - y[:, ju])
                ww = w[:, iu] * w[:, ju]
                num = np.einsum("bp,bp->b", ww * sx, sy)
                den = np.sqrt(np.einsum("bp,bp->b", ww, sx * sx) * np.einsum("bp,bp->b", ww, sy * sy))
                tau = np.divide(num, den, out=np.full_like(num, math.nan), where=den > 0)
            ok = np.isfinite(tau)  # a pair with a constant column is left out, as a NaN is
            sums[sl][ok] += tau[ok]
            counts[sl][ok] += 1
    out = np.full(resamples, math.nan)
    out[counts > 0] = sums[counts > 0] / counts[counts > 0]
    return out


def _mean_tau_over_seeds(pred: np.ndarray, truth: np.ndarray, seed_idx: np.ndarray,
                         arch_idx: np.ndarray) -> np.ndarray:
    """(B,) mean over the resampled seeds of Kendall tau-b on the resampled architectures.

    ``pred`` (S, n); ``truth`` (n,); ``seed_idx`` (B, S') and ``arch_idx`` (B, n') hold the resampled
    indices of each bootstrap round."""
    B, S = seed_idx.shape
    n = arch_idx.shape[1]
    block = max(1, _BOOTSTRAP_BLOCK_ELEMS // max(S * n * (n - 1) // 2, 1))
    out = np.empty(B)
    for start in range(0, B, block):
        sl = slice(start, min(start + block, B))
        rows = seed_idx[sl]  # (b, S)
        cols = arch_idx[sl]  # (b, n)
        x = pred[rows[:, :, None], cols[:, None, :]].reshape(-1, n)  # (b * S, n)
        y = np.repeat(truth[cols], S, axis=0)  # (b * S, n)
        taus = _batched_kendall_tau_b(x, y).reshape(-1, S)
        out[sl] = np.nanmean(taus, axis=1)
    return out


def seed_arch_bootstrap(
    preds: Mapping[str, np.ndarray | Sequence[Sequence[float]]],
    truth: Sequence[float] | np.ndarray,
    baseline: str | None = None,
    pairs: Sequence[tuple[str, str]] = (),
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    min_seeds: int = 3,
) -> dict[str, dict[str, Any]]:
    """Mean Kendall tau over seeds with intervals that account for seeds *and* architectures, and paired
    differences between entries.

    Every entry's tau is the mean over its S seeds of Kendall tau-b(prediction of seed s, truth). One
    bootstrap round draws S seed indices and n architecture indices with replacement (the same draw for
    every entry: seeds are paired, e.g. seed 3 of every method; architectures are shared) and recomputes
    every entry's mean tau; the percentile interval of those rounds is the entry's interval, and the
    percentile interval of the round-wise difference is that of a difference. So both sources of noise
    (which seeds ran, which architectures were sampled) widen the intervals, and pairing removes what
    the entries share.

    Args:
        preds: entry -> (S, n) predictions, row s = seed s (the same seeds, in the same order, for all
            entries), columns in the order of ``truth``.
        truth: (n,) ground truth (e.g. the mean over training seeds).
        baseline: compare every other entry with this one (``diff_vs_<baseline>``).
        pairs: further (entry, reference) comparisons, e.g. an ablation against its method.
        min_seeds: below this many seeds the seed spread cannot be estimated, and a verdict is
            ``too few seeds`` whatever the interval.
        resamples: bootstrap rounds.
        seed: seed of the bootstrap generator.
        level: interval level.

    Returns:
        entry -> ``{"tau": [per-seed tau], "mean", "ci95": [lo, hi]}`` plus, for compared entries,
        ``diff_vs_<reference>`` -> ``{"mean", "ci95", "verdict"}`` (better / worse / no evidence).
    """
    t = np.asarray(truth, dtype=np.float64).ravel()
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in preds.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[1] != t.shape[0]:
        raise ValueError(f"every entry needs an (S, n) array with n = {t.shape[0]} and the same S; got "
                         f"{ {k: a.shape for k, a in arrays.items()} }")
    S, n = next(iter(shapes))
    rng = np.random.default_rng(seed)
    seed_idx = rng.integers(0, S, size=(resamples, S))
    arch_idx = rng.integers(0, n, size=(resamples, n))
    rounds = {k: _mean_tau_over_seeds(a, t, seed_idx, arch_idx) for k, a in arrays.items()}
    out: dict[str, dict[str, Any]] = {}
    for k, a in arrays.items():
        per_seed = [_kendall(a[s], t) for s in range(S)]
        out[k] = {"tau": per_seed, "mean": float(np.nanmean(per_seed)),
                  "ci95": list(_percentile_interval(rounds[k], level))}
    comparisons = [(k, baseline) for k in arrays if baseline is not None and k != baseline] + list(pairs)
    for k, ref in comparisons:
        if k not in arrays or ref not in arrays:
            continue
        lo, hi = _percentile_interval(rounds[k] - rounds[ref], level)
        out[k][f"diff_vs_{ref}"] = {"mean": out[k]["mean"] - out[ref]["mean"], "ci95": [lo, hi],
                                    "verdict": verdict(lo, hi) if S >= min_seeds else "too few seeds"}
    return out


def detectable_difference(sd_seed: float, sd_arch: float, seeds: int, num_archs: int, sd_inter: float = 0.0,
                          level: float = 0.95, power: float = 0.8) -> float:
    """The smallest true difference in mean tau that a paired comparison over ``seeds`` seeds and
    ``num_archs`` architectures detects with probability ``power`` (two-sided, at ``1 - level``), by the
    normal approximation: ``(z_{(1+level)/2} + z_power) * se`` with the standard error of
    :func:`difference_power`'s model, ``se^2 = sd_seed^2 / S + sd_arch^2 / n + sd_inter^2 / (S n)``."""
    if seeds < 1 or num_archs < 1:
        raise ValueError(f"seeds and num_archs must be >= 1, got {seeds} and {num_archs}")
    z = stats.norm.ppf((1 + level) / 2) + stats.norm.ppf(power)
    return float(z * math.sqrt(sd_seed ** 2 / seeds + sd_arch ** 2 / num_archs
                               + sd_inter ** 2 / (seeds * num_archs)))


def _jackknife_taus(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(S, n) Kendall tau-b of each row of ``pred`` against ``truth`` with architecture i left out."""
    S, n = pred.shape
    keep = ~np.eye(n, dtype=bool)  # row i: every architecture but i
    x = np.stack([pred[:, keep[i]] for i in range(n)], axis=1).reshape(S * n, n - 1)
    y = np.tile(np.stack([truth[keep[i]] for i in range(n)]), (S, 1))
    return _batched_kendall_tau_b(x, y).reshape(S, n)


def difference_power(
    a: np.ndarray | Sequence[Sequence[float]],
    ref: np.ndarray | Sequence[Sequence[float]],
    truth: Sequence[float] | np.ndarray,
    level: float = 0.95,
    power: float = 0.8,
) -> dict[str, float]:
    """How precisely paired seeds and a sample of architectures pin down a difference in mean tau, split
    into the parts that more seeds and more architectures would shrink.

    The difference ``D = mean_s [tau(a_s, truth) - tau(ref_s, truth)]`` varies with the seeds that ran, the
    architectures that were sampled, and how the two interact (a seed that happens to order some
    architectures well). Kendall tau is not a sum over architectures, so each per-seed difference ``d_s`` is
    first spread over its architectures by the jackknife: the pseudo-value ``p_si = n d_s - (n - 1)
    d_s^(-i)`` (``d_s^(-i)``: without architecture i) has mean about ``d_s``, and its variance over i gives the
    usual jackknife variance of ``d_s``. The (S, n) table of pseudo-values then gets the two-way analysis of
    variance without replication (mean squares of seeds, architectures and the residual), whose expected
    mean squares give the three components: ``sd_inter^2 = MS_res``, ``sd_seed^2 = (MS_seed - MS_res) / n``,
    ``sd_arch^2 = (MS_arch - MS_res) / S`` (negative estimates set to 0). So ``var(D) = sd_seed^2 / S +
    sd_arch^2 / n + sd_inter^2 / (S n)``, with each term counted once; :func:`detectable_difference`
    projects it to another design. Each component is estimated from S seeds (``S - 1`` degrees of freedom
    for the seed term: at S = 8 its 95% range spans about x0.66 to x2.0), so projections are rough.

    A seed whose prediction is constant (tau undefined) is left out, as :func:`seed_arch_bootstrap` does.

    Args:
        a, ref: (S, n) predictions of the two entries, row s = seed s of both (paired), columns in the
            order of ``truth``; at least 3 seeds with a defined tau.
        truth: (n,) ground truth.

    Returns:
        ``seeds``, ``num_archs``, ``diff`` (D), ``sd_seed``, ``sd_arch``, ``sd_inter``, ``se_seed``,
        ``se_arch`` and ``se_inter`` (the three terms of the standard error), ``se`` and ``mde``
        (:func:`detectable_difference` at this design).
    """
    t = np.asarray(truth, dtype=np.float64).ravel()
    x, y = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape or x.shape[1] != t.shape[0] or t.shape[0] < 4:
        raise ValueError(f"difference_power needs two (S, n) arrays with n = {t.shape[0]} >= 4; "
                         f"got {x.shape} and {y.shape}")
    d = np.array([_kendall(x[s], t) - _kendall(y[s], t) for s in range(x.shape[0])])
    ok = np.isfinite(d)
    if ok.sum() < 3:
        raise ValueError(f"difference_power needs at least 3 seeds with a defined tau, got {int(ok.sum())}")
    x, y, d = x[ok], y[ok], d[ok]
    S, n = x.shape
    loo = _jackknife_taus(x, t) - _jackknife_taus(y, t)  # (S, n)
    pv = n * d[:, None] - (n - 1) * loo
    pv = np.where(np.isfinite(pv), pv, d[:, None])  # a left-out architecture that leaves a constant row
    row, col, grand = pv.mean(axis=1), pv.mean(axis=0), pv.mean()
    ms_seed = n * float(np.sum((row - grand) ** 2)) / (S - 1)
    ms_arch = S * float(np.sum((col - grand) ** 2)) / (n - 1)
    ms_res = float(np.sum((pv - row[:, None] - col[None, :] + grand) ** 2)) / ((S - 1) * (n - 1))
    var_seed, var_arch = max(ms_seed - ms_res, 0.0) / n, max(ms_arch - ms_res, 0.0) / S
    sd_seed, sd_arch, sd_inter = math.sqrt(var_seed), math.sqrt(var_arch), math.sqrt(ms_res)
    terms = {"se_seed": sd_seed / math.sqrt(S), "se_arch": sd_arch / math.sqrt(n),
             "se_inter": sd_inter / math.sqrt(S * n)}
    return {"seeds": S, "num_archs": n, "diff": float(np.mean(d)), "sd_seed": sd_seed, "sd_arch": sd_arch,
            "sd_inter": sd_inter, **terms, "se": math.sqrt(sum(v ** 2 for v in terms.values())),
            "mde": detectable_difference(sd_seed, sd_arch, S, n, sd_inter, level, power)}


def verdict(lo: float, hi: float) -> str:
    """``better`` when a difference's interval lies above 0, ``worse`` below, else ``no evidence``."""
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "no evidence"


def summarize_seeds(values: Sequence[float]) -> dict[str, float]:
    """Summary statistics of one quantity measured over several seeds.

    Args:
        values: The per-seed values.

    Returns:
        ``mean``, ``std`` (ddof=1; 0 for a single value), ``min``, ``max`` and ``n``.

    Raises:
        ValueError: If ``values`` is empty.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.shape[0] == 0:
        raise ValueError("summarize_seeds needs at least one value")
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.shape[0] > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "n": int(arr.shape[0]),
    }


def _format_value(value: object) -> str:
    """Formats one table cell: ints plain, floats with 3 decimals, NaN as ``nan``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        v = float(value)
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(value)


def format_table(
    rows: Sequence[tuple[str, Mapping[str, float]]], keys: Sequence[str] | None = None
) -> str:
    """Renders metric dicts as a plain-text table with aligned columns.

    Args:
        rows: ``(label, metrics)`` pairs, one table row each.
        keys: Metric columns to show; defaults to :data:`DEFAULT_TABLE_KEYS`. A metric missing from a
            row is shown as ``-``.

    Returns:
        The table (header, rule, one line per row), without a trailing newline. Floats have 3
        decimals, NaN reads ``nan`` and ints are plain; when a row has ``kendall_tau_lo`` and
        ``kendall_tau_hi`` its Kendall tau cell reads like ``0.512 [0.401, 0.610]``.
    """
    cols = list(DEFAULT_TABLE_KEYS if keys is None else keys)
    header = ["", *cols]
    body: list[list[str]] = []
    for label, metrics in rows:
        cells = [str(label)]
        for key in cols:
            cell = _format_value(metrics.get(key))
            if key == "kendall_tau" and "kendall_tau_lo" in metrics and "kendall_tau_hi" in metrics:
                lo = _format_value(metrics["kendall_tau_lo"])
                hi = _format_value(metrics["kendall_tau_hi"])
                cell = f"{cell} [{lo}, {hi}]"
            cells.append(cell)
        body.append(cells)

    widths = [max(len(r[c]) for r in [header, *body]) for c in range(len(header))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(w) for cell, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *(render(r) for r in body)])
