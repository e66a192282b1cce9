"""Run a suite of searches over seeds and rank each supernet against a ground-truth table.

    python benchmarks/run_suite.py benchmarks/suites/nb201_fmnist16.yaml --out runs/suite [--parallel 2]
        [--only spos,cream] [--seeds 0,1,2] [--summary-only]

For every (entry, seed) of the suite: ``distilnas search CONFIG --out OUT/<label>/seed<s> seed=<s>``
(resumed when interrupted, skipped when finished), then ``distilnas score`` of the ground-truth
architectures with the trained supernet, then the ranking metrics against the table (by validation
accuracy, and by validation loss). ``--parallel N`` runs N searches at a time with one torch thread each.
Writes OUT/summary.csv (one row per run) and OUT/summary.json (per entry: mean, std over seeds of every
metric, wall times), and prints a table with the noise ceiling of the ground truth.

A suite file::

    truth: benchmarks/groundtruth/nb201_fmnist16     # a `distilnas bench build` directory
    seeds: [0, 1, 2]
    runs:
      - {label: spos, config: configs/bench/spos_nb201_fmnist16.yaml}
      - {label: rdnas-hamming, config: configs/bench/rdnas_nb201_fmnist16.yaml,
         overrides: [algorithm.sampler=hamming, algorithm.mu=4.8]}
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from distilnas.evaluate.groundtruth import load_truth
from distilnas.evaluate.metrics import align, noise_ceiling, rank_metrics

KEYS = ("kendall_tau", "spearman", "pearson", "top10_tau", "top20_tau", "precision@10", "cpr")


def run_one(label: str, config: str, overrides: list[str], seed: int, out: Path, truth_dir: Path) -> dict:
    """Search, score the ground-truth architectures, rank; returns one summary row."""
    run_dir = out / label / f"seed{seed}"
    env_cmd = [sys.executable, "-m", "distilnas.cli"]
    log = out / label / f"seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ran = False
    if not (run_dir / "result.json").exists():
        ran = True
        resume = ["--resume"] if (run_dir / "checkpoint.pt").exists() else []
        cmd = [*env_cmd, "search", config, "--out", str(run_dir), *resume, f"seed={seed}", "train.threads=1",
               *overrides]
        with open(log, "a") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    scores = run_dir / "gt_scores.jsonl"
    if not scores.exists():
        cmd = [*env_cmd, "score", str(run_dir / "checkpoint.pt"), "--archs", str(truth_dir / "archs.txt"),
               "--out", str(scores), "train.threads=1"]
        with open(log, "a") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    result = json.loads((run_dir / "result.json").read_text())
    truth = load_truth(truth_dir / "table.json")
    rows = [json.loads(line) for line in scores.read_text().splitlines() if line.strip()]
    row = {"label": label, "seed": seed, "train_seconds": result.get("train_seconds"),
           "score_seconds": result.get("score_seconds"), "passes": result.get("passes"),
           "forward_images": result.get("forward_images"), "selected": result.get("arch")}
    for name, pred in (("acc", {r["arch"]: r["accuracy"] for r in rows}),
                       ("loss", {r["arch"]: -r["loss"] for r in rows})):
        _, p, t = align(pred, truth)
        m = rank_metrics(p, t, bootstrap=0)
        row.update({f"{name}_{k}": m[k] for k in KEYS})
    row["wall_seconds"] = round(time.time() - t0, 1) if ran else None  # None: trained by an earlier call
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite")
    ap.add_argument("--out", required=True)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated labels to run (default all)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default the suite's)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown (for docs)")
    ap.add_argument("--summary-only", action="store_true",
                    help="train nothing: summarise the runs that have finished (scored) so far")
    args = ap.parse_args()
    suite = yaml.safe_load(Path(args.suite).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth_dir = Path(suite["truth"])
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(suite["seeds"])
    only = set(args.only.split(",")) if args.only else None
    jobs = [(r["label"], r["config"], list(r.get("overrides", [])), s)
            for r in suite["runs"] if only is None or r["label"] in only for s in seeds]
    if args.summary_only:
        jobs = [j for j in jobs if (out / j[0] / f"seed{j[3]}" / "gt_scores.jsonl").exists()]
        if not jobs:
            sys.exit(f"error: no finished runs under {out}; run the suite without --summary-only first")
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda j: run_one(*j, out, truth_dir), jobs))

    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    truth = load_truth(truth_dir / "table.json")
    ceiling = noise_ceiling({a: v for a, v in truth.items() if len(v) >= 2})
    summary = {"noise_ceiling": ceiling, "entries": {}}
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label]
        entry = {"seeds": [r["seed"] for r in mine]}
        for k in [k for k in mine[0] if k.startswith(("acc_", "loss_")) or k.endswith("seconds")]:
            vals = np.array([r[k] for r in mine if r[k] is not None], dtype=float)
            if not len(vals):
                continue
            entry[k] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                        "values": vals.tolist()}
        summary["entries"][label] = entry
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    print_table(summary, args.markdown)


def print_table(summary: dict, markdown: bool) -> None:
    """Print one row per entry: mean ± std over seeds (and the seeds' values in Markdown)."""
    c = summary["noise_ceiling"]
    print(f"noise ceiling (tau between ground-truth seeds): {c['kendall_tau']:.3f} "
          f"(spearman {c['spearman']:.3f}, top10 {c['top10_tau']:.3f}, top20 {c['top20_tau']:.3f}, n={c['n']}, "
          f"seed pairs {c['seed_pairs']})")
    cols = [("tau (acc)", "acc_kendall_tau"), ("tau (loss)", "loss_kendall_tau"), ("Spearman", "acc_spearman"),
            ("top10 tau", "acc_top10_tau"), ("top20 tau", "acc_top20_tau"), ("P@10", "acc_precision@10")]

    def cell(e: dict, k: str) -> str:  # one seed: its value, no spread
        return f"{e[k]['mean']:.3f}" + (f"±{e[k]['std']:.3f}" if len(e[k]["values"]) > 1 else "")

    if markdown:
        print("| entry | seeds | " + " | ".join(n for n, _ in cols) + " | tau (acc) per seed | train s |")
        print("|---" * (len(cols) + 4) + "|")
        for label, e in summary["entries"].items():
            per_seed = ", ".join(f"{v:.3f}" for v in e["acc_kendall_tau"]["values"])
            train = f"{e['train_seconds']['mean']:.0f}" if "train_seconds" in e else "-"
            print(f"| {label} | {len(e['seeds'])} | " + " | ".join(cell(e, k) for _, k in cols)
                  + f" | {per_seed} | {train} |")
        return
    print(f"{'entry':22s} " + " ".join(f"{n:>13s}" for n, _ in cols) + f" {'train s':>9s}")
    for label, e in summary["entries"].items():
        train = f"{e['train_seconds']['mean']:9.0f}" if "train_seconds" in e else f"{'-':>9s}"
        print(f"{label:22s} " + " ".join(f"{cell(e, k):>13s}" for _, k in cols) + f" {train}")

if __name__ == "__main__":
    main()
