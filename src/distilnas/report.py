"""Pictures of a run: ``distilnas report RUN_DIR [--truth TABLE] [--out DIR]``.

Writes PNG figures and ``report.md`` showing them with the key numbers:

* ``training.png``: training curves from metrics.jsonl: the step losses and the epoch lines (loss,
  supernet accuracy on the training batches) and every algorithm statistic logged per epoch (RD-NAS's
  ranking loss, lambda and violated pairs; Cream's board accuracy range, rho, the matching network's
  weight change and meta loss; DNA's block MSE), one small panel each;
* ``scores.png``: the scored architectures' shared-weight validation accuracy against FLOPs and params,
  the selected architecture marked (evolutionary searches coloured by generation);
* ``board.png`` (Cream): the final board's paths, accuracy against the step at which each was measured;
* ``truth.png`` (with ``--truth``): predicted against true accuracy, Kendall tau with its 95% interval in
  the title, the true top-10 marked.

matplotlib is an optional dependency (``pip install 'distilnas[plot]'``), imported only here.
:func:`plot_comparison` and :func:`plot_budget_curve` draw the suite's figures (benchmarks/run_suite.py).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["ReportError", "write_report", "write_dna_report", "plot_comparison", "plot_budget_curve", "plot_power",
           "plot_search_quality"]

_STEP_KEYS = {"step", "epoch", "loss", "lr"}
_EPOCH_SKIP = {"step", "epoch", "passes", "forward_images", "epoch_seconds", "teacher_picks", "block"}


class ReportError(RuntimeError):
    """A run directory that cannot be reported (missing files, matplotlib not installed)."""


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ReportError("distilnas report needs matplotlib: pip install 'distilnas[plot]' "
                          "(scripts/install.sh installs it)") from None
    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt

    return plt


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut off by a kill
    return rows


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Save through a temporary sibling that replaces ``path`` when complete (a kill never leaves half a
    PNG where a document links one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        fig.tight_layout()
        fig.savefig(tmp, dpi=90, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def _training(plt: Any, metrics: list[dict[str, Any]], out: Path) -> Path | None:
    steps = [r for r in metrics if "loss" in r and "train_loss" not in r]
    epochs = [r for r in metrics if "train_loss" in r]
    if not steps and not epochs:
        return None
    keys = ["train_acc"] + sorted({k for r in epochs for k, v in r.items()  # train_loss: in the first panel
                                   if _num(v) and k not in _EPOCH_SKIP | {"train_loss", "train_acc", "rho_std"}})
    keys = [k for k in keys if any(_num(r.get(k)) for r in epochs)]
    if "board_best_acc" in keys and "board_worst_acc" in keys:  # Cream: one panel for the board's range
        keys.remove("board_worst_acc")
    panels = 1 + len(keys)
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    ax = axes[0][0]
    if steps:
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=0.8, color="tab:gray", label="step loss")
    if epochs:
        ax.plot([r["step"] for r in epochs], [r["train_loss"] for r in epochs], "o-", ms=3, label="epoch mean")
    ax.set_xlabel("step")
    ax.set_title("training loss")
    ax.legend(fontsize=7)
    for n, key in enumerate(keys, start=1):
        ax = axes[n // cols][n % cols]
        pts = [(r["epoch"], r[key]) for r in epochs if _num(r.get(key))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3)
        if key == "board_best_acc":
            worst = [(r["epoch"], r["board_worst_acc"]) for r in epochs if _num(r.get("board_worst_acc"))]
            ax.plot([p[0] for p in worst], [p[1] for p in worst], "o-", ms=3)
            ax.set_title("board accuracy: best and worst entry (%)", fontsize=9)
            ax.set_xlabel("epoch")
            continue
        if key == "rho_mean" and all(_num(r.get("rho_std")) for r in epochs if _num(r.get("rho_mean"))):
            lo = [r["rho_mean"] - r["rho_std"] for r in epochs if _num(r.get("rho_mean"))]
            hi = [r["rho_mean"] + r["rho_std"] for r in epochs if _num(r.get("rho_mean"))]
            ax.fill_between([p[0] for p in pts], lo, hi, alpha=0.2)
        ax.set_title({"train_acc": "supernet accuracy on training batches (%)"}.get(key, key), fontsize=9)
        ax.set_xlabel("epoch")
    for n in range(panels, rows * cols):
        axes[n // cols][n % cols].axis("off")
    path = _save(plt, fig, out / "training.png")
    return path


def _scores(plt: Any, scores: list[dict[str, Any]], best: str | None, out: Path) -> Path | None:
    rows = [r for r in scores if _num(r.get("accuracy")) and _num(r.get("flops")) and _num(r.get("params"))]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    gen = [r.get("generation") for r in rows]
    color = gen if all(g is not None for g in gen) else None
    for ax, key in zip(axes, ("flops", "params")):
        kw = {"c": color, "cmap": "viridis"} if color is not None else {}
        sc = ax.scatter([r[key] for r in rows], [r["accuracy"] for r in rows], s=14, **kw)
        for r in rows:
            if r["arch"] == best:
                ax.scatter([r[key]], [r["accuracy"]], s=120, facecolors="none", edgecolors="red", lw=1.5,
                           label="selected")
        ax.set_xlabel(key)
        ax.set_ylabel("shared-weight val accuracy (%)")
        ax.legend(fontsize=7, loc="lower right")
    if color is not None:
        fig.colorbar(sc, ax=axes[1], label="generation")
    fig.suptitle(f"{len(rows)} scored architectures", fontsize=10)
    path = _save(plt, fig, out / "scores.png")
    return path


def _board(plt: Any, board: list[dict[str, Any]], out: Path) -> Path | None:
    if not board:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.scatter([e["step"] for e in board], [e["accuracy"] for e in board], c=[e["flops"] for e in board], s=30)
    for rank, e in enumerate(board):
        ax.annotate(str(rank), (e["step"], e["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("step the path was measured at")
    ax.set_ylabel("board accuracy (%)")
    ax.set_title(f"Cream's prioritized path board ({len(board)} paths, rank labelled; colour = FLOPs)", fontsize=9)
    path = _save(plt, fig, out / "board.png")
    return path


def _truth(plt: Any, pred: dict[str, float], truth_path: Path, out: Path) -> tuple[Path | None, dict[str, Any]]:
    from .evaluate.groundtruth import load_truth
    from .evaluate.metrics import align, rank_metrics

    truth = load_truth(truth_path)
    finite = {a: v for a, v in pred.items() if _num(v)}
    common = [a for a in finite if a in truth]
    if len(common) < 3:  # nothing to rank yet: say so in report.md
        return None, {"common": len(common)}
    archs, p, t = align(finite, truth)
    m = rank_metrics(p, t, bootstrap=1000)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    top = set(sorted(range(len(t)), key=lambda i: -t[i])[:10])
    ax.scatter([t[i] for i in range(len(t)) if i not in top], [p[i] for i in range(len(t)) if i not in top], s=12)
    ax.scatter([t[i] for i in top], [p[i] for i in top], s=18, color="tab:red", label="true top-10")
    ax.set_xlabel("true accuracy (mean over seeds, %)")
    ax.set_ylabel("predicted (shared-weight accuracy, %)")
    ax.set_title(f"Kendall tau {m['kendall_tau']:.3f} [{m['kendall_tau_lo']:.3f}, {m['kendall_tau_hi']:.3f}], "
                 f"n={m['n']}", fontsize=9)
    ax.legend(fontsize=7)
    path = _save(plt, fig, out / "truth.png")
    return path, {"common": len(archs), **m}


def write_report(run_dir: str | Path, truth: str | Path | None = None, out: str | Path | None = None,
                 pred: str | Path | None = None) -> Path:
    """Write the figures and ``report.md`` of a search run directory into ``out`` (default the run
    directory); returns the path of report.md. ``pred`` (default ``RUN/gt_scores.jsonl`` when present,
    else ``RUN/scores.jsonl``) is ranked against ``truth``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportError(f"{run} is not a run directory; pass the --out of a distilnas search")
    if not (run / "metrics.jsonl").exists() and not (run / "result.json").exists():
        raise ReportError(f"{run} holds neither metrics.jsonl nor result.json; pass the --out of a distilnas search")
    plt = _plt()
    dst = Path(out) if out else run
    dst.mkdir(parents=True, exist_ok=True)
    metrics = _jsonl(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else []
    result = json.loads((run / "result.json").read_text()) if (run / "result.json").exists() else {}
    scores = _jsonl(run / "scores.jsonl") if (run / "scores.jsonl").exists() else []
    if result and scores:  # FLOPs/params of every scored arch (result.json has them for the top ones only)
        scores = _with_costs(run, scores)
    best = (result.get("best") or {}).get("arch")
    figures = {"training": _training(plt, metrics, dst), "scores": _scores(plt, scores, best, dst),
               "board": _board(plt, result.get("board") or [], dst)}
    ranking: dict[str, Any] = {}
    if truth is not None:
        pred_path = Path(pred) if pred else (run / "gt_scores.jsonl" if (run / "gt_scores.jsonl").exists()
                                             else run / "scores.jsonl")
        if not pred_path.exists():
            raise ReportError(f"no predictions to rank: {pred_path} not found")
        rows = _jsonl(pred_path)
        figures["truth"], ranking = _truth(plt, {r["arch"]: r.get("accuracy") for r in rows}, Path(truth), dst)
        ranking["pred"] = str(pred_path)
    lines = [f"# distilnas report: {run}", ""]
    if result:
        b = result.get("best") or {}
        lines += [f"- algorithm **{result.get('algorithm')}** on space **{result.get('space')}**, seed "
                  f"{result.get('seed')}; {result.get('steps', '?')} steps, {result.get('train_seconds', '?')} s "
                  f"training, {result.get('num_scored', '?')} architectures scored",
                  f"- selected: `{b.get('arch')}`: shared-weight validation accuracy {b.get('accuracy')}% "
                  f"(not a standalone accuracy: retrain it with `distilnas retrain {run / 'result.json'}`), "
                  f"params {b.get('params')}, FLOPs {b.get('flops')}"]
    else:
        lines += ["- the search has not finished (no result.json): training curves only"
                  + ("" if figures["training"] is not None else " (none yet: no finite loss was logged)")]
    if truth is not None:
        if "kendall_tau" in ranking:
            lines.append(f"- ranking of {ranking['common']} architectures ({ranking['pred']}) against {truth}: "
                         f"Kendall tau {ranking['kendall_tau']:.3f} [{ranking['kendall_tau_lo']:.3f}, "
                         f"{ranking['kendall_tau_hi']:.3f}], Spearman {ranking['spearman']:.3f}")
        else:
            lines.append(f"- only {ranking.get('common', 0)} architectures of {ranking.get('pred')} are in {truth}: "
                         f"score the table's architectures first (`distilnas score {run} --archs ARCHS "
                         f"--out {run / 'gt_scores.jsonl'}`)")
    lines.append("")
    captions = {"training": "Training curves", "scores": "Scored architectures",
                "board": "Cream's board", "truth": "Predicted vs true accuracy"}
    for key, path in figures.items():
        if path is not None:
            lines += [f"## {captions[key]}", "", f"![{key}]({path.name})", ""]
    report = dst / "report.md"
    report.write_text("\n".join(lines))
    return report


def write_dna_report(potentials: str | Path, search: str | Path | None = None, out: str | Path | None = None) -> Path:
    """DNA's pictures: ``dna_blocks.png`` (every block's candidates, score against FLOPs, one panel a
    block) and, with a ``dna-search`` result, ``dna_pareto.png`` (the FLOPs Pareto front of summed scores,
    the budget and the chosen architecture); returns report.md."""
    from .search.potentials import load_potentials

    pot = load_potentials(potentials)
    plt = _plt()
    dst = Path(out) if out else Path(potentials).parent
    dst.mkdir(parents=True, exist_ok=True)
    n = len(pot.blocks)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for i, block in enumerate(pot.blocks):
        ax = axes[i // cols][i % cols]
        ax.scatter([c.flops for c in block], [c.score for c in block], s=10)
        best = min(block, key=lambda c: c.score)
        ax.scatter([best.flops], [best.score], s=40, color="tab:red", label=f"best: {best.arch}")
        ax.set_title(f"block {i}: {len(block)} candidates", fontsize=9)
        ax.set_xlabel("FLOPs")
        ax.set_ylabel("score (lower is better)")
        ax.legend(fontsize=6)
    for i in range(n, rows * cols):
        axes[i // cols][i % cols].axis("off")
    figures = {"dna_blocks": _save(plt, fig, dst / "dna_blocks.png")}
    lines = [f"# distilnas report: DNA potentials {potentials}", "",
             f"- {n} blocks, {pot.num_archs:,} architectures; fixed part {pot.fixed_flops:,} FLOPs", ""]
    if search is not None:
        res = json.loads(Path(search).read_text())
        front = (res.get("pareto_front") or {}).get("flops") or []
        if not front:
            raise ReportError(f"{search} holds no pareto_front: pass the result JSON of distilnas dna-search")
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.step([r["flops"] for r in front], [r["score"] for r in front], where="post", marker="o", ms=3,
                label="Pareto front (FLOPs)")
        ax.scatter([res["flops"]], [res["score"]], s=60, color="tab:red", zorder=3, label="chosen")
        budget = (res.get("budgets") or {}).get("max_flops")
        if budget:
            ax.axvline(budget, color="tab:gray", ls="--", lw=1, label="max FLOPs")
        ax.set_xlabel("FLOPs")
        ax.set_ylabel("summed block score")
        ax.legend(fontsize=7)
        figures["dna_pareto"] = _save(plt, fig, dst / "dna_pareto.png")
        lines.insert(3, f"- dna-search ({search}): `{res.get('arch')}`, score {res.get('score')}, "
                        f"FLOPs {res.get('flops'):,}, params {res.get('params'):,}")
    for key, path in figures.items():
        lines += [f"![{key}]({path.name})", ""]
    report = dst / "report.md"
    report.write_text("\n".join(lines))
    return report


def _with_costs(run: Path, scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scores with ``flops`` and ``params`` filled from the run's space (cheap exact tables)."""
    if all("flops" in r and "params" in r for r in scores):
        return scores
    try:
        import yaml

        from .spaces import build_space_config
        from .spaces import create_space

        cfg = yaml.safe_load((run / "config.yaml").read_text())
        space = create_space(cfg["space"]["name"], build_space_config(cfg["space"]["name"], cfg["space"]))
        return [{**space.cost(space.parse(r["arch"])), **r} for r in scores]
    except Exception:  # noqa: BLE001 - a figure without costs is better than no report
        return scores


def plot_comparison(results: dict[str, Any], path: str | Path, best_proxy: tuple[str, float] | None = None,
                    partners: dict[str, tuple[str, float]] | None = None,
                    ylabel: str = "Kendall tau (report half)") -> Path:
    """The suite's method comparison: per-seed tau as points, the mean with its 95% interval, the noise
    ceiling (and the best zero-cost proxy) as horizontal lines; ``partners`` (entry -> (proxy, tau)) marks
    beside an entry the proxy it is compared with (RD-NAS's teacher alone)."""
    plt = _plt()
    entries = results["entries"]
    partners = partners or {}
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(entries), 3.6))
    for x, (label, e) in enumerate(entries.items()):
        ax.scatter([x + 0.12 * (i % 3 - 1) for i in range(len(e["tau"]))], e["tau"], s=10, color="tab:gray")
        lo, hi = e["ci95"]
        ax.errorbar([x], [e["mean"]], yerr=[[e["mean"] - lo], [hi - e["mean"]]], fmt="o", color="tab:blue", capsize=4)
        if label in partners:
            ax.scatter([x + 0.3], [partners[label][1]], marker="x", color="tab:red", zorder=3,
                       label="the proxy it is compared with" if label == next(k for k in entries if k in partners) else None)
            ax.annotate(partners[label][0], (x + 0.3, partners[label][1]), fontsize=6, xytext=(3, 0),
                        textcoords="offset points", va="center")
    if results.get("noise_ceiling") is not None:
        ax.axhline(results["noise_ceiling"], color="tab:green", ls="--", lw=1, label="noise ceiling")
    if best_proxy is not None:
        ax.axhline(best_proxy[1], color="tab:orange", ls=":", lw=1, label=f"best proxy ({best_proxy[0]})")
    ax.set_xticks(range(len(entries)), list(entries), rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _save(plt, fig, Path(path))


def plot_budget_curve(curves: dict[str, list[tuple[float, float, float, float]]], path: str | Path,
                      noise_ceiling: float | None = None, best_proxy: tuple[str, float] | None = None,
                      xlabel: str = "supernet epochs", ylabel: str = "Kendall tau (report half)",
                      log_x: bool = True) -> Path:
    """Tau against supernet budget (or any x): per method a list of (x, mean, lo, hi). The methods' points
    are set slightly apart along x so that their intervals do not hide each other; ticks sit at the budgets."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    n = len(curves)
    budgets: set[float] = set()
    for i, (label, pts) in enumerate(curves.items()):
        pts = sorted(pts)
        budgets.update(p[0] for p in pts)
        shift = (i - (n - 1) / 2) * 0.06  # in octaves on a log axis, in x units otherwise
        xs = [p[0] * 2 ** shift if log_x else p[0] + shift for p in pts]
        ax.errorbar(xs, [p[1] for p in pts], yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                    fmt="o-", capsize=3, label=label)
    if noise_ceiling is not None:
        ax.axhline(noise_ceiling, color="black", ls="--", lw=1, label="noise ceiling")
    if best_proxy is not None:
        ax.axhline(best_proxy[1], color="grey", ls=":", lw=1.2, label=f"best proxy ({best_proxy[0]})")
    if log_x:
        ax.set_xscale("log", base=2)
    ticks = sorted(budgets)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _save(plt, fig, Path(path))


def plot_power(curves: dict[int, list[tuple[int, float]]], path: str | Path, target: float | None = None,
               current: tuple[int, float] | None = None, power: float = 0.8) -> Path:
    """The minimum detectable difference against the number of paired seeds, one line per number of
    architectures (``curves``: archs -> [(seeds, mde)]), with the target difference and the current
    design (seeds, its mde) marked (``benchmarks/power.py --figure``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    seeds: set[int] = set()
    for n, pts in sorted(curves.items()):
        pts = sorted(pts)
        seeds.update(p[0] for p in pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, label=f"{n} architectures")
    if target is not None:
        ax.axhline(target, color="grey", ls=":", lw=1.2, label=f"target {target:g}")
    if current is not None:
        ax.plot([current[0]], [current[1]], "k*", ms=10, label="this suite")
    ax.set_xscale("log", base=2)
    ticks = sorted(seeds)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("paired seeds per method")
    ax.set_ylabel(f"difference in tau detected at {power:.0%} power")
    ax.legend(fontsize=7)
    return _save(plt, fig, Path(path))


def plot_search_quality(summary: dict[str, Any], path: str | Path) -> Path:
    """Search quality at a glance (``benchmarks/search_quality.py``): each entry's pick, retrained from
    scratch, as test accuracy against FLOPs: one grey point per retraining seed, the mean with +- one sample
    sd, the entry's label beside it; the spec's FLOPs range shaded. ``summary``: search_quality's summary
    (``entries`` with label, flops, test_acc, mean, std; ``flops_range``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    rows = [r for r in summary["entries"] if r.get("test_acc") and _num(r.get("flops"))]
    for r in rows:
        x = float(r["flops"]) / 1e6
        ax.scatter([x] * len(r["test_acc"]), r["test_acc"], s=10, color="tab:gray", zorder=2)
        ax.errorbar([x], [r["mean"]], yerr=[[r["std"] or 0.0]], fmt="o", capsize=4, zorder=3)
        ax.annotate(r["label"], (x, r["mean"]), fontsize=8, xytext=(6, 0), textcoords="offset points", va="center")
    rng = summary.get("flops_range")
    if rng:
        ax.axvspan(rng[0] / 1e6, rng[1] / 1e6, color="tab:green", alpha=0.08, label="FLOPs range")
        ax.legend(fontsize=7)
    ax.set_xlabel("FLOPs (M)")
    ax.set_ylabel("test accuracy (%), retrained; bar: +- sd")
    return _save(plt, fig, Path(path))


def seed_pairs(rows: dict[str, dict[str, Any]]) -> dict[tuple[int, int], list[tuple[float, float]]]:
    """For every pair of training seeds s < t, the (accuracy at s, accuracy at t) of each architecture that
    has both, by the seeds' numbers (``rows[a]["seeds"]``; without it the values are seeds 0, 1, ...), so
    that a build with gaps pairs the right runs."""
    by_seed = {a: dict(zip(r.get("seeds") or range(len(r["accuracy"])), map(float, r["accuracy"])))
               for a, r in rows.items()}
    seeds = sorted({s for d in by_seed.values() for s in d})
    pairs = {(s, t): [(d[s], d[t]) for d in by_seed.values() if s in d and t in d]
             for i, s in enumerate(seeds) for t in seeds[i + 1:]}
    return {k: v for k, v in pairs.items() if v}


def plot_groundtruth(rows: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """A ground-truth table at a glance (``distilnas bench report DIR --figure PNG``): left, each
    architecture's mean accuracy against its FLOPs with the spread of its training seeds (min to max);
    right, the accuracy of one seed against another's for every pair of seeds, the picture behind the
    noise ceiling (the closer the points to the diagonal relative to the spread between architectures, the
    higher it is). ``rows``: arch -> {"accuracy": [per seed], "seeds", "flops"} (``evaluate.groundtruth.load_table``;
    without "seeds" the values are those of seeds 0, 1, ...)."""
    import numpy as np

    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    accs = {a: np.asarray(r["accuracy"], dtype=float) for a, r in rows.items() if r["accuracy"]}
    costed = [a for a in accs if _num(rows[a].get("flops"))]
    if costed:
        x = np.array([rows[a]["flops"] for a in costed], dtype=float)
        mean = np.array([accs[a].mean() for a in costed])
        lo = mean - np.array([accs[a].min() for a in costed])
        hi = np.array([accs[a].max() for a in costed]) - mean
        left.errorbar(x, mean, yerr=[lo, hi], fmt="o", ms=3, capsize=2, lw=0.8)
        left.set_xscale("log")
        left.set_xlabel("FLOPs")
    else:  # no costs recorded: architectures in order of accuracy
        mean = np.sort([v.mean() for v in accs.values()])
        left.plot(range(len(mean)), mean, "o", ms=3)
        left.set_xlabel("architecture (sorted)")
    left.set_ylabel("accuracy (%), mean of seeds; bar: min-max")
    pairs = seed_pairs(rows)
    for (s, t), points in pairs.items():
        right.plot([p[0] for p in points], [p[1] for p in points], "o", ms=3, alpha=0.7, label=f"seed {s} vs {t}")
    if pairs:
        vals = np.concatenate([v for v in accs.values()])
        ends = [vals.min(), vals.max()]
        right.plot(ends, ends, color="grey", lw=0.8, ls="--")
        right.legend(fontsize=7)
    else:
        right.text(0.5, 0.5, "one seed per architecture:\nno noise ceiling", ha="center", va="center",
                   transform=right.transAxes)
    right.set_xlabel("accuracy, one seed (%)")
    right.set_ylabel("accuracy, another seed (%)")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(plt, fig, Path(path))
