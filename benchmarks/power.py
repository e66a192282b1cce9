"""How large a difference in mean tau a suite can detect, and what design would detect a smaller one.

    python benchmarks/power.py benchmarks/suites/nb201_fmnist16.yaml [--pairs fairnas:spos,cream:spos]
        [--half report] [--target 0.05] [--power 0.8] [--out runs/power.json] [--figure runs/power.png]
        [--markdown]

For every compared pair (default: each entry against the suite's baseline, over the seeds both have
committed) the paired difference's noise is split into a seed term and an architecture term
(``distilnas.evaluate.metrics.difference_power``): the spread of the per-seed differences, and a bootstrap over
architectures with the seeds held fixed. From them, the minimum detectable difference (MDE: found with
probability ``--power`` by a two-sided 5% test) at the suite's design, and the seeds (at this many
architectures) or architectures (at this many seeds) that would bring it down to ``--target``. The joint
seed-and-architecture interval that the suite reports is printed beside it as a check of the two-term model.
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
    entry_seeds,
    load_suite,
    load_truths,
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


def needed(sd_fixed_term: float, sd_free: float, target_se: float) -> float:
    """How many units of the free factor bring sqrt(fixed^2 + sd_free^2 / k) down to target_se (inf: never)."""
    room = target_se ** 2 - sd_fixed_term ** 2
    return math.inf if room <= 0 else math.ceil(sd_free ** 2 / room)


def pair_rows(suite: dict, pairs: list[tuple[str, str]], half: str, seeds: list[int], resamples: int,
              level: float, power: float, target: float) -> list[dict]:
    truth = load_truths(suite)
    split = json.loads(Path(suite["split"]).read_text()) if suite.get("split") else {half: list(truth)}
    if half not in split:
        raise SpecError(f"the split has no {half!r} half (it has {', '.join(split)})")
    predictions = Path(suite["predictions"])
    scoring = [str(o) for o in suite.get("scoring", [])]
    own = entry_seeds(suite, seeds)
    out = []
    for a, ref in pairs:
        for lab in (a, ref):
            if lab not in own:
                raise SpecError(f"no entry {lab!r} in the suite (entries: {', '.join(own)})")
        both = [s for s in own[a] if s in own[ref]
                and _committed(predictions, a, s, scoring) and _committed(predictions, ref, s, scoring)]
        if len(both) < 2:
            out.append({"pair": f"{a} - {ref}", "seeds": len(both), "note": "fewer than 2 paired seeds"})
            continue
        pa = [read_predictions(predictions / a / f"seed{s}.jsonl") for s in both]
        pr = [read_predictions(predictions / ref / f"seed{s}.jsonl") for s in both]
        archs = [x for x in split[half] if x in truth and len(truth[x]) >= 2
                 and all(np.isfinite(p.get(x, np.nan)) for p in pa + pr)]
        t = np.array([np.mean(truth[x]) for x in archs])
        xa = np.array([[p[x] for x in archs] for p in pa])
        xr = np.array([[p[x] for x in archs] for p in pr])
        pw = difference_power(xa, xr, t, resamples=resamples, level=level, power=power)
        joint = seed_arch_bootstrap({"a": xa, "ref": xr}, t, pairs=[("a", "ref")], resamples=resamples)
        lo, hi = joint["a"]["diff_vs_ref"]["ci95"]
        z = detectable_difference(1.0, 0.0, 1, 1, level, power)  # z_{1-alpha/2} + z_power
        target_se = target / z
        S, n = pw["seeds"], pw["num_archs"]
        row = {"pair": f"{a} - {ref}", **pw, "joint_ci95": [lo, hi], "model_ci_halfwidth": float(1.959964 * pw["se"]),
               "joint_ci_halfwidth": (hi - lo) / 2}
        if S >= 3:  # two seeds give no usable seed spread to project from
            row.update({"seeds_for_target": needed(pw["sd_arch"] / math.sqrt(n), pw["sd_seed"], target_se),
                        "seeds_for_target_2n": needed(pw["sd_arch"] / math.sqrt(2 * n), pw["sd_seed"], target_se),
                        "archs_for_target": needed(pw["sd_seed"] / math.sqrt(S), pw["sd_arch"], target_se),
                        "archs_for_target_2s": needed(pw["sd_seed"] / math.sqrt(2 * S), pw["sd_arch"], target_se)})
        out.append(row)
    return out


def fmt_count(k: float | None) -> str:
    return "-" if k is None else "never" if math.isinf(k) else str(int(k))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="power", description=__doc__.splitlines()[0])
    ap.add_argument("suite")
    ap.add_argument("--pairs", default="", help="comma-separated a:ref pairs (default: every entry : baseline)")
    ap.add_argument("--half", default="report", help="the split's half to measure on (default report)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default: each entry's)")
    ap.add_argument("--target", type=float, default=0.05, help="the difference to detect (default 0.05)")
    ap.add_argument("--power", type=float, default=0.8, help="probability of detecting it (default 0.8)")
    ap.add_argument("--pool-min-seeds", type=int, default=5,
                    help="pairs with at least this many seeds enter the pooled projection (default 5)")
    ap.add_argument("--resamples", type=int, default=2000)
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
        if args.pairs:
            pairs = []
            for item in args.pairs.split(","):
                a, sep, ref = item.partition(":")
                if not sep or not a or not ref:
                    raise SpecError(f"--pairs: {item!r} is not a:ref (e.g. cream:spos)")
                pairs.append((a, ref))
        else:
            base = suite.get("baseline")
            if not base:
                raise SpecError(f"{args.suite} has no baseline: name the pairs with --pairs a:ref")
            pairs = [(r["label"], base) for r in suite["runs"] if r["label"] != base]
        rows = pair_rows(suite, pairs, args.half, seeds, args.resamples, 0.95, args.power, args.target)
    except SpecError as e:
        print(f"power: error: {e}", file=sys.stderr)
        return 2
    head = ["pair", "seeds", "archs", "diff", "joint 95% CI", "model +-", "sd seed", "sd arch",
            f"MDE ({args.power:.0%})", f"seeds for {args.target} (n, 2n archs)",
            f"archs for {args.target} (S, 2S seeds)"]
    table = []
    for r in rows:
        if "note" in r:
            table.append([r["pair"], str(r["seeds"]), "", "", r["note"], "", "", "", "", "", ""])
            continue
        lo, hi = r["joint_ci95"]
        table.append([r["pair"], str(r["seeds"]), str(r["num_archs"]), f"{r['diff']:+.3f}", f"[{lo:+.3f}, {hi:+.3f}]",
                      f"{r['model_ci_halfwidth']:.3f}", f"{r['sd_seed']:.3f}", f"{r['sd_arch']:.3f}", f"{r['mde']:.3f}",
                      f"{fmt_count(r.get('seeds_for_target'))}, {fmt_count(r.get('seeds_for_target_2n'))}",
                      f"{fmt_count(r.get('archs_for_target'))}, {fmt_count(r.get('archs_for_target_2s'))}"])
    print(f"{args.suite}: {args.half} half; MDE = the difference found with probability {args.power:.0%} by a "
          f"two-sided 5% test; 'never' = the other factor alone keeps the MDE above {args.target}")
    print(render_table(head, table, args.markdown))
    done = [r for r in rows if "note" not in r and r["seeds"] >= args.pool_min_seeds]
    grid = {}
    if done:  # the noise terms pooled over the pairs (root mean square), projected onto other designs
        sd_s = math.sqrt(np.mean([r["sd_seed"] ** 2 for r in done]))
        sd_a = math.sqrt(np.mean([r["sd_arch"] ** 2 for r in done]))
        grid = {f"{S}x{n}": detectable_difference(sd_s, sd_a, S, n, 0.95, args.power)
                for S in GRID_SEEDS for n in GRID_ARCHS}
        print(f"\nMDE ({args.power:.0%}) of other designs, seeds x architectures, with the noise pooled over the "
              f"{len(done)} pairs of >= {args.pool_min_seeds} seeds (sd seed {sd_s:.3f}, sd arch {sd_a:.3f}):")
        print(render_table(["seeds", *[f"{n} archs" for n in GRID_ARCHS]],
                           [[str(S), *[f"{grid[f'{S}x{n}']:.3f}" for n in GRID_ARCHS]] for S in GRID_SEEDS],
                           args.markdown))
    if args.figure and done:
        from distilnas.report import ReportError, plot_power

        curves = {n: [(S, detectable_difference(sd_s, sd_a, S, n, 0.95, args.power)) for S in GRID_SEEDS]
                  for n in GRID_ARCHS}
        S0, n0 = max(r["seeds"] for r in done), done[0]["num_archs"]
        try:
            plot_power(curves, args.figure, args.target, (S0, detectable_difference(sd_s, sd_a, S0, n0, 0.95,
                                                                                   args.power)), args.power)
        except (ReportError, OSError) as e:
            print(f"power: error: cannot draw {args.figure}: {e}", file=sys.stderr)
            return 1
    if args.out:
        clean = [{k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in r.items()} for r in rows]
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"suite": args.suite, "half": args.half, "target": args.target,
                                                  "power": args.power, "rows": clean,
                                                  "grid_mde": grid}, indent=1) + "\n")
        except OSError as e:
            print(f"power: error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
