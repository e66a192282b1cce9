"""benchmarks/run_suite.py: the results JSON computed from committed prediction files alone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

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
    assert summary["seeds"] == [0, 1]  # the seeds every entry has
    assert summary["status"].startswith("partial: abl 2 of 3 seeds")
    res = rs.results_json(summary)
    assert res["num_archs"] == 15 and isinstance(res["noise_ceiling"], float)
    good, abl = res["entries"]["good"], res["entries"]["abl"]
    # an entry over the seeds it has finished; a difference paired over the seeds both sides have
    assert good["seeds"] == [0, 1, 2] and len(good["tau"]) == 3 and good["ci95"][0] < good["mean"] < good["ci95"][1]
    assert good["diff_vs_spos"]["seeds"] == [0, 1, 2] and good["diff_vs_spos"]["verdict"] == "better"
    assert good["diff_vs_spos"]["ci95"][0] > 0 and "diff_vs_spos" not in res["entries"]["spos"]
    assert abl["seeds"] == [0, 1] and abl["diff_vs_good"]["seeds"] == [0, 1]
    assert abl["diff_vs_good"]["verdict"] == "too few seeds" and abl["diff_vs_good"]["ci95"][1] < 0  # 2 seeds
    assert abl["diff_vs_good"]["mean"] == pytest.approx(abl["mean"] - np.mean(good["tau"][:2]))
    assert "tuning_half" in good
    json.dumps(res, allow_nan=False)



def test_a_suite_without_split_reports_every_architecture(tmp_path, capsys):
    rs = _suite_module()
    suite, preds = _tiny_suite(tmp_path, np.random.default_rng(0))
    del suite["split"]
    summary = rs.summarize(suite, ["spos", "good"], [0, 1, 2], preds, resamples=50)
    assert list(summary["halves"]) == ["report"] and summary["halves"]["report"]["num_archs"] == 24
    rs.print_table(summary, markdown=False)
    out = capsys.readouterr().out
    assert "no split, every architecture: 24 architectures" in out and "report half" not in out


def _tiny_suite(tmp_path, rng):
    archs = [f"a{i}" for i in range(24)]
    quality = {a: float(i) for i, a in enumerate(archs)}
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "table.json").write_text(json.dumps({"archs": {a: {"accuracy": [q + rng.normal(), q + rng.normal()]}
                                                            for a, q in quality.items()}}))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"tuning": archs[::2], "report": archs[1::2]}))
    preds = tmp_path / "pred"
    for s in (0, 1, 2):
        for label, noise in (("spos", 10.0), ("good", 1.0)):
            f = preds / label / f"seed{s}.jsonl"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("".join(json.dumps({"arch": a, "accuracy": q + rng.normal(scale=noise)}) + "\n"
                                 for a, q in quality.items()))
            (preds / label / f"seed{s}.result.json").write_text(json.dumps({"scoring": ["score.val_size=10"]}))
    (preds / "proxies").mkdir()
    for name, f in (("up", lambda q: q), ("down", lambda q: -q), ("cube", lambda q: (q - 7.5) ** 3)):
        (preds / "proxies" / f"{name}.jsonl").write_text(  # right, backwards, right on another scale
            "".join(json.dumps({"arch": a, "score": f(q), "seconds": 0.1}) + "\n" for a, q in quality.items()))
    return {"truth": [str(truth)], "split": str(split), "baseline": "spos", "scoring": ["score.val_size=10"],
            "proxies": ["up", "down", "up+cube"], "compare": [["good", "proxy:up"]],
            "runs": [{"label": "spos"}, {"label": "good"}, {"label": "later"}]}, preds


def test_proxies_pair_with_every_seed_and_rank_averages(tmp_path):
    rs = _suite_module()
    suite, preds = _tiny_suite(tmp_path, np.random.default_rng(1))
    summary = rs.summarize(suite, ["spos", "good", "later"], [0, 1, 2], preds, resamples=200)
    # 'later' has no predictions yet: the summary pairs what exists but is not complete
    assert summary["status"].startswith("partial") and "later 0 of 3 seeds" in summary["status"]
    res = rs.results_json(summary)
    up, down, avg = (res["entries"][f"proxy:{n}"] for n in ("up", "down", "up+cube"))
    assert up["tau"] == [up["tau"][0]] * 3 and up["mean"] > 0.8 and down["mean"] < -0.8
    assert avg["tau"] == up["tau"]  # the rank average of two proxies with the same order has that order
    assert "diff_vs_proxy:up" in res["entries"]["good"] and up["diff_vs_spos"]["verdict"] == "better"


def test_predictions_scored_another_way_are_not_used(tmp_path):
    rs = _suite_module()
    suite, preds = _tiny_suite(tmp_path, np.random.default_rng(2))
    assert rs._committed(preds, "good", 0, ["score.val_size=10"]) is not None
    assert rs._committed(preds, "good", 0, []) is None  # another scoring design: redo
    suite["scoring"] = ["score.val_size=20"]
    summary = rs.summarize(suite, ["spos", "good"], [0, 1, 2], preds, resamples=50)
    assert summary["seeds"] == [] and summary["status"].startswith("partial")


def test_suite_figures_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    rs = _suite_module()
    suite, preds = _tiny_suite(tmp_path, np.random.default_rng(3))
    suite.update({"figure": str(tmp_path / "cmp.png"), "budget_figure": str(tmp_path / "budget.png"),
                  "budget": {"method": {6: "spos", 12: "good"}}})
    summary = rs.summarize(suite, ["spos", "good"], [0, 1, 2], preds, resamples=50)
    rs.write_figures(suite, summary)
    for name in ("cmp.png", "budget.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ranking_over_training_scores_every_snapshot(tmp_path, search_dict, monkeypatch):
    """benchmarks/ranking_over_training.py: every snapshot plus the final checkpoint is scored once (a
    rerun scores nothing), each gets a tau and interval, and a run paired with itself differs by 0."""
    import random
    import subprocess

    from distilnas.spaces import NB201Config, NB201Space
    from distilnas.train.loop import resolve_config, run_search

    search_dict["train"]["epochs"] = 2
    search_dict["train"]["snapshot_every"] = 1
    run = tmp_path / "run"
    run_search(resolve_config(search_dict), run, progress=False)
    space = NB201Space(NB201Config(**{k: v for k, v in search_dict["space"].items() if k != "name"}))
    rng = random.Random(0)
    archs = list(dict.fromkeys(str(space.sample(rng)) for _ in range(40)))[:12]
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "table.json").write_text(json.dumps({"archs": {a: {"accuracy": [i, i + 0.5]} for i, a in enumerate(archs)}}))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"tuning": archs[:8], "report": archs[8:]}))
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"truth": [str(truth)], "split": str(split), "scoring": ["score.val_size=32"]}))
    spec = importlib.util.spec_from_file_location("rot", REPO / "benchmarks" / "ranking_over_training.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    calls = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(mod.subprocess, "Popen", lambda cmd, **kw: calls.append(cmd) or real_popen(cmd, **kw))
    out = tmp_path / "rot.json"
    argv = [str(suite), "--run", f"a={run}", "--run", f"b={run}", "--pair", "a:b", "--out", str(out),
            "--figure", str(tmp_path / "rot.png"), "--resamples", "50"]
    assert mod.main(argv) == 0
    assert len(calls) == 2 and all("score.val_size=32" in c for c in calls)  # epochs 1 and 2 (the final one)
    res = json.loads(out.read_text())
    assert res["half"] == "tuning" and res["num_archs"] == 8
    pts = res["runs"]["a"]["points"]
    assert [p["epoch"] for p in pts] == [1, 2] and all(-1 <= p["tau"] <= 1 for p in pts)
    assert all(p["diff_vs_b"]["mean"] == 0 and p["diff_vs_b"]["verdict"] == "too few seeds" for p in pts)
    assert (tmp_path / "rot.png").stat().st_size > 0
    calls.clear()
    assert mod.main(argv) == 0 and calls == []  # everything scored already
    # several seeds per label (the same run three times here): mean over seeds, a verdict with 3 seeds
    argv3 = [str(suite), "--run", f"a={run},{run},{run}", "--run", f"b={run},{run},{run}", "--pair", "a:b",
             "--out", str(out), "--resamples", "50"]
    assert mod.main(argv3) == 0 and calls == []  # the snapshots' scores are reused
    res3 = json.loads(out.read_text())
    assert res3["num_seeds"] == 3 and res3["runs"]["a"]["dirs"] == [str(run)] * 3
    for p1, p3 in zip(pts, res3["runs"]["a"]["points"]):
        assert p3["tau_per_seed"] == [p1["tau"]] * 3 and p3["tau"] == pytest.approx(p1["tau"])
        assert p3["diff_vs_b"]["mean"] == 0 and p3["diff_vs_b"]["verdict"] == "no evidence"
    with pytest.raises(SystemExit, match="same number of seed directories"):
        mod.main([str(suite), "--run", f"a={run},{run}", "--run", f"b={run}"])
    with pytest.raises(SystemExit, match="given twice"):
        mod.main([str(suite), "--run", f"a={run}", "--run", f"a={run}"])
    with pytest.raises(SystemExit, match="LABEL=DIR"):
        mod.main([str(suite), "--run", str(run)])
    with pytest.raises(SystemExit, match="--pair"):
        mod.main([str(suite), "--run", f"a={run}", "--pair", "a:c"])
    with pytest.raises(SystemExit, match="no checkpoint.pt"):
        mod.main([str(suite), "--run", f"a={tmp_path}"])
    # --half all: every architecture of the table, with or without a split; a suite without one needs it
    assert mod.main([str(suite), "--run", f"a={run}", "--half", "all", "--out", str(out), "--resamples", "50"]) == 0
    assert json.loads(out.read_text())["num_archs"] == 12 and len(calls) == 2  # all 12 scored once per epoch
    nosplit = tmp_path / "nosplit.yaml"
    nosplit.write_text(json.dumps({"truth": [str(truth)], "scoring": ["score.val_size=32"]}))
    with pytest.raises(SystemExit, match="no split: use --half all"):
        mod.main([str(nosplit), "--run", f"a={run}"])


def test_ranking_over_training_interrupted_stops_its_scoring(tmp_path, monkeypatch, capsys):
    """Ctrl-C (or kill) while a snapshot is being scored: the scoring command is stopped too, and the script
    says how to continue."""
    import importlib.util
    import subprocess

    spec = importlib.util.spec_from_file_location("ranking_over_training", REPO / "benchmarks" / "ranking_over_training.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    stopped = []

    class Interrupted:
        def __init__(self, cmd, **kw):
            self.cmd = cmd

        def wait(self):
            if not stopped:
                raise KeyboardInterrupt  # Ctrl-C arrives while the command runs
            return -15

        def terminate(self):
            stopped.append(self.cmd[3])

    monkeypatch.setattr(subprocess, "Popen", Interrupted)
    monkeypatch.setattr(mod, "_main", lambda argv: mod.score(tmp_path / "ck.pt", 3, tmp_path, "all", tmp_path / "a.txt", []))
    assert mod.main([]) == 130 and stopped == ["score"]
    assert "interrupted; rerun the same command to continue" in capsys.readouterr().err


def test_ranking_over_training_checks_its_outputs_before_scoring(tmp_path, monkeypatch):
    import importlib.util
    import subprocess

    spec = importlib.util.spec_from_file_location("ranking_over_training", REPO / "benchmarks" / "ranking_over_training.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("scored before checking its outputs"))
    (tmp_path / "afile").write_text("")
    for flag, path, msg in (("--out", tmp_path, "is a directory; give a file name"),
                            ("--figure", tmp_path / "afile" / "f.png", "is a file, not a directory")):
        with pytest.raises(SystemExit, match=msg):
            mod.main(["suite.yaml", "--run", f"a={tmp_path}", flag, str(path)])


def test_board_truth_places_the_board_in_the_ground_truth(tmp_path, capsys):
    """benchmarks/board_truth.py: the boards' paths listed once each; their standalone accuracy placed
    among the sampled cells' (percentile, share below the median) and their op mix counted."""
    spec = importlib.util.spec_from_file_location("board_truth", REPO / "benchmarks" / "board_truth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    good = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    bad = "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|"
    preds = tmp_path / "cream"
    preds.mkdir()
    for s, board in ((0, [good, bad]), (1, [good])):
        (preds / f"seed{s}.result.json").write_text(json.dumps(
            {"arch": good, "board": [{"arch": a, "accuracy": 80.0 - i} for i, a in enumerate(board)]}))
    (preds / "seed2.result.json").write_text(json.dumps({"arch": good}))  # not a Cream run: no board
    boards_gt = tmp_path / "boards"
    boards_gt.mkdir()
    (boards_gt / "runs.jsonl").write_text(json.dumps({"arch": good, "seed": 0, "accuracy": 90.0}) + "\n"
                                          + json.dumps({"arch": bad, "seed": 0, "accuracy": 10.0}) + "\n")
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "table.json").write_text(json.dumps({"archs": {f"a{i}": {"accuracy": [float(i), 0.0]} for i in range(100)}}))
    assert mod.main(["archs", str(preds)]) == 0
    assert capsys.readouterr().out.split() == [good, bad]
    assert mod.main(["compare", str(preds), str(boards_gt), "--truth", str(truth)]) == 0
    out = capsys.readouterr().out
    assert "seed 0: 2 of 2 board paths trained, standalone 50.00%" in out and "(1 of 2 below the median)" in out
    assert "all boards: 3 paths, standalone 63.33%" in out and "33% below" in out
    assert "none 22%" in out and "nor_conv_3x3 67%" in out and "skip_connect 11%" in out  # 4, 12, 2 of 18 edges
    with pytest.raises(SystemExit, match="no seed"):
        mod.main(["archs", str(tmp_path)])


def test_pick_truth_compares_picks_paired_by_search_seed(tmp_path, capsys):
    """benchmarks/pick_truth.py: each method's picks (one per search seed) looked up in the picks' ground
    truth (mean over training seeds), with the paired difference from the first method."""
    spec = importlib.util.spec_from_file_location("pick_truth", REPO / "benchmarks" / "pick_truth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    acc = {"p0": 80.0, "p1": 82.0, "p2": 84.0, "q0": 81.0, "q1": 83.0, "q2": 85.0}
    for method, prefix in (("spos", "p"), ("cream", "q")):
        d = tmp_path / method
        d.mkdir()
        for s in range(3):
            (d / f"seed{s}.result.json").write_text(json.dumps({"arch": f"{prefix}{s}"}))
    picks_gt = tmp_path / "picks"
    picks_gt.mkdir()
    (picks_gt / "runs.jsonl").write_text("".join(json.dumps({"arch": a, "seed": t, "accuracy": v + (t - 0.5)}) + "\n"
                                                 for a, v in acc.items() for t in (0, 1)))
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "table.json").write_text(json.dumps({"archs": {f"a{i}": {"accuracy": [70.0 + i / 5]} for i in range(100)}}))
    assert mod.main(["archs", str(tmp_path / "spos"), str(tmp_path / "cream")]) == 0
    assert capsys.readouterr().out.split() == ["p0", "p1", "p2", "q0", "q1", "q2"]
    assert mod.main(["compare", str(tmp_path / "spos"), str(tmp_path / "cream"), "--picks", str(picks_gt),
                     "--truth", str(truth), "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "spos: 82.00%" in out and "over 3 search seeds (sd 2.00)" in out
    assert "cream: 83.00%" in out and "vs spos +1.00 [+1.00, +1.00] over 3 paired seeds: better" in out
    assert "(sd 2.00), percentile 60" in out and "percentile 65; vs spos" in out  # among cells at 70.0, 70.2, ..., 89.8%


# -- steps entries (a pipeline of distilnas commands ranks the architectures, e.g. DNA) -----------------------
class FakeProc:
    """A stand-in for subprocess.Popen: records the command; ``wait`` does what the command would (``effect``)
    and exits with 0."""

    def __init__(self, calls: list, effect):
        self.calls, self.effect = calls, effect

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        proc = FakeProc(self.calls, self.effect)
        proc.cmd = cmd
        return proc

    def wait(self):
        self.effect(self.cmd)
        return 0


def fake_distilnas(cmd):
    """What the steps' commands leave behind: result.json (train, search), potentials (dna-merge), scores
    (dna-score: the truth's order plus a little noise, per search seed)."""
    import time

    sub, argv = cmd[3], cmd[4:]
    out = Path(argv[argv.index("--out") + 1])
    if sub in ("train", "search"):
        time.sleep(0.3 if sub == "train" else 0)  # a teacher takes a while: another seed must wait for it
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps({"arch": "x", "seconds": 5.0} if sub == "train" else
                                                    {"arch": "x", "train_seconds": 2.0, "score_seconds": 1.0}))
    elif sub == "dna-merge":
        out.write_text("{}")
    elif sub == "dna-score":
        seed = int(out.parent.name.removeprefix("seed"))
        rng = np.random.default_rng(seed)
        archs = Path(argv[argv.index("--archs") + 1]).read_text().split()
        out.write_text("".join(json.dumps({"arch": a, "score": int(a[1:]) + rng.normal(scale=2.0)}) + "\n"
                               for a in archs))


def _steps_suite(tmp_path, search_dict, steps=None, scores=None, **entry):
    """A suite with one steps entry (teacher shared by the seeds, two block searches, merge, dna-score)
    ranking 24 ground-truth architectures; its path, and the truth's quality per architecture."""
    import yaml

    archs = [f"a{i}" for i in range(24)]
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "archs.txt").write_text("\n".join(archs) + "\n")
    (truth / "table.json").write_text(json.dumps({"archs": {a: {"accuracy": [i, i + 0.5]} for i, a in enumerate(archs)}}))
    (tmp_path / "split.json").write_text(json.dumps({"tuning": archs[::2], "report": archs[1::2]}))
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(search_dict))
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump({"recipe": {"epochs": 1}}))
    search = str(tmp_path / "search.yaml")
    if steps is None:
        steps = [["train", "k3e6", "--space", "mobilenet", "--config", str(tmp_path / "teacher.yaml"), "--out",
                  "{suite_out}/teacher", "threads=1"],
                 ["search", search, "--out", "{out}/block0", "algorithm.name=spos", "seed={seed}"],
                 ["search", search, "--out", "{out}/block1", "seed={seed}"],
                 ["dna-merge", "{out}/block0", "{out}/block1", "--out", "{out}/potentials.json"]]
    if scores is None:
        scores = ["dna-score", "{out}/potentials.json", "--archs", "{archs}", "--out", "{scores}"]
    run = {"label": "dna", "steps": steps, **({"scores": scores} if scores else {}), **entry}
    suite = {"truth": [str(truth)], "split": str(tmp_path / "split.json"), "predictions": str(tmp_path / "pred"),
             "scoring": ["score.val_size=10"], "seeds": [0, 1], "runs": [run]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path, suite


def _records(path):
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_steps_entry_runs_once_shares_the_teacher_and_is_summarized(tmp_path, search_dict, monkeypatch):
    import subprocess
    import sys

    rs = _suite_module()
    monkeypatch.setattr(sys.modules["steps"], "WAIT_SECONDS", 0.05)
    path, suite = _steps_suite(tmp_path, search_dict)
    out, calls = tmp_path / "out", []
    monkeypatch.setattr(subprocess, "Popen", FakeProc(calls, fake_distilnas))
    assert rs.main([str(path), "--out", str(out), "--parallel", "2", "--resamples", "50"]) == 0
    # the shared teacher trained once (the other seed waited for it), every other command once per seed
    assert [c[3] for c in calls].count("train") == 1
    assert sorted(c[3] for c in calls if c[3] != "train") == sorted(["search", "search", "dna-merge", "dna-score"] * 2)
    exe = [sys.executable, "-m", "distilnas.cli"]
    # the list of architectures is the suite's own: another suite run into the same --out keeps its list
    assert (out / f"{path.stem}.truth_archs.txt").read_text().split() == rs.all_archs(suite)
    assert not (out / "truth_archs.txt").exists() and not list(out.glob("*.partial"))
    # so are its summaries
    assert (out / f"{path.stem}.summary.csv").read_text().startswith("label,") and not (out / "summary.csv").exists()
    for s in (0, 1):  # placeholders: {out}, {seed}, {suite_out}, {archs}, {scores}
        d = out / "dna" / f"seed{s}"
        assert [*exe, "search", str(tmp_path / "search.yaml"), "--out", str(d / "block0"), "algorithm.name=spos",
                f"seed={s}"] in calls
        assert [*exe, "dna-score", str(d / "potentials.json"), "--archs", str(out / f"{path.stem}.truth_archs.txt"), "--out",
                str(d / "gt_scores.jsonl")] in calls
        recs = _records(d / "steps.jsonl")
        assert [r["step"] for r in recs] == [0, 1, 2, 3, 4] and recs[0]["argv"][-2:] == [str(out / "teacher"), "threads=1"]
        meta = json.loads((tmp_path / "pred" / "dna" / f"seed{s}.result.json").read_text())
        assert meta["scoring"] == ["score.val_size=10"]
        assert meta["train_seconds"] == pytest.approx(sum(r["seconds"] for r in recs[:4]), abs=0.05)
        assert (tmp_path / "pred" / "dna" / f"seed{s}.jsonl").read_text() == (d / "gt_scores.jsonl").read_text()
    assert 5.0 in [_records(out / "dna" / f"seed{s}" / "steps.jsonl")[0]["seconds"] for s in (0, 1)]  # the waiter's
    assert not (out / "teacher.lock").exists()
    # the predictions are what summarize reads, like a search entry's
    summary = rs.summarize(suite, ["dna"], [0, 1], tmp_path / "pred", resamples=50)
    assert summary["status"] == "complete" and summary["seeds"] == [0, 1]
    dna = summary["halves"]["report"]["entries"]["dna"]
    assert dna["seeds"] == [0, 1] and dna["mean"] > 0.5
    assert json.loads((out / f"{path.stem}.summary.json").read_text())["halves"]["report"]["entries"]["dna"]["tau"] == dna["tau"]
    calls.clear()
    assert rs.main([str(path), "--out", str(out), "--resamples", "50"]) == 0 and calls == []  # nothing runs again


def test_killed_steps_entry_resumes(tmp_path, search_dict, monkeypatch):
    """A steps.jsonl with only the first steps (killed during the second search): the rest runs, the killed
    search with --resume; a finished, recorded entry without predictions is only copied; lost scores rerun."""
    import subprocess
    import sys

    rs = _suite_module()
    path, _ = _steps_suite(tmp_path, search_dict)
    out, calls = tmp_path / "out", []
    d = out / "dna" / "seed0"
    fake_distilnas([*"xyz", "train", "--out", str(out / "teacher")])
    fake_distilnas([*"xyz", "search", "--out", str(d / "block0")])
    (d / "block1").mkdir()
    (d / "block1" / "checkpoint.pt").write_bytes(b"")
    cmds = rs.entry_commands(yaml_load(path)["runs"][0], 0, out, out / f"{path.stem}.truth_archs.txt")
    (d / "steps.jsonl").write_text("".join(json.dumps({"step": j, "argv": cmds[j], "seconds": sec}) + "\n"
                                           for j, sec in ((0, 100.0), (1, 200.0))))
    monkeypatch.setattr(subprocess, "Popen", FakeProc(calls, fake_distilnas))
    assert rs.main([str(path), "--out", str(out), "--seeds", "0", "--resamples", "50"]) == 0
    exe = [sys.executable, "-m", "distilnas.cli"]
    assert calls == [[*exe, "search", "--resume", *cmds[2][1:]], [*exe, *cmds[3]], [*exe, *cmds[4]]]
    meta = json.loads((tmp_path / "pred" / "dna" / "seed0.result.json").read_text())
    assert meta["train_seconds"] == pytest.approx(300.0, abs=0.2) and meta["commands"] == cmds
    # predictions lost (not committed), run directory finished: nothing runs, the scores are copied again
    for f in (tmp_path / "pred" / "dna").iterdir():
        f.unlink()
    calls.clear()
    assert rs.main([str(path), "--out", str(out), "--seeds", "0", "--resamples", "50"]) == 0 and calls == []
    assert (tmp_path / "pred" / "dna" / "seed0.jsonl").exists()
    # scores recorded but gone (or never written in full): only the scores command runs again
    for f in (tmp_path / "pred" / "dna").iterdir():
        f.unlink()
    (d / "gt_scores.jsonl").unlink()
    assert rs.main([str(path), "--out", str(out), "--seeds", "0", "--resamples", "50"]) == 0
    assert calls == [[*exe, *cmds[4]]] and (tmp_path / "pred" / "dna" / "seed0.jsonl").exists()


def yaml_load(path):
    import yaml

    return yaml.safe_load(Path(path).read_text())


@pytest.mark.parametrize("change, message", [
    ({"steps": [["bash", "-c", "touch pwned"]]}, "entry dna: steps\\[0\\]: 'bash' is not a distilnas subcommand"),
    ({"steps": [["search", "no.yaml", "--out", "{out}/b"]]}, "steps\\[0\\]: config file 'no.yaml' not found"),
    ({"steps": [["dna-merge", "{outdir}/b", "--out", "{out}/p.json"]]},
     "steps\\[0\\]: unknown placeholder \\{outdir\\} in '\\{outdir\\}/b'"),
    ({"scores": ["dna-score", "{out}/p.json", "--archs", "{archs}", "--out", "{score}"]},
     "scores: unknown placeholder \\{score\\}"),
    ({"scores": []}, "entry dna: a steps entry needs scores"),
    ({"scores": ["dna-score", "{out}/p.json", "--archs", "{archs}", "--out", "{out}/s.jsonl"]},
     "scores must write the predictions to \\{scores\\}"),
    ({"scores": ["dna-score", "{out}/p.json", "--archs", "{archs}", "--outt", "{scores}"]},
     "scores: distilnas dna-score: error: .*required: --out"),
    ({"steps": [["dna-merge", "{out}/b", "--out", "{suite_out}/p.json"]]},
     "steps\\[0\\]: --out .*p.json is outside the run directory .*only search, train, retrain, random-search"),
    ({"config": "x.yaml"}, "entry dna: needs exactly one of config, steps, got config, steps"),
    ({"pick": "{out}/r.json"}, "entry dna: unknown key 'pick' for a steps entry"),
])
def test_bad_steps_entries_are_one_line_before_anything_runs(tmp_path, search_dict, monkeypatch, capsys, change,
                                                             message):
    import re
    import subprocess

    rs = _suite_module()
    entry = {k: v for k, v in change.items() if k not in ("steps", "scores")}
    path, _ = _steps_suite(tmp_path, search_dict, steps=change.get("steps"), scores=change.get("scores"), **entry)

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a command ran: {args[0]}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert rs.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("run_suite: error: "), err
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text,message", [
    (None, "suite file .* not found"),
    ("seeds: [0\n", "is not valid YAML"),
    ("- a\n- b\n", "expected a mapping of suite keys"),
    ("truth: [gt]\nruns: []\ntruht: x\n", "unknown key 'truht'"),
    ("truth: [gt]\n", "missing key 'runs'"),
    ("truth: [nowhere]\nruns: []\n", "ground-truth folder nowhere not found"),
    ("truth: [gt]\nseeds: [0, -1]\nruns: []\n", "non-negative"),
    ("truth: [gt]\nseeds: [zero]\nruns: []\n", "whole numbers"),
])
def test_bad_suite_files_are_one_line(tmp_path, monkeypatch, capsys, text, message):
    import re

    rs = _suite_module()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gt").mkdir()
    path = tmp_path / "suite.yaml"
    if text is not None:
        path.write_text(text)
    assert rs.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("run_suite: error: "), err
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "out").exists()


def test_compute_spent_sums_recorded_seconds(tmp_path, capsys):
    """benchmarks/compute_spent.py: searches' train + score seconds per label, builds' run seconds per folder."""
    spec = importlib.util.spec_from_file_location("compute_spent", REPO / "benchmarks" / "compute_spent.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    preds = tmp_path / "suite"
    (preds / "spos").mkdir(parents=True)
    for s, (tr, sc) in enumerate([(3000.0, 600.0), (2400.0, None)]):
        (preds / "spos" / f"seed{s}.result.json").write_text(json.dumps({"train_seconds": tr, "score_seconds": sc}))
    (preds / "spos" / "seed2.result.json").write_text("{not json")  # a half-written file is skipped
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "runs.jsonl").write_text("".join(json.dumps({"arch": "a", "seed": s, "seconds": 1800.0}) + "\n"
                                           for s in range(2)) + '{"arch": "b", "se')
    assert mod.main([str(preds), str(gt)]) == 0
    out = capsys.readouterr().out
    assert "suite/spos" in out and "2 runs" in out and "1.67 CPU-h" in out  # (3000 + 600 + 2400) / 3600
    assert "gt" in out and "1.00 CPU-h" in out and "total 2.67 CPU-h" in out
    assert mod.main([str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    # a search-quality results file: each entry's search (when it searched) and its retrainings
    sq = tmp_path / "search_quality_x.json"
    sq.write_text(json.dumps({"entries": [
        {"label": "cream", "search_seconds": 1800.0, "retrain_seconds": [900.0, 900.0, None]},
        {"label": "hand", "search_seconds": None, "retrain_seconds": [1800.0]}]}))
    assert mod.main([str(sq), str(gt)]) == 0
    out = capsys.readouterr().out
    assert "search_quality_x/cream" in out and "3 runs" in out and "search_quality_x/hand" in out
    assert "1.50 CPU-h" in out and "total 2.50 CPU-h" in out  # search quality 1.00 + 0.50; with gt's 1.00
    (tmp_path / "other.json").write_text('{"entries": {"spos": {}}}')  # a suite's results, not search quality
    assert mod.main([str(tmp_path / "other.json")]) == 2
    assert "not a search-quality results file" in capsys.readouterr().err


def test_only_with_an_unknown_label_is_one_line(tmp_path, monkeypatch, capsys):
    rs = _suite_module()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gt").mkdir()
    (tmp_path / "c.yaml").write_text("seed: 0\n")
    path = tmp_path / "suite.yaml"
    path.write_text("truth: [gt]\nseeds: [0]\nruns:\n  - {label: spos, config: c.yaml}\n")
    assert rs.main([str(path), "--out", str(tmp_path / "out"), "--only", "spos,cream-e48"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"run_suite: error: --only names cream-e48, not an entry of {path}; its entries: spos"]
    assert not (tmp_path / "out").exists()


def test_ensembles_rank_average_an_entry_with_a_proxy_per_seed(tmp_path):
    from scipy.stats import kendalltau, rankdata

    rs = _suite_module()
    suite, preds = _tiny_suite(tmp_path, np.random.default_rng(4))
    suite["ensembles"] = [["spos", "proxy:down"], ["good", "later"]]  # 'later' has nothing yet: left out
    suite["compare"] = [["avg:spos+proxy:down", "proxy:down"]]
    summary = rs.summarize(suite, ["spos", "good", "later"], [0, 1, 2], preds, resamples=100)
    ens = summary["halves"]["report"]["entries"]["avg:spos+proxy:down"]
    assert "avg:good+later" not in summary["halves"]["report"]["entries"]
    assert ens["seeds"] == [0, 1, 2] and "diff_vs_spos" in ens and "diff_vs_proxy:down" in ens
    # by hand, seed 1: ranks over every scored architecture, averaged, then tau on the report half
    spos = rs.read_predictions(preds / "spos" / "seed1.jsonl")
    down = rs.read_predictions(preds / "proxies" / "down.jsonl")
    archs = sorted(spos)
    avg = dict(zip(archs, (rankdata([spos[a] for a in archs]) + rankdata([down[a] for a in archs])) / 2))
    report = json.loads(Path(suite["split"]).read_text())["report"]
    truth = rs.load_truths(suite)
    tau = kendalltau([avg[a] for a in report], [np.mean(truth[a]) for a in report])[0]
    assert ens["tau"][1] == pytest.approx(tau)
    # a backwards proxy drags the supernet's ranking down, and the average lies between the two
    assert summary["halves"]["report"]["entries"]["proxy:down"]["mean"] < ens["mean"]


@pytest.mark.parametrize("ens, msg", [([["spos"]], "lists of two or more"), ("spos", "lists of two or more"),
                                      ([["spos", "proxy:nope"]], "'proxy:nope' is neither"),
                                      ([["spos", "sopos"]], "'sopos' is neither")])
def test_bad_ensembles_are_one_line_errors(tmp_path, ens, msg):
    import yaml

    rs = _suite_module()
    suite, _ = _tiny_suite(tmp_path, np.random.default_rng(5))
    suite["ensembles"] = ens
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(rs.SpecError, match=msg):
        rs.load_suite(str(path))


def test_an_entry_with_its_own_seeds(tmp_path):
    """An entry's ``seeds`` key (e.g. the budget curve's 12-epoch point, the main suite's 8 seeds): its mean
    is over its own seeds, its differences over the seeds both sides have, and the suite is complete."""
    rs = _suite_module()
    rng = np.random.default_rng(6)
    suite, preds = _tiny_suite(tmp_path, rng)
    for s in (3, 4):  # two more seeds of 'good' only
        src = (preds / "good" / "seed0.jsonl").read_text()
        (preds / "good" / f"seed{s}.jsonl").write_text(src)
        (preds / "good" / f"seed{s}.result.json").write_text(json.dumps({"scoring": ["score.val_size=10"]}))
    suite["runs"] = [{"label": "spos"}, {"label": "good", "seeds": [0, 1, 2, 3, 4]}]
    suite["proxies"], suite["compare"] = [], []
    summary = rs.summarize(suite, ["spos", "good"], [0, 1, 2], preds, resamples=50)
    assert summary["status"] == "complete" and summary["seeds"] == [0, 1, 2]
    good = summary["halves"]["report"]["entries"]["good"]
    assert good["seeds"] == [0, 1, 2, 3, 4] and len(good["tau"]) == 5
    assert good["diff_vs_spos"]["seeds"] == [0, 1, 2]
    assert rs.entry_seeds(suite, [0, 1, 2]) == {"spos": [0, 1, 2], "good": [0, 1, 2, 3, 4]}
    assert rs.entry_seeds(suite, [1], explicit=True) == {"spos": [1], "good": [1]}  # --seeds wins
    suite["runs"][1]["seeds"] = [5]  # a seed it has not run: partial
    assert rs.summarize(suite, ["spos", "good"], [0, 1, 2], preds, resamples=50)["status"].startswith(
        "partial: good 0 of 1 seeds")


@pytest.mark.parametrize("bad", [[], "0,1", [-1], [0.5]])
def test_bad_entry_seeds_are_one_line_errors(tmp_path, bad):
    rs = _suite_module()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 0\n")
    with pytest.raises(rs.SpecError, match="entry a: seeds must be a non-empty list"):
        rs.check_runs([{"label": "a", "config": str(cfg), "seeds": bad}], [0], tmp_path, tmp_path / "archs.txt")


def test_op_bias_counts_edges_and_correlates(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("op_bias", REPO / "benchmarks" / "op_bias.py")
    ob = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ob)
    cell = "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    assert ob.op_counts(cell) == {"conv": 3, "pool": 1, "skip": 1, "none": 1}
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    rng = np.random.default_rng(0)
    archs = ["|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*rng.choice(ops, 6)) for _ in range(40)]
    archs = list(dict.fromkeys(archs))
    truth = tmp_path / "truth"
    truth.mkdir()
    acc = {a: float(ob.op_counts(a)["conv"]) + rng.normal(scale=0.1) for a in archs}  # truth rewards convs
    (truth / "table.json").write_text(json.dumps({"archs": {a: {"accuracy": [v, v]} for a, v in acc.items()}}))
    (truth / "archs.txt").write_text("\n".join(archs) + "\n")
    pred = tmp_path / "pred" / "pool-lover"
    pred.mkdir(parents=True)
    (pred / "seed0.jsonl").write_text("".join(json.dumps({"arch": a, "accuracy": ob.op_counts(a)["pool"]}) + "\n"
                                              for a in archs))
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"truth": [str(truth)], "predictions": str(tmp_path / "pred"), "seeds": [0],
                                 "runs": [{"label": "pool-lover", "config": "x"}]}))
    assert ob.main([str(suite), "pool-lover"]) == 0
    lines = capsys.readouterr().out.splitlines()
    truth_row, lover = lines[2].split(), lines[3].split()
    assert float(truth_row[2]) > 0.8 and float(lover[3]) > 0.8  # truth: tau with conv; the entry: with pool
    assert ob.main([str(suite), "nobody"]) == 2



def test_op_bias_measures_size_on_mobilenet_strings(tmp_path, capsys):
    """MobileNet-style strings: layers, mean kernel, mean expansion, and FLOPs/params from the table."""
    spec = importlib.util.spec_from_file_location("op_bias", REPO / "benchmarks" / "op_bias.py")
    ob = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ob)
    f = ob.size_features("k3e3-id_k7e6-k5e6", {"k3e3-id_k7e6-k5e6": {"flops": 10, "params": 3}})
    assert f == {"layers": 3, "kernel": 5.0, "expansion": 5.0, "flops": 10, "params": 3}
    rng = np.random.default_rng(0)
    ops = ["k3e3", "k5e3", "k3e6", "k7e6"]
    stage = lambda: f"{rng.choice(ops)}-{rng.choice([*ops, 'id'])}"  # noqa: E731
    archs = list(dict.fromkeys(f"{stage()}_{stage()}" for _ in range(40)))
    layers = {a: ob.size_features(a, {})["layers"] for a in archs}
    truth = tmp_path / "truth"
    truth.mkdir()
    table = {a: {"accuracy": [layers[a] + rng.normal(scale=0.1)] * 2, "flops": 100 * layers[a], "params": 7}
             for a in archs}
    (truth / "table.json").write_text(json.dumps({"archs": table}))
    (truth / "archs.txt").write_text("\n".join(archs) + "\n")
    pred = tmp_path / "pred" / "blind"
    pred.mkdir(parents=True)
    (pred / "seed0.jsonl").write_text("".join(json.dumps({"arch": a, "accuracy": -layers[a]}) + "\n" for a in archs))
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"truth": [str(truth)], "predictions": str(tmp_path / "pred"), "seeds": [0],
                                 "runs": [{"label": "blind", "config": "x"}]}))
    assert ob.main([str(suite), "blind"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[2:] == ["tau", "with", "layers", "tau", "with", "kernel", "tau", "with", "expansion", "tau",
                                    "with", "flops", "tau", "with", "params"]
    truth_row, blind = lines[2].split(), lines[3].split()
    assert float(truth_row[2]) > 0.6 and float(truth_row[5]) > 0.6 and float(blind[2]) == -1.0  # layers, flops (ties)
    assert ob.main([str(suite), "blind", "--half", "report"]) == 2  # the suite has no split
    assert "no split: use --half all" in capsys.readouterr().err
    (truth / "archs.txt").write_text("k3e3-what\n")  # neither NB201 nor MobileNet: one line
    (truth / "table.json").write_text(json.dumps({"archs": {"k3e3-what": {"accuracy": [1.0, 1.0]}}}))
    assert ob.main([str(suite), "blind"]) == 2
    assert "malformed" in capsys.readouterr().err


def test_pending_lanes_name_real_suites_entries_and_configs():
    """benchmarks/pending.sh restarts the open experiments on a fresh machine: every suite it runs exists,
    every --only label is an entry of that suite, every config it names exists, and a bad lane is refused."""
    import re
    import subprocess

    import yaml

    script = REPO / "benchmarks" / "pending.sh"
    text = script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True)
    joined = re.sub(r"\\\n\s*", "", text)  # continuation lines joined
    calls = re.findall(r"^\s*suite (\S+)(?: --seeds \S+)?(?: --only (\S+))?", joined, flags=re.M)
    assert sum(bool(only) for _, only in calls) >= 2  # the --only lists are found (and checked below)
    assert len(calls) >= 3  # the regex finds the suite steps (the lanes shrink as experiments finish)
    for name, only in calls:
        suite = yaml.safe_load((REPO / "benchmarks" / "suites" / f"{name}.yaml").read_text())
        labels = {r["label"] for r in suite["runs"]}
        assert set(filter(None, only.split(","))) <= labels, (name, only)
    for m in ("spos", "cream"):
        for path in re.findall(r"(configs/[\w/.-]+?\.yaml|benchmarks/suites/[\w/.-]+?\.yaml)", text.replace("${m}", m)):
            assert (REPO / path).is_file(), path
    bad = subprocess.run(["bash", str(script), "C"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_power_reports_the_detectable_difference_and_refuses_bad_pairs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("power", REPO / "benchmarks" / "power.py")
    pw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pw)
    suite, preds = _tiny_suite(tmp_path, np.random.default_rng(5))
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps({**suite, "predictions": str(preds), "seeds": [0, 1, 2],
                                "runs": [{"label": "spos"}, {"label": "good"}]}))
    out = tmp_path / "power.json"
    fig = tmp_path / "power.png"
    assert pw.main([str(path), "--resamples", "200", "--pool-min-seeds", "3", "--out", str(out),
                    "--figure", str(fig)]) == 0
    assert fig.stat().st_size > 1000
    text = capsys.readouterr().out
    assert "good - spos" in text and "64 archs" in text  # the pair, then the projection grid
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert row["seeds"] == 3 and row["num_archs"] == 12 and row["diff"] > 0.3  # 'good' ranks far better
    assert row["mde"] > 0 and row["joint_ci95"][0] < row["diff"] < row["joint_ci95"][1]
    assert res["grid_mde"]["64x512"] < res["grid_mde"]["3x64"]
    # a proxy pairs with every seed of the entry
    assert pw.main([str(path), "--resamples", "200", "--pair", "good", "proxy:up"]) == 0
    assert "good - proxy:up" in capsys.readouterr().out
    # seeds committed without a result.json count when the suite has no scoring (as in run_suite)
    bare = {k: v for k, v in json.loads(path.read_text()).items() if k != "scoring"}
    for f in preds.glob("*/seed*.result.json"):
        f.unlink()
    path.write_text(json.dumps(bare))
    assert pw.main([str(path), "--resamples", "200", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rows"][0]["seeds"] == 3
    capsys.readouterr()
    for bad, msg in ((["--pair", "good", "nobody"], "no entry 'nobody'"), (["--pair", "good", "good"], "itself"),
                     (["--pair", "proxy:up", "proxy:down"], "two proxies"), (["--target", "0"], "--target"),
                     (["--half", "middle"], "no 'middle' half")):
        assert pw.main([str(path), "--resamples", "200", *bad]) == 2
        assert msg in capsys.readouterr().err


def test_a_label_shared_by_two_suites_does_not_reuse_the_other_search(tmp_path):
    """Two suites run into one --out with the same label: the second refuses the first's run folder
    instead of scoring its search as its own; a folder from before the record is adopted."""
    rs = _suite_module()
    from steps import SpecError

    out = tmp_path / "out"
    run = out / "spos" / "seed0"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"arch": "x", "train_seconds": 1.0}))
    (run / "gt_scores.jsonl").write_text("")
    (run / "gt_scores.scoring.json").write_text("[]\n")
    row = rs.run_one("spos", "configs/a.yaml", ["x=1"], 0, out, out / "s.truth_archs.txt", None)  # adopted
    assert row["selected"] == "x"
    assert json.loads((out / "spos" / "seed0.entry.json").read_text()) == {"config": "configs/a.yaml", "overrides": ["x=1"]}
    assert rs.run_one("spos", "configs/a.yaml", ["x=1"], 0, out, out / "s.truth_archs.txt", None)["selected"] == "x"
    with pytest.raises(SpecError, match="another suite entry labelled 'spos'.*another --out"):
        rs.run_one("spos", "configs/b.yaml", [], 0, out, out / "s.truth_archs.txt", None)


def test_a_folder_from_before_the_record_is_adopted_only_when_its_config_is_the_entrys(tmp_path):
    """What happened on 2026-12-02: the NB201 budget suite's spos-e48 folders (trained before entry records)
    were adopted by the MobileNet suite's spos-e48 entry, and NB201 predictions were filed as MobileNet ones.
    The run's config.yaml now decides: the same resolved config is adopted, another one is refused."""
    rs = _suite_module()
    from steps import SpecError

    from distilnas.config import apply_overrides, dump_yaml, load_yaml, to_dict
    from distilnas.train.loop import resolve_config

    cfg, ovr = "configs/bench/spos_nb201_fmnist16.yaml", ["train.epochs=48"]
    for label, trained_with in (("same", ovr), ("other", ["train.epochs=24"]), ("nb201", ovr),
                                ("runtime", [*ovr, "train.log_every=7", "train.threads=2"]), ("empty", ovr)):
        run = tmp_path / label / "spos-e48" / "seed0"
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps({"arch": "x", "train_seconds": 1.0}))
        (run / "gt_scores.jsonl").write_text("")
        (run / "gt_scores.scoring.json").write_text("[]\n")
        resolved = to_dict(resolve_config(apply_overrides(load_yaml(cfg), ["seed=0", "train.threads=1", *trained_with])))
        del resolved["train"]["zero_grad"]  # a setting added after the run was trained: not compared
        dump_yaml(resolved, run / "config.yaml")
    args = ("spos-e48", cfg, ovr, 0)
    assert rs.run_one(*args, tmp_path / "same", tmp_path / "a.txt", None)["selected"] == "x"
    with pytest.raises(SpecError, match=r"another config than entry 'spos-e48' \(train.epochs: 24 there, 48 for this "
                                        r"entry\); use another --out"):
        rs.run_one(*args, tmp_path / "other", tmp_path / "a.txt", None)
    assert not (tmp_path / "other" / "spos-e48" / "seed0.entry.json").exists()
    # settings that only change how a run is run (threads, logging) do not count; an empty record refuses
    assert rs.run_one(*args, tmp_path / "runtime", tmp_path / "a.txt", None)["selected"] == "x"
    (tmp_path / "empty" / "spos-e48" / "seed0" / "config.yaml").write_text("")
    with pytest.raises(SpecError, match="its config.yaml is empty or not a mapping"):
        rs.run_one(*args, tmp_path / "empty", tmp_path / "a.txt", None)
    # of two suites claiming one new folder, the first record stays
    owner = tmp_path / "claim" / "seed0.entry.json"
    assert rs._claim(owner, {"config": "a"}) == {"config": "a"}
    assert rs._claim(owner, {"config": "b"}) == {"config": "a"} and not list(owner.parent.glob("*.partial"))
    mobilenet = ["algorithm={name: spos}", "space.width_mult=0.125", "train.epochs=48"]
    with pytest.raises(SpecError, match="space.name: 'nb201' there, 'mobilenet' for this entry"):
        rs.run_one("spos-e48", "configs/bench/cream_mobilenet_fmnist16.yaml", mobilenet, 0, tmp_path / "nb201",
                   tmp_path / "a.txt", None)


def test_predictions_made_in_another_space_are_named_in_the_status(tmp_path):
    rs = _suite_module()
    suite, preds = _tiny_suite(tmp_path, np.random.default_rng(0))
    (preds / "good" / "seed1.jsonl").write_text(json.dumps({"arch": "|none~0|+|", "accuracy": 1.0}) + "\n")
    status = rs.summarize(suite, ["spos", "good"], [0, 1, 2], preds, resamples=50)["status"]
    assert "0 of 24 architectures with ground truth" in status
    assert "predictions without a finite score for some architectures with ground truth: good seed 1 (24 of 24)" \
        in status and str(preds) in status
    assert "without a finite score" not in rs.summarize(suite, ["spos"], [0, 1, 2], preds, resamples=50)["status"]


def test_supernet_fit_prints_both_fits_side_by_side(tmp_path, search_dict, capsys):
    import yaml

    spec = importlib.util.spec_from_file_location("supernet_fit", REPO / "benchmarks" / "supernet_fit.py")
    sf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sf)
    cfg = tmp_path / "search.yaml"
    cfg.write_text(yaml.safe_dump(search_dict))
    assert sf.main([str(cfg), "train.lr=0.01", "--steps", "4", "--every", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("training accuracy (%) per 2 steps; fixed path |") and len(lines) == 4
    rows = [ln.split() for ln in lines[2:]]
    assert [r[0] for r in rows] == ["2", "4"] and all(0 <= float(v) <= 100 for r in rows for v in r[1:])
    for bad, msg in ((["--every", "0"], "--every"), (["--arch", "|bad|"], "malformed NB201 arch"),
                     (["nope.key=1"], "unknown config key")):
        assert sf.main([str(cfg), *bad]) == 2
        assert msg in capsys.readouterr().err


def _config_suite(tmp_path, search_dict, labels=("spos", "bad")):
    """A suite of config entries over 24 ground-truth architectures a0..a23, seeds 0-1."""
    import yaml

    archs = [f"a{i}" for i in range(24)]
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "archs.txt").write_text("\n".join(archs) + "\n")
    (truth / "table.json").write_text(json.dumps({"archs": {a: {"accuracy": [i, i + 0.5]} for i, a in enumerate(archs)}}))
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(search_dict))
    suite = {"truth": [str(truth)], "predictions": str(tmp_path / "pred"), "seeds": [0, 1],
             "runs": [{"label": lab, "config": str(tmp_path / "search.yaml")} for lab in labels]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


class ExitingProc(FakeProc):
    """FakeProc whose command exits with 1 when its --out lies under a folder named ``bad``."""

    def __call__(self, cmd, **kwargs):
        proc = ExitingProc(self.calls, self.effect)
        self.calls.append(cmd)
        proc.cmd = cmd
        return proc

    def wait(self):
        out = Path(self.cmd[self.cmd.index("--out") + 1])
        if "bad" in out.parts:
            return 1
        self.effect(self.cmd)
        return 0


def fake_search_and_score(cmd):
    sub, argv = cmd[3], cmd[4:]
    out = Path(argv[argv.index("--out") + 1])
    if sub == "search":
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps({"arch": "a1", "train_seconds": 2.0, "score_seconds": 1.0}))
    elif sub == "score":
        archs = Path(argv[argv.index("--archs") + 1]).read_text().split()
        out.write_text("".join(json.dumps({"arch": a, "accuracy": float(a[1:])}) + "\n" for a in archs))


def test_a_failed_run_ends_only_itself(tmp_path, search_dict, monkeypatch, capsys):
    """One entry's search fails: the other entry's runs still finish and are summarized; the failures are
    one line each after the table, and the exit status is 1."""
    import subprocess

    rs = _suite_module()
    path = _config_suite(tmp_path, search_dict)
    calls: list = []
    monkeypatch.setattr(subprocess, "Popen", ExitingProc(calls, fake_search_and_score))
    assert rs.main([str(path), "--out", str(tmp_path / "out"), "--resamples", "50"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 2 and all(ln.startswith("run_suite: failed: entry bad seed ") for ln in err), err
    assert "failed with exit status 1" in err[0] and "bad/seed0.log" in captured.err
    assert sorted(p.name for p in (tmp_path / "pred" / "spos").glob("*.jsonl")) == ["seed0.jsonl", "seed1.jsonl"]
    assert "spos" in captured.out and "bad 0 of 2 seeds" in captured.out


def test_killing_run_suite_stops_its_search(tmp_path, search_dict):
    """kill (SIGTERM) of run_suite stops the search it started (it used to keep running, orphaned) and
    exits with 143."""
    import os
    import signal
    import subprocess
    import sys
    import time

    search_dict["train"]["epochs"] = 5000  # far longer than the test waits, on any machine
    path = _config_suite(tmp_path, search_dict, labels=("spos",))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "run_suite.py"), str(path), "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def searches() -> list[int]:  # the distilnas searches writing into this test's folder
        found = []
        for d in Path("/proc").iterdir():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if d.name.isdigit() and b"search" in argv and str(out).encode() in b" ".join(argv):
                found.append(int(d.name))
        return found

    deadline = time.time() + 120
    while not (out / "spos" / "seed0" / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert searches(), f"the search never started: {proc.poll()} {proc.stderr.read() if proc.poll() else ''}"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "run_suite: interrupted; rerun the same command to continue" in err
    time.sleep(0.5)
    assert searches() == []


def test_an_interrupted_command_is_stopped_and_a_stuck_one_killed(tmp_path, monkeypatch):
    """Ctrl-C or kill while run_command waits stops the command as well (a proxy run by the main thread was
    left running); stop_all kills a command that does not stop within STOP_SECONDS."""
    import subprocess
    import sys

    _suite_module()
    steps = sys.modules["steps"]
    events = []

    class Proc:
        def __init__(self, cmd, interrupt=True, stuck=False, **kw):
            self.interrupt, self.stuck = interrupt, stuck

        def wait(self, timeout=None):
            if self.interrupt:
                self.interrupt = False
                raise KeyboardInterrupt
            if self.stuck and timeout is not None:
                self.stuck = False
                raise subprocess.TimeoutExpired("cmd", timeout)
            return -15

        def terminate(self):
            events.append("terminate")

        def kill(self):
            events.append("kill")

    monkeypatch.setattr(subprocess, "Popen", Proc)
    with pytest.raises(KeyboardInterrupt):
        steps.run_command(["distilnas", "proxy"], tmp_path / "log", "proxy x")
    assert events == ["terminate"] and not steps._ACTIVE
    events.clear()
    steps._stop(Proc([], interrupt=False, stuck=True))
    assert events == ["terminate", "kill"]


def test_unwritable_outputs_are_one_line(tmp_path, search_dict, capsys):
    rs = _suite_module()
    path = _config_suite(tmp_path, search_dict, labels=("spos",))
    (tmp_path / "afile").write_text("")
    assert rs.main([str(path), "--out", str(tmp_path / "afile"), "--summary-only"]) == 2
    assert capsys.readouterr().err.strip() == (f"run_suite: error: suite directory (--out) {tmp_path / 'afile'} is a "
                                               f"file, not a directory; choose another path")
    assert rs.main([str(path), "--out", str(tmp_path / "out"), "--summary-only", "--results",
                    str(tmp_path / "afile" / "r.json")]) == 2
    captured = capsys.readouterr()
    assert "spos 0 of 2 seeds" in captured.out  # the table is still shown
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("run_suite: error: ") and "afile" in err[0], err


def test_only_and_seeds_limit_what_runs_not_what_is_summarized(tmp_path, search_dict, monkeypatch):
    """A lane that runs part of a suite (--only, --seeds) must not replace its results with that part."""
    import subprocess

    rs = _suite_module()
    path = _config_suite(tmp_path, search_dict, labels=("spos", "cream"))
    calls: list = []
    monkeypatch.setattr(subprocess, "Popen", ExitingProc(calls, fake_search_and_score))
    res = tmp_path / "r.json"
    assert rs.main([str(path), "--out", str(tmp_path / "out"), "--resamples", "50", "--results", str(res)]) == 0
    calls.clear()
    assert rs.main([str(path), "--out", str(tmp_path / "out2"), "--resamples", "50", "--results", str(res),
                    "--only", "cream", "--seeds", "1"]) == 0
    assert calls == []  # committed predictions: nothing runs
    entries = json.loads(res.read_text())["entries"]
    assert set(entries) >= {"spos", "cream"} and entries["spos"]["seeds"] == [0, 1]
