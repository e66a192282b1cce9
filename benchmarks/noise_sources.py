"""Where the noise of a supernet's Kendall tau comes from (issue 11): seed, platform numerics, scoring,
and the sample of architectures, measured on the suite's report half.

    python benchmarks/noise_sources.py benchmarks/suites/nb201_fmnist16.yaml --label spos \\
        --run RUN_DIR [--thread-run RUN_DIR_SAME_SEED_OTHER_THREADS] --out runs/noise \\
        [--json benchmarks/results/nb201_fmnist16_noise.json]

* **scoring**: the trained checkpoint RUN_DIR is scored again with other, equally valid scoring choices:
  other BN-recalibration images (``score.recal_seed``), the other half of the validation images
  (``score.val_offset``), 4x the recalibration batches and every validation image; the spread of tau
  over these is the scoring noise;
* **seed**: the spread of the suite's per-seed taus of ``--label`` (its committed predictions);
* **platform**: RUN_DIR against ``--thread-run``, the same seed trained with another thread count (other
  floating-point rounding, as on another CPU);
* **architecture sample**: the bootstrap spread of one seed's tau over the report half's architectures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import load_truths, read_predictions  # noqa: E402

from distilnas.evaluate.metrics import rank_metrics  # noqa: E402

VARIANTS = {  # name -> score overrides (the preset: 10 recal batches of 256, validation images [0, 5000))
    "preset": [],
    "recal_seed=1": ["score.recal_seed=1"],
    "recal_seed=2": ["score.recal_seed=2"],
    "val_offset=5000": ["score.val_offset=5000"],
    "recal_batches=40": ["score.bn_recal_batches=40"],
    "val_size=10000": ["score.val_size=10000"],
}
EQUIVALENT = ("preset", "recal_seed=1", "recal_seed=2", "val_offset=5000")  # same cost, other draws


def tau(pred: dict[str, float], truth: dict[str, list[float]], archs: list[str]) -> float:
    a = [x for x in archs if x in pred and x in truth and np.isfinite(pred[x])]
    return rank_metrics([pred[x] for x in a], [float(np.mean(truth[x])) for x in a], bootstrap=0)["kendall_tau"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite")
    ap.add_argument("--label", default="spos")
    ap.add_argument("--run", required=True, help="a finished search of the suite (its run directory)")
    ap.add_argument("--thread-run", default=None, help="the same seed trained with another thread count")
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", default=None, help="also write the decomposition here")
    args = ap.parse_args()
    suite = yaml.safe_load(Path(args.suite).read_text())
    split = json.loads(Path(suite["split"]).read_text())
    report = split["report"]
    truth = load_truths(suite)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    archs_file = out / "archs.txt"
    archs_file.write_text("\n".join(report) + "\n")
    exe = [sys.executable, "-m", "distilnas.cli"]
    taus: dict[str, float] = {}
    for name, overrides in VARIANTS.items():
        dst = out / f"{name}.jsonl"
        if not dst.exists():
            subprocess.run([*exe, "score", args.run, "--archs", str(archs_file), "--out", str(dst), "train.threads=1",
                            *overrides], check=True)
        taus[name] = tau(read_predictions(dst), truth, report)
    scoring = [taus[k] for k in EQUIVALENT]
    rows = {"scoring": {"taus": taus, "std": float(np.std(scoring, ddof=1))}}
    pred_dir = Path(suite["predictions"]) / args.label
    seeds = sorted(pred_dir.glob("seed*.jsonl"))
    seed_taus = [tau(read_predictions(p), truth, report) for p in seeds]
    if len(seed_taus) >= 2:
        rows["seed"] = {"taus": seed_taus, "std": float(np.std(seed_taus, ddof=1))}
    if args.thread_run:
        dst = out / "thread_run.jsonl"
        if not dst.exists():
            subprocess.run([*exe, "score", args.thread_run, "--archs", str(archs_file), "--out", str(dst),
                            "train.threads=1"], check=True)
        other = tau(read_predictions(dst), truth, report)
        rows["platform"] = {"taus": [taus["preset"], other], "abs_diff": abs(taus["preset"] - other)}
    pred = read_predictions(out / "preset.jsonl")
    a = [x for x in report if x in pred and x in truth]
    m = rank_metrics([pred[x] for x in a], [float(np.mean(truth[x])) for x in a], bootstrap=2000)
    rows["architectures"] = {"ci95": [m["kendall_tau_lo"], m["kendall_tau_hi"]],
                             "std_approx": (m["kendall_tau_hi"] - m["kendall_tau_lo"]) / (2 * 1.96), "n": len(a)}
    for k, v in rows.items():
        spread = v.get("std", v.get("abs_diff", v.get("std_approx")))
        print(f"{k:14s} spread {spread:.3f}   {json.dumps({kk: vv for kk, vv in v.items() if kk != 'std'})}")
    if args.json:
        Path(args.json).write_text(json.dumps({"run": args.run, "label": args.label, **rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
