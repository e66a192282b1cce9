"""distilnas report: figures and report.md from a run directory (and the suite's figures)."""

from __future__ import annotations

import copy
import json
import sys

import pytest

from distilnas.cli import main
from distilnas.train.loop import resolve_config, run_search

from conftest import SEARCH_DICT, one_error_line

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def _png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000, path  # a real, non-trivial picture
    return data


def test_report_of_a_search(tmp_path, trained_run, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(trained_run), "--out", str(out)]) == 0
    assert "report.md" in capsys.readouterr().out
    for name in ("training.png", "scores.png"):
        _png(out / name)
    md = (out / "report.md").read_text()
    assert "![training](training.png)" in md and "shared-weight validation accuracy" in md
    assert "distilnas retrain" in md


def test_report_with_truth_and_board(tmp_path, search_dict):
    d = copy.deepcopy(SEARCH_DICT)
    d["algorithm"] = {"name": "cream", "warmup_epochs": 1, "board_size": 3, "update_iter": 2,
                      "board_val_size": 32, "meta_val_batch": 16}
    d["train"]["epochs"] = 3
    run = tmp_path / "cream"
    run_search(resolve_config(d), run, progress=False)
    rows = [json.loads(ln) for ln in (run / "scores.jsonl").read_text().splitlines()]
    truth = tmp_path / "table.json"
    truth.write_text(json.dumps({"archs": {r["arch"]: {"accuracy": [float(i), float(i) + 0.5]}
                                           for i, r in enumerate(rows)}}))
    assert main(["report", str(run), "--truth", str(truth)]) == 0
    for name in ("training.png", "scores.png", "board.png", "truth.png"):
        _png(run / name)
    md = (run / "report.md").read_text()
    assert "Kendall tau" in md and "![board](board.png)" in md


def test_report_errors(tmp_path, capsys, monkeypatch):
    line = one_error_line(capsys, main(["report", str(tmp_path / "nope")]))
    assert "is not a run directory" in line
    line = one_error_line(capsys, main(["report", str(tmp_path)]))
    assert "neither metrics.jsonl nor result.json" in line
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "epoch": 1, "train_loss": 1.0}\n')
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    line = one_error_line(capsys, main(["report", str(tmp_path)]))
    assert "pip install 'distilnas[plot]'" in line


def test_suite_figures(tmp_path):
    from distilnas.report import plot_budget_curve, plot_comparison

    res = {"noise_ceiling": 0.7, "entries": {"spos": {"tau": [0.1, 0.2, 0.3], "mean": 0.2, "ci95": [0.1, 0.3]},
                                             "rdnas": {"tau": [0.3, 0.4, 0.2], "mean": 0.3, "ci95": [0.2, 0.4]}}}
    _png(plot_comparison(res, tmp_path / "cmp.png", best_proxy=("jacob_cov", 0.5)))
    _png(plot_comparison(res, tmp_path / "cmp2.png", partners={"rdnas": ("flops", 0.15)}))  # RD-NAS's teacher
    curves = {"spos": [(6, 0.1, 0.0, 0.2), (12, 0.2, 0.1, 0.3)], "rdnas": [(6, 0.2, 0.1, 0.3), (12, 0.3, 0.2, 0.4)]}
    _png(plot_budget_curve(curves, tmp_path / "budget.png", 0.7, ("jacob_cov", 0.5)))


def test_report_with_too_few_common_architectures(tmp_path, trained_run):
    truth = tmp_path / "t.json"
    truth.write_text(json.dumps({"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": 1.0}))
    from distilnas.report import write_report

    md = write_report(trained_run, truth, tmp_path / "rep").read_text()
    assert "score the table's architectures first" in md and not (tmp_path / "rep" / "truth.png").exists()


def test_report_of_dna_potentials_and_search(tmp_path, capsys):
    import random

    from distilnas.search.potentials import save_potentials, Potentials, Candidate

    rng = random.Random(0)
    blocks = tuple(tuple(Candidate(f"b{i}c{j}", rng.random(), rng.randint(1, 9) * 1000, rng.randint(1, 9) * 10)
                         for j in range(12)) for i in range(4))
    pot = tmp_path / "pot.json"
    save_potentials(Potentials(blocks, fixed_flops=500, fixed_params=20), pot)
    res = tmp_path / "res.json"
    assert main(["dna-search", str(pot), "--max-flops", "20000", "--out", str(res)]) == 0
    assert main(["report", str(pot), "--search", str(res), "--out", str(tmp_path / "rep")]) == 0
    _png(tmp_path / "rep" / "dna_blocks.png")
    _png(tmp_path / "rep" / "dna_pareto.png")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "dna-search" in md and "![dna_pareto](dna_pareto.png)" in md
    capsys.readouterr()
    line = one_error_line(capsys, main(["report", str(pot), "--search", str(pot)]))
    assert "no pareto_front" in line
