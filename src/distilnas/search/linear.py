"""DONNA's linear accuracy predictor over block scores (Moons et al., "Distilling Optimal Neural Networks:
Rapid Search in Diverse Spaces", ICCV 2021).

DNA ranks architectures by the plain sum of their block scores, which weighs every block the same. DONNA
instead fits a linear model from the per-block quality metrics to the accuracy of a few dozen
architectures that were trained (fine-tuned) for real::

    accuracy(a) ~ w0 + sum_i w_i * score_i(a_i)        (one weight per block; least squares, optional ridge)

The block metric is the candidates' ``score`` by default, or any other number stored with every
candidate of the potentials file (e.g. ``"nsr"``, the noise-to-signal ratio DONNA uses).

The model is still a sum over blocks, so the exact knapsack search runs on it unchanged:
:meth:`LinearModel.to_potentials` rewrites every candidate's score as ``-(w_i * score_i)`` (the intercept
``-w0`` goes into every candidate of block 0), so that an architecture's total score is minus its predicted
accuracy and minimising it maximises the prediction.

The fit reports R^2 on the fitted architectures and Kendall's tau between cross-validated predictions
(leave-one-out by default, or k-fold) and the true accuracies, next to the tau of the plain DNA sum.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from .potentials import DEFAULT_SEP, Potentials, PotentialsError

__all__ = ["LinearModel", "fit_linear", "load_linear", "save_linear"]


@dataclass(frozen=True)
class LinearModel:
    """A fitted ``accuracy ~ w0 + sum_i w_i * score_i`` model.

    Attributes:
        intercept: ``w0``.
        weights: ``w_i``, one per block.
        metric: the candidate field the model reads (``"score"`` or an extra key such as ``"nsr"``).
        ridge: the L2 penalty used on the weights (not on the intercept).
        r2: coefficient of determination on the fitted architectures.
        kendall_tau: Kendall's tau-b of cross-validated predictions against the true accuracies.
        kendall_tau_sum: the same tau for DNA's plain sum (minus the summed metric), for comparison.
        cv_folds: folds of the cross-validation (equal to ``n`` for leave-one-out).
        n: architectures used in the fit.
        skipped: architectures of the ground truth not found in the potentials (ignored).
    """

    intercept: float
    weights: tuple[float, ...]
    metric: str = "score"
    ridge: float = 0.0
    r2: float = math.nan
    kendall_tau: float = math.nan
    kendall_tau_sum: float = math.nan
    cv_folds: int = 0
    n: int = 0
    skipped: int = 0

    def predict(self, block_scores: np.ndarray) -> np.ndarray:
        """Predicted accuracy from block scores (n, B) or (B,)."""
        return self.intercept + np.asarray(block_scores, dtype=float) @ np.asarray(self.weights)

    def to_potentials(self, potentials: Potentials) -> Potentials:
        """The potentials with every score replaced by its share of minus the predicted accuracy.

        Candidate ``j`` of block ``i`` gets score ``-(w_i * m_ij)`` (``m`` the model's metric), plus
        ``-w0`` in block 0, so the total score of an architecture is minus its predicted accuracy. The
        original score is kept as the extra key ``"dna_score"``.

        Raises:
            PotentialsError: the number of blocks differs from the model's, or a candidate lacks the metric.
        """
        if len(potentials.blocks) != len(self.weights):
            raise PotentialsError(f"the linear model has {len(self.weights)} block weights but the potentials "
                                  f"have {len(potentials.blocks)} blocks; fit it on these potentials")
        values = _metric_values(potentials, self.metric)
        blocks = []
        for i, (block, m, w) in enumerate(zip(potentials.blocks, values, self.weights)):
            shift = self.intercept if i == 0 else 0.0
            blocks.append(tuple(replace(c, score=-(w * float(v) + shift), extra={**c.extra, "dna_score": c.score})
                                for c, v in zip(block, m)))
        return replace(potentials, blocks=tuple(blocks))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = list(self.weights)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, obj: Any, source: str = "linear model") -> LinearModel:
        """Read :meth:`to_dict` output back.

        Raises:
            PotentialsError: missing or malformed ``intercept`` / ``weights``.
        """
        if not isinstance(obj, dict) or "intercept" not in obj or "weights" not in obj:
            raise PotentialsError(f"{source}: expected a JSON object with 'intercept' and 'weights' "
                                  f"(written by distilnas dna-fit)")
        w = obj["weights"]
        if not isinstance(w, list) or not w or not all(_finite(x) for x in w) or not _finite(obj["intercept"]):
            raise PotentialsError(f"{source}: 'intercept' and 'weights' must be finite numbers")
        known = {k: (math.nan if v is None else v) for k, v in obj.items() if k in cls.__dataclass_fields__}
        known["weights"] = tuple(float(x) for x in w)
        return cls(**known)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _metric_values(potentials: Potentials, metric: str) -> list[np.ndarray]:
    """Per block, the metric of every candidate: its score, or a finite number stored under ``metric``."""
    if metric == "score":
        return [b[:, 2] for b in potentials.table[0]]
    out = []
    for i, block in enumerate(potentials.blocks):
        for j, c in enumerate(block):
            if not _finite(c.extra.get(metric)):
                raise PotentialsError(f"blocks[{i}][{j}] ({c.arch!r}) has no finite {metric!r}; pick a metric "
                                      f"every candidate has, or 'score'")
        out.append(np.array([c.extra[metric] for c in block], dtype=float))
    return out


def _solve(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[float, np.ndarray]:
    """Least squares with an unpenalised intercept: centre, then (X'X + ridge I) w = X'y."""
    xm, ym = x.mean(axis=0), y.mean()
    xc, yc = x - xm, y - ym
    if ridge > 0:
        w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ yc)
    else:
        w = np.linalg.lstsq(xc, yc, rcond=None)[0]
    return float(ym - xm @ w), w


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.kendalltau(a, b).statistic)


def fit_linear(potentials: Potentials, truth: Mapping[str, float | Sequence[float]], *, metric: str = "score",
               ridge: float = 0.0, folds: int | None = None, seed: int = 0, sep: str = DEFAULT_SEP) -> LinearModel:
    """Fit DONNA's linear model of accuracy on block scores.

    Args:
        potentials: the block scores.
        truth: accuracy (or a list of per-seed accuracies, averaged) of trained architectures, keyed by
            the joined architecture string; architectures whose blocks are not in ``potentials`` are
            skipped (counted in :attr:`LinearModel.skipped`).
        metric: the candidate field used as block metric: ``"score"`` or an extra key (e.g. ``"nsr"``).
        ridge: L2 penalty on the block weights (0 for ordinary least squares).
        folds: k for k-fold cross-validation of Kendall's tau; None for leave-one-out.
        seed: shuffles the architectures into folds (k-fold only).
        sep: the separator of the architecture strings.

    Raises:
        ValueError: too few architectures (unregularised fits need at least blocks + 2), a negative
            ridge, or a bad number of folds.
        PotentialsError: a candidate lacks the metric.
    """
    if ridge < 0 or not math.isfinite(ridge):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    values = _metric_values(potentials, metric)
    rows, acc, skipped = [], [], 0
    for arch, value in truth.items():
        try:
            pick = potentials.split(arch, sep)
        except PotentialsError:
            skipped += 1
            continue
        seeds = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
        if not seeds or not all(math.isfinite(v) for v in seeds):
            raise ValueError(f"ground truth for {arch!r} is not a finite accuracy: {value!r}")
        rows.append([values[i][j] for i, j in enumerate(pick)])
        acc.append(float(np.mean(seeds)))
    x, y = np.array(rows, dtype=float).reshape(len(rows), len(values)), np.array(acc)
    n, nb = x.shape
    need = 3 if ridge > 0 else nb + 2
    if n < need:
        raise ValueError(f"{n} ground-truth architectures match the potentials ({skipped} skipped); the fit "
                         f"needs at least {need}{'' if ridge > 0 else ' (or pass ridge > 0)'}")
    k = n if folds is None else folds
    if not 2 <= k <= n:
        raise ValueError(f"folds must be between 2 and {n} (the number of architectures), got {folds}")

    w0, w = _solve(x, y, ridge)
    resid = y - (w0 + x @ w)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else math.nan

    order = np.arange(n) if folds is None else np.random.default_rng(seed).permutation(n)
    pred = np.empty(n)
    for fold in np.array_split(order, k):
        train = np.setdiff1d(np.arange(n), fold)
        b0, b = _solve(x[train], y[train], ridge)
        pred[fold] = b0 + x[fold] @ b
    return LinearModel(w0, tuple(float(v) for v in w), metric, float(ridge), r2, _tau(pred, y),
                       _tau(-x.sum(axis=1), y), k, n, skipped)


def save_linear(model: LinearModel, path: str | Path) -> None:
    """Write a fitted model as JSON (creating its directory)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(model.to_dict(), indent=2) + "\n")


def load_linear(path: str | Path) -> LinearModel:
    """Read a model written by :func:`save_linear` (``distilnas dna-fit``).

    Raises:
        FileNotFoundError: no such file.
        PotentialsError: not JSON or not a model.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"linear model file {p} not found (write one with distilnas dna-fit)")
    try:
        obj = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise PotentialsError(f"{p}: not valid JSON at line {e.lineno}: {e.msg}") from None
    return LinearModel.from_dict(obj, str(p))
