"""benchmarks/run_suite.py: the results JSON computed from committed prediction files alone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _suite_module():
    spec = importlib.util.spec_from_file_location("run_suite", REPO / "benchmarks" / "run_suite.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_summary_from_predictions(tmp_path):
    rs = _suite_module()
    rng = np.random.default_rng(0)
    archs = [f"a{i}" for i in range(30)]
    quality = {a: float(i) for i, a in enumerate(archs)}
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "archs.txt").write_text("\n".join(archs) + "\n")
    (truth / "table.json").write_text(json.dumps({"archs": {a: {"accuracy": [q + rng.normal(), q + rng.normal()]}
                                                            for a, q in quality.items()}}))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"tuning": archs[::2], "report": archs[1::2]}))
    preds = tmp_path / "pred"
    for label, noise in (("spos", 20.0), ("good", 1.0), ("abl", 20.0)):
        for s in (0, 1, 2):
            if label == "abl" and s == 2:
                continue  # an entry that has not finished every seed
            f = preds / label / f"seed{s}.jsonl"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("".join(json.dumps({"arch": a, "accuracy": q + rng.normal(scale=noise), "loss": 1.0}) + "\n"
                                 for a, q in quality.items()))
    suite = {"truth": [str(truth)], "split": str(split), "baseline": "spos",
             "runs": [{"label": "spos"}, {"label": "good"}, {"label": "abl", "compare_to": "good"}]}
    summary = rs.summarize(suite, ["spos", "good", "abl"], [0, 1, 2], preds, resamples=200)
    assert summary["seeds"] == [0, 1]  # paired: the seeds every entry has
    assert summary["status"].startswith("partial: seeds [0, 1] of [0, 1, 2]")
    res = rs.results_json(summary)
    assert res["num_archs"] == 15 and isinstance(res["noise_ceiling"], float)
    good = res["entries"]["good"]
    assert good["seeds"] == [0, 1] and len(good["tau"]) == 2 and good["ci95"][0] < good["mean"] < good["ci95"][1]
    assert good["diff_vs_spos"]["verdict"] == "too few seeds"  # 2 seeds: no verdict yet
    assert good["diff_vs_spos"]["ci95"][0] > 0 and "diff_vs_spos" not in res["entries"]["spos"]
    assert "diff_vs_good" in res["entries"]["abl"] and "tuning_half" in good
    json.dumps(res, allow_nan=False)
