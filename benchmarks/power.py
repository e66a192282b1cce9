"""How large a difference in mean tau a suite can detect, and what design would detect a smaller one.

    python benchmarks/power.py benchmarks/suites/nb201_fmnist16.yaml [--pair cream spos --pair fairnas spos]
        [--half report] [--target 0.05] [--power 0.8] [--out runs/power.json] [--figure runs/power.png]
        [--markdown]

For every compared pair (default: each entry against the suite's baseline, over the seeds both have
committed; ``proxy:<name>`` names a committed proxy, the same prediction for every seed) the paired
difference's variance is split into a seed, an architecture and an interaction term
(``distilnas.evaluate.metrics.difference_power``: jackknife pseudo-values per seed and architecture, then the
two-way analysis of variance). From them, the minimum detectable difference (MDE: found with probability
``--power`` by a two-sided 5% test, normal approximation) at the suite's design, and the seeds (at this many
architectures) or architectures (at this many seeds) that would bring it down to ``--target``. The joint
seed-and-architecture bootstrap interval that the suite's verdicts use is printed beside the model's, with
their ratio: the verdicts detect about that factor less than the model's MDE.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import (  # noqa: E402
    SpecError,
    _committed,
    comparable_archs,
    entry_seeds,
    load_suite,
    load_truths,
    proxy_predictions,
    read_predictions,
    render_table,
)

from distilnas.evaluate.metrics import (  # noqa: E402
    detectable_difference,
    difference_power,
    seed_arch_bootstrap,
)

GRID_SEEDS = (3, 8, 16, 32, 64)
GRID_ARCHS = (64, 128, 256, 512)
Z95 = 1.959964


def needed(fixed: float, per_unit: float, target_se: float) -> float | None:
    """The smallest k with ``fixed + per_unit / k <= target_se^2`` (variances; inf: never, None: undefined)."""
    if not (math.isfinite(fixed) and math.isfinite(per_unit)):
        return None
    room = target_se ** 2 - fixed
    return math.inf if room <= 0 else max(1, math.ceil(per_unit / room))


def projections(r: dict, target_se: float) -> dict[str, float | None]:
    """Seeds needed at n and 2n architectures, architectures needed at S and 2S seeds, for ``target_se``:
    var = (sd_seed^2 + sd_inter^2 / n) / S + sd_arch^2 / n."""
    S, n = r["seeds"], r["num_archs"]
    vs, va, vi = r["sd_seed"] ** 2, r["sd_arch"] ** 2, r["sd_inter"] ** 2
    return {"seeds_for_target": needed(va / n, vs + vi / n, target_se),
            "seeds_for_target_2n": needed(va / (2 * n), vs + vi / (2 * n), target_se),
            "archs_for_target": needed(vs / S, va + vi / S, target_se),
            "archs_for_target_2s": needed(vs / (2 * S), va + vi / (2 * S), target_se)}


def _predictions(label: str, seeds: list[int], predictions: Path, scoring: list[str]) -> list[dict] | None:
    """Per seed the predictions of an entry (None for a seed not committed), or a proxy's for every seed."""
    if label.startswith("proxy:"):
        p = proxy_predictions(label.removeprefix("proxy:"), predictions)
        if p is None:
            raise SpecError(f"no committed predictions of {label} in {predictions}/proxies")
        return [p for _ in seeds]
    return [read_predictions(predictions / label / f"seed{s}.jsonl")
            if _committed(predictions, label, s, scoring) is not None else None for s in seeds]


def pair_rows(suite: dict, pairs: list[tuple[str, str]], half: str, seeds: list[int], resamples: int,
              level: float, power: float, target: float) -> list[dict]:
    truth = load_truths(suite)
    split = json.loads(Path(suite["split"]).read_text()) if suite.get("split") else {half: list(truth)}
    if half not in split:
        raise SpecError(f"the split has no {half!r} half (it has {', '.join(split)})")
    predictions = Path(suite["predictions"])
    scoring = [str(o) for o in suite.get("scoring", [])]
    own = entry_seeds(suite, seeds)
    z = detectable_difference(1.0, 0.0, 1, 1, level=level, power=power)  # z_{1-alpha/2} + z_power
    out = []
    for a, ref in pairs:
        if a == ref:
            raise SpecError(f"--pair {a} {ref}: an entry against itself")
        for lab in (a, ref):
            if lab not in own and not lab.startswith("proxy:"):
                raise SpecError(f"no entry {lab!r} in the suite (entries: {', '.join(own)}; or proxy:<name>)")
        if a.startswith("proxy:") and ref.startswith("proxy:"):
            raise SpecError(f"--pair {a} {ref}: two proxies have no seeds to compare over")
        entries = [own[x] for x in (a, ref) if x in own]  # a proxy has no seeds of its own
        cand = [s for s in entries[0] if all(s in e for e in entries)]
        pa, pr = _predictions(a, cand, predictions, scoring), _predictions(ref, cand, predictions, scoring)
        keep = [i for i in range(len(cand)) if pa[i] is not None and pr[i] is not None]
        pa, pr = [pa[i] for i in keep], [pr[i] for i in keep]
        if len(keep) < 3:
            out.append({"pair": f"{a} - {ref}", "seeds": len(keep), "note": "fewer than 3 paired seeds"})
            continue
        archs = comparable_archs(split[half], truth, pa + pr)
        t = np.array([np.mean(truth[x]) for x in archs])
        xa = np.array([[p[x] for x in archs] for p in pa])
        xr = np.array([[p[x] for x in archs] for p in pr])
        try:
            pw = difference_power(xa, xr, t, level=level, power=power)
        except ValueError as e:
            out.append({"pair": f"{a} - {ref}", "seeds": len(keep), "note": str(e)})
            continue
        joint = seed_arch_bootstrap({"a": xa, "ref": xr}, t, pairs=[("a", "ref")], resamples=resamples)
        lo, hi = joint["a"]["diff_vs_ref"]["ci95"]
        row = {"pair": f"{a} - {ref}", **pw, "joint_ci95": [lo, hi], "model_ci_halfwidth": Z95 * pw["se"],
               "joint_ci_halfwidth": (hi - lo) / 2}
        row["joint_over_model"] = row["joint_ci_halfwidth"] / row["model_ci_halfwidth"] if pw["se"] > 0 else None
        row.update(projections(row, target / z))
        out.append(row)
    return out


def fmt_count(k: float | None) -> str:
    return "-" if k is None else "never" if math.isinf(k) else str(int(k))


def _clean(v):
    """JSON without NaN/inf (null instead)."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="power", description=__doc__.splitlines()[0])
    ap.add_argument("suite")
    ap.add_argument("--pair", nargs=2, action="append", metavar=("ENTRY", "REF"), default=[],
                    help="compare ENTRY with REF (repeatable; default: every entry with the baseline)")
    ap.add_argument("--half", default="report", help="the split's half to measure on (default report)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default: each entry's)")
    ap.add_argument("--target", type=float, default=0.05, help="the difference to detect (default 0.05)")
    ap.add_argument("--power", type=float, default=0.8, help="probability of detecting it (default 0.8)")
    ap.add_argument("--pool-min-seeds", type=int, default=5,
                    help="pairs with at least this many seeds enter the pooled projection (default 5)")
    ap.add_argument("--resamples", type=int, default=2000, help="rounds of the joint bootstrap (default 2000)")
    ap.add_argument("--out", default="", help="also write the rows as JSON here")
    ap.add_argument("--figure", default="", help="also draw the projection (MDE against seeds) as a PNG here")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    try:
        if not 0 < args.target < 2:
            raise SpecError(f"--target {args.target}: a difference in tau lies in (0, 2)")
        if not 0.5 <= args.power < 1:
            raise SpecError(f"--power {args.power}: give a probability in [0.5, 1)")
        if args.resamples < 100:
            raise SpecError(f"--resamples {args.resamples}: use at least 100")
        suite, seeds = load_suite(args.suite, args.seeds)
        pairs = [tuple(p) for p in args.pair]
        if not pairs:
            base = suite.get("baseline")
            if not base:
                raise SpecError(f"{args.suite} has no baseline: name the pairs with --pair ENTRY REF")
            pairs = [(r["label"], base) for r in suite["runs"] if r["label"] != base]
        rows = pair_rows(suite, pairs, args.half, seeds, args.resamples, 0.95, args.power, args.target)
    except SpecError as e:
        print(f"power: error: {e}", file=sys.stderr)
        return 2
    head = ["pair", "seeds", "archs", "diff", "joint 95% CI", "model +-", "joint/model", "sd seed", "sd arch",
            "sd inter", f"MDE ({args.power:.0%})", f"seeds for {args.target} (n, 2n archs)",
            f"archs for {args.target} (S, 2S seeds)"]
    table = []
    for r in rows:
        if "note" in r:
            table.append([r["pair"], str(r["seeds"]), "", "", r["note"], *[""] * 8])
            continue
        lo, hi = r["joint_ci95"]
        ratio = "-" if r["joint_over_model"] is None else f"{r['joint_over_model']:.2f}"
        table.append([r["pair"], str(r["seeds"]), str(r["num_archs"]), f"{r['diff']:+.3f}", f"[{lo:+.3f}, {hi:+.3f}]",
                      f"{r['model_ci_halfwidth']:.3f}", ratio, f"{r['sd_seed']:.3f}", f"{r['sd_arch']:.3f}",
                      f"{r['sd_inter']:.3f}", f"{r['mde']:.3f}",
                      f"{fmt_count(r['seeds_for_target'])}, {fmt_count(r['seeds_for_target_2n'])}",
                      f"{fmt_count(r['archs_for_target'])}, {fmt_count(r['archs_for_target_2s'])}"])
    print(f"{args.suite}: {args.half} half; MDE = the difference found with probability {args.power:.0%} by a "
          f"two-sided 5% test; 'never' = the other factor alone keeps the MDE above {args.target}")
    print(render_table(head, table, args.markdown))
    done = [r for r in rows if "note" not in r and r["seeds"] >= args.pool_min_seeds]
    grid: dict[str, float] = {}
    pooled: dict[str, float] = {}
    if done:  # the variance components averaged over the pairs, projected onto other designs
        pooled = {k: math.sqrt(float(np.mean([r[k] ** 2 for r in done]))) for k in ("sd_seed", "sd_arch", "sd_inter")}

        def mde(S: int, n: int) -> float:
            return detectable_difference(pooled["sd_seed"], pooled["sd_arch"], S, n, pooled["sd_inter"],
                                         power=args.power)

        grid = {f"{S}x{n}": mde(S, n) for S in GRID_SEEDS for n in GRID_ARCHS}
        print(f"\nMDE ({args.power:.0%}) of other designs, seeds x architectures, with the variance components "
              f"averaged over the {len(done)} pairs of >= {args.pool_min_seeds} seeds "
              f"(sd seed {pooled['sd_seed']:.3f}, sd arch {pooled['sd_arch']:.3f}, sd inter {pooled['sd_inter']:.3f}):")
        print(render_table(["seeds", *[f"{n} archs" for n in GRID_ARCHS]],
                           [[str(S), *[f"{grid[f'{S}x{n}']:.3f}" for n in GRID_ARCHS]] for S in GRID_SEEDS],
                           args.markdown))
        if args.figure:
            from distilnas.report import ReportError, plot_power

            S0, n0 = max(r["seeds"] for r in done), max(r["num_archs"] for r in done)
            try:
                plot_power({n: [(S, mde(S, n)) for S in GRID_SEEDS] for n in GRID_ARCHS}, args.figure,
                           args.target, (S0, mde(S0, n0)), args.power)
            except (ReportError, OSError) as e:
                print(f"power: error: cannot draw {args.figure}: {e}", file=sys.stderr)
                return 1
    elif args.figure:
        print(f"power: no figure: no pair has {args.pool_min_seeds} or more seeds", file=sys.stderr)
    if args.out:
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(_clean({"suite": args.suite, "half": args.half, "target": args.target,
                                                         "power": args.power, "rows": rows, "pooled": pooled,
                                                         "grid_mde": grid}), indent=1, allow_nan=False) + "\n")
        except OSError as e:
            print(f"power: error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
