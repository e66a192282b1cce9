"""How a supernet's ranking changes while it trains: Kendall tau at every kept snapshot of one or more runs.

    distilnas search configs/bench/spos_nb201_fmnist16.yaml --out runs/spos-snap train.snapshot_every=2
    distilnas search configs/bench/cream_nb201_fmnist16.yaml --out runs/cream-snap train.snapshot_every=2
    python benchmarks/ranking_over_training.py benchmarks/suites/nb201_fmnist16.yaml \\
        --run spos=runs/spos-snap --run cream=runs/cream-snap --half tuning \\
        --out benchmarks/results/ranking_over_training.json --figure docs/img/benchmark/ranking_over_training.png

Several seeds of one method: ``--run spos=runs/spos-s0,runs/spos-s1,runs/spos-s2`` (comma-separated run
directories, one per seed; every label lists its seeds in the same order, so seed k of one label pairs with
seed k of another).

The suite file supplies the ground truth and the tuning/report split (``--half all``: every architecture, for
a suite without a split). Every snapshot
(``RUN/snapshots/epochE.pt``, written by ``train.snapshot_every``) and the final ``checkpoint.pt`` scores the
half's architectures with ``distilnas score`` (``--scoring`` overrides; kept as
``RUN/snapshots/epochE.<half>.jsonl``, so a rerun scores only what is missing), and each point gets its
tau against the seed-averaged ground truth: with one run per label, a 95% interval over architectures
(the seed noise is not in it); with several seeds per label, the mean over seeds with the seed-and-
architecture bootstrap of run_suite.py. Labels given with ``--pair A:B`` get the paired difference per
epoch (same seeds and architectures resampled for both; a verdict needs at least 3 seeds). Used in
issue 12 to see where Cream's ranking parts from SPOS's: during the warm-up (the same training) or once
distillation starts.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import load_truths, read_predictions  # noqa: E402
from steps import interrupted, on_sigterm  # noqa: E402

from distilnas.evaluate.metrics import noise_ceiling, seed_arch_bootstrap  # noqa: E402
from distilnas.fileio import OutputError, atomic_open, prepare_out_dir  # noqa: E402

RESAMPLES = 2000


def snapshots(run: Path) -> list[tuple[int, Path]]:
    """(epoch, checkpoint) of every snapshot of ``run``, plus its final checkpoint, in epoch order."""
    if not (run / "checkpoint.pt").is_file():
        raise SystemExit(f"ranking_over_training: error: {run} has no checkpoint.pt; pass a search run directory")
    out = {int(m.group(1)): p for p in (run / "snapshots").glob("epoch*.pt")
           if (m := re.fullmatch(r"epoch(\d+)\.pt", p.name))}
    from distilnas.train.checkpoint import load_checkpoint

    final = int(load_checkpoint(run / "checkpoint.pt").get("epoch", 0))
    out.setdefault(final, run / "checkpoint.pt")
    return sorted(out.items())


def score(ckpt: Path, epoch: int, run: Path, half: str, archs_file: Path, scoring: list[str]) -> Path:
    """``distilnas score`` of one snapshot (skipped when its scores are there already)."""
    dst = run / "snapshots" / f"epoch{epoch}.{half}.jsonl"
    if not dst.exists():
        dst.parent.mkdir(exist_ok=True)
        rc = _run([sys.executable, "-m", "distilnas.cli", "score", str(ckpt), "--archs", str(archs_file),
                   "--out", str(dst), "train.threads=1", *scoring])
        if rc != 0:  # distilnas printed its one-line reason above
            raise SystemExit(f"ranking_over_training: error: scoring {ckpt} failed (exit {rc}); scored rows are "
                             f"kept, rerun to continue")
    return dst


def _run(cmd: list[str]) -> int:
    """Run ``cmd``; its exit status. Ctrl-C or kill of this script stops it too (it keeps the rows it scored)."""
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise


def main(argv: list[str] | None = None) -> int:
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return _main(argv)
    except KeyboardInterrupt as e:
        return interrupted("ranking_over_training", e, "scored snapshots are kept")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", help="a run_suite.py suite file (its truth and split)")
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=DIR[,DIR...]",
                    help="a search run with snapshots (several: one per seed, paired by position across labels)")
    ap.add_argument("--half", default="tuning", choices=("tuning", "report", "all"),
                    help="the split's half to score, or all (a suite without a split, e.g. the MobileNet one)")
    ap.add_argument("--pair", action="append", default=[], metavar="A:B", help="paired difference A - B per epoch")
    ap.add_argument("--scoring", nargs="*", default=None, help="score overrides (default: the suite's scoring)")
    ap.add_argument("--out", default=None, help="results JSON")
    ap.add_argument("--figure", default=None, help="PNG: tau against epoch per run")
    ap.add_argument("--resamples", type=int, default=RESAMPLES)
    args = ap.parse_args(argv)
    for what, path in (("--out", args.out), ("--figure", args.figure)):  # checked before any scoring
        if path:
            try:
                prepare_out_dir(Path(path).parent, f"the folder of {what}")
            except OutputError as e:
                raise SystemExit(f"ranking_over_training: error: {e}") from None
            if Path(path).is_dir():
                raise SystemExit(f"ranking_over_training: error: {what} {path} is a directory; give a file name")

    suite = yaml.safe_load(Path(args.suite).read_text())
    runs: dict[str, list[Path]] = {}
    for spec in args.run:
        label, sep, paths = spec.partition("=")
        dirs = [Path(d) for d in paths.split(",") if d]
        if not sep or not label or not dirs:
            raise SystemExit(f"ranking_over_training: error: --run {spec!r}: expected LABEL=DIR[,DIR...], "
                             f"e.g. spos=runs/spos")
        if label in runs:
            raise SystemExit(f"ranking_over_training: error: --run {label}=... given twice; list its seeds in one "
                             f"--run, comma-separated")
        runs[label] = dirs
    if len({len(d) for d in runs.values()}) > 1:
        raise SystemExit("ranking_over_training: error: every --run needs the same number of seed directories "
                         f"(paired by position); got {', '.join(f'{k}: {len(d)}' for k, d in runs.items())}")
    pairs = [tuple(p.split(":", 1)) for p in args.pair]
    if any(len(p) != 2 or not set(p) <= set(runs) for p in pairs):
        raise SystemExit(f"ranking_over_training: error: --pair needs A:B with labels among {', '.join(runs)}")
    truth = load_truths(suite)
    if args.half == "all":
        half = list(truth)
    elif not suite.get("split"):
        raise SystemExit(f"ranking_over_training: error: {args.suite} has no split: use --half all")
    else:
        half = json.loads(Path(suite["split"]).read_text())[args.half]
    archs = [a for a in half if a in truth and len(truth[a]) >= 2]
    scoring = [str(o) for o in (suite.get("scoring", []) if args.scoring is None else args.scoring)]
    per_seed = {label: [dict(snapshots(run)) for run in dirs] for label, dirs in runs.items()}
    # a label's epochs: those every one of its seeds has
    epochs_of = {label: sorted(set.intersection(*(set(s) for s in seeds))) for label, seeds in per_seed.items()}
    archs_file = next(iter(runs.values()))[0] / "snapshots" / f"{args.half}_archs.txt"
    archs_file.parent.mkdir(exist_ok=True)
    archs_file.write_text("\n".join(archs) + "\n")

    preds: dict[str, np.ndarray] = {}
    for label, seeds in per_seed.items():
        for epoch in epochs_of[label]:
            rows = []
            for run, ckpts in zip(runs[label], seeds):
                p = read_predictions(score(ckpts[epoch], epoch, run, args.half, archs_file, scoring))
                rows.append([p.get(a, np.nan) for a in archs])
            preds[f"{label}@{epoch}"] = np.array(rows)
    t = np.array([np.mean(truth[a]) for a in archs])
    keep = np.all([np.isfinite(row) for v in preds.values() for row in v], axis=0)
    arrays = {k: v[:, keep] for k, v in preds.items()}
    pair_keys = [(f"{a}@{e}", f"{b}@{e}") for a, b in pairs for e in epochs_of[a] if e in epochs_of[b]]
    boot = seed_arch_bootstrap(arrays, t[keep], baseline=None, pairs=pair_keys, resamples=args.resamples)
    result: dict[str, Any] = {
        "about": "Kendall tau of a supernet's validation accuracy at each snapshot vs the ground truth (mean over "
                 "its training seeds), averaged over the label's search seeds; ci95 from the seed-and-architecture "
                 "bootstrap (over architectures only when a label has one seed) (benchmarks/ranking_over_training.py)",
        "half": args.half, "num_archs": int(keep.sum()), "num_seeds": len(next(iter(runs.values()))),
        "scoring": scoring,
        "noise_ceiling": noise_ceiling({a: truth[a] for a, k in zip(archs, keep) if k})["kendall_tau"],
        "runs": {label: {"dirs": [str(d) for d in runs[label]],
                         "points": [{"epoch": e, "tau": boot[f"{label}@{e}"]["mean"],
                                     "ci95": boot[f"{label}@{e}"]["ci95"],
                                     "tau_per_seed": boot[f"{label}@{e}"]["tau"],
                                     **{f"diff_vs_{b}": boot[f"{label}@{e}"][f"diff_vs_{b}@{e}"]
                                        for a, b in pairs if a == label and f"diff_vs_{b}@{e}" in boot[f"{label}@{e}"]}}
                                    for e in epochs_of[label]]}
                 for label in runs},
    }
    for label, r in result["runs"].items():
        print(f"{label}: " + "  ".join(f"ep{p['epoch']} {p['tau']:.3f}" for p in r["points"]))
        for p in r["points"]:
            for k, d in p.items():
                if k.startswith("diff_vs_"):
                    print(f"  ep{p['epoch']} {k.removeprefix('diff_vs_')}: {d['mean']:+.3f} "
                          f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] {d['verdict']}")
    print(f"{args.half} half: {result['num_archs']} architectures, noise ceiling {result['noise_ceiling']:.3f}")
    if args.out:
        with atomic_open(args.out) as f:  # a kill while writing keeps the previous results whole
            f.write(json.dumps(result, indent=1) + "\n")
    if args.figure:
        from distilnas.report import plot_budget_curve

        curves = {label: [(float(p["epoch"]), p["tau"], *p["ci95"]) for p in r["points"]]
                  for label, r in result["runs"].items()}
        plot_budget_curve(curves, args.figure, result["noise_ceiling"], xlabel="supernet epoch",
                          ylabel=f"Kendall tau ({args.half} half)", log_x=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
