"""benchmarks/search_quality.py: picks retrained over seeds, resumed without redoing work, spec checked first."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# A tiny MobileNet space (two stages of up to two layers) and one-epoch runs on the synthetic data.
SPACE = {"name": "mobilenet", "preset": "fmnist16", "widths": [16, 24], "depths": [2, 2], "strides": [2, 2],
         "last_channels": 32, "head_channels": 32, "kernels": [3, 5], "expansions": [2, 4]}
DATA = {"name": "synthetic", "val_size": 64, "train_size": 64, "test_size": 32}
SEARCH = {"seed": 0, "space": SPACE, "data": DATA, "algorithm": {"name": "spos"},
          "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu", "log_every": 1},
          "score": {"bn_recal_batches": 1, "bn_recal_batch_size": 32, "val_size": 32, "batch_size": 64},
          "select": {"num_archs": 3, "top": 2, "method": "random"}}
RETRAIN = {"seed": 0, "data": DATA, "recipe": {"epochs": 1, "batch_size": 32, "lr": 0.05}, "device": "cpu",
           "export_onnx": False}
ARCH = "k3e2-id_k5e4-k3e2"


@pytest.fixture(scope="module")
def sq():
    spec = importlib.util.spec_from_file_location("search_quality", REPO / "benchmarks" / "search_quality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["search_quality"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("search_quality", None)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(SEARCH))
    (tmp_path / "retrain.yaml").write_text(yaml.safe_dump(RETRAIN))
    return {"search": str(tmp_path / "search.yaml"), "retrain": str(tmp_path / "retrain.yaml")}


def write_spec(tmp_path: Path, files: dict[str, str], entries: list, **extra) -> str:
    spec = {"retrain": files["retrain"], "seeds": [0, 1], "space": SPACE, "entries": entries, **extra}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def no_subprocess(*args, **kwargs):
    raise AssertionError(f"a command ran: {args[0]}")


class FakeCommand:
    """A stand-in for subprocess.Popen: records the command, runs ``effect(cmd)`` and exits with 0."""

    def __init__(self, calls: list, effect=lambda cmd: None):
        self.calls, self.effect = calls, effect

    def __call__(self, cmd, **kwargs):
        self.calls.append(cmd)
        self.effect(cmd)
        return self

    def wait(self):
        return 0


def test_end_to_end_then_rerun_skips_finished_work(sq, tmp_path, files, monkeypatch, capsys):
    spec = write_spec(tmp_path, files, [{"label": "spos", "search": files["search"]},
                                        {"label": "fixed", "arch": ARCH}],
                      flops_range=[5.0e5, 1.0e6], retrain_overrides=["recipe.lr=0.04"])
    out, res = tmp_path / "out", tmp_path / "results.json"
    assert sq.main([spec, "--out", str(out), "--results", str(res), "--markdown"]) == 0
    printed = capsys.readouterr().out
    assert "| entry | architecture | test acc (mean ± sd, n seeds) | params | FLOPs | search cost |" in printed
    r = json.loads(res.read_text())
    assert r["status"] == "complete" and r["retrain"] == files["retrain"]
    assert r["retrain_overrides"] == ["recipe.lr=0.04"] and r["seeds"] == [0, 1]
    spos, fixed = r["entries"]
    picked = json.loads((out / "spos" / "search" / "result.json").read_text())
    assert (spos["label"], spos["how"], spos["arch"]) == ("spos", "search", picked["arch"])
    assert spos["search_seconds"] == pytest.approx(picked["train_seconds"] + picked["score_seconds"], abs=0.1)
    assert (fixed["label"], fixed["how"], fixed["arch"], fixed["search_seconds"]) == ("fixed", "arch", ARCH, None)
    for e in (spos, fixed):
        assert e["seeds"] == [0, 1] and len(e["test_acc"]) == len(e["val_acc"]) == 2
        assert e["mean"] == pytest.approx(statistics.mean(e["test_acc"]))
        assert e["std"] == pytest.approx(statistics.stdev(e["test_acc"]), abs=1e-4)
        trained = json.loads((out / e["label"] / "retrain_seed1" / "result.json").read_text())
        assert (e["params"], e["flops"], trained["config"]["seed"]) == (trained["params"], trained["flops"], 1)
        assert trained["config"]["recipe"]["lr"] == 0.04
        assert e["in_range"] == (5.0e5 <= e["flops"] <= 1.0e6)
    assert fixed["flops"] == 336_256 and fixed["in_range"] is False and any("fixed" in w for w in r["warnings"])

    # a rerun runs nothing and rewrites nothing but the summaries
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name not in ("summary.json", "summary.csv")}
    monkeypatch.setattr(sq.subprocess, "Popen", no_subprocess)
    assert sq.main([spec, "--out", str(out), "--results", str(res)]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads(res.read_text())["entries"] == r["entries"]

    # an unfinished retraining (no result.json) is the only command run again
    (out / "fixed" / "retrain_seed1" / "result.json").unlink()
    calls = []
    monkeypatch.setattr(sq.subprocess, "Popen", FakeCommand(calls))
    assert sq.main([spec, "--out", str(out), "--results", str(res)]) == 0
    assert len(calls) == 1 and calls[0][:5] == [sys.executable, "-m", "distilnas.cli", "retrain", ARCH]
    assert "seed=1" in calls[0] and "space.name=\"mobilenet\"" in calls[0]
    assert json.loads(res.read_text())["status"] == "partial: not every seed retrained for fixed"


def write_result(cmd):
    """What a finished search or train leaves in its --out: result.json."""
    out = Path(cmd[cmd.index("--out") + 1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps({"arch": ARCH, "train_seconds": 2.0, "score_seconds": 1.0}))


def test_killed_searches_resume_and_finished_steps_are_skipped(sq, tmp_path, files, monkeypatch):
    steps = [["train", ARCH, "--space", "mobilenet", "--config", files["retrain"], "--out", "{out}/teacher"],
             ["search", files["search"], "--out", "{out}/block0", "seed=3"]]
    spec = write_spec(tmp_path, files, [{"label": "s", "search": files["search"], "overrides": ["train.lr=0.1"]},
                                        {"label": "p", "steps": steps, "pick": "{out}/block0/result.json"}])
    out = tmp_path / "out"
    s = sq.load_spec(spec, out)
    for d in (out / "s" / "search", out / "p" / "block0", out / "p" / "teacher"):
        d.mkdir(parents=True)
    (out / "s" / "search" / "checkpoint.pt").write_bytes(b"")  # killed after an epoch
    (out / "p" / "block0" / "checkpoint.pt").write_bytes(b"")
    (out / "p" / "teacher" / "result.json").write_text(json.dumps({"arch": ARCH, "seconds": 7.0}))  # finished
    calls: list = []
    monkeypatch.setattr(sq.subprocess, "Popen", FakeCommand(calls, write_result))
    assert sq.find_pick(s.entries[0], s, out) == out / "s" / "search" / "result.json"
    assert sq.find_pick(s.entries[1], s, out) == out / "p" / "block0" / "result.json"
    exe = [sys.executable, "-m", "distilnas.cli"]
    assert calls == [[*exe, "search", files["search"], "--out", str(out / "s" / "search"), "--resume", "seed=0",
                      "train.threads=1", "train.lr=0.1"],
                     [*exe, "search", "--resume", files["search"], "--out", str(out / "p" / "block0"), "seed=3"]]
    recs = [json.loads(ln) for ln in (out / "p" / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0, 1] and recs[0]["seconds"] == 7.0  # the finished teacher: not rerun
    sq.find_pick(s.entries[1], s, out)
    assert len(calls) == 2  # every step recorded: nothing runs again
    assert sq.summarize(s, spec, out)["entries"][0]["search_seconds"] == 3.0


@pytest.mark.parametrize("change, message", [
    ({"retrian": "x.yaml"}, "unknown key 'retrian'"),
    ({"retrain": "missing.yaml"}, "retrain: config file 'missing.yaml' not found"),
    ({"seeds": [0, 0]}, "seeds: expected a non-empty list of distinct integers"),
    ({"entries": [{"label": "a"}]}, "entry a: needs exactly one of search, random_search, steps, arch, hand, got none"),
    ({"entries": [{"label": "a", "arch": ARCH, "search": "SEARCH"}]}, "needs exactly one of .*, got search, arch"),
    ({"entries": [{"label": "a", "search": "nope.yaml"}]}, "entry a: config file 'nope.yaml' not found"),
    ({"entries": [{"label": "a", "search": "SEARCH", "overrides": ["train.epochz=2"]}]},
     "unknown config key 'train.epochz'"),
    ({"entries": [{"label": "a", "arch": "k9e9-id_k3e2-id"}]}, "entry a: arch: .*k9e9"),
    ({"entries": [{"label": "a", "arch": ARCH, "pick": "x"}]}, "unknown key 'pick' for a arch entry"),
    ({"entries": [{"label": "a", "steps": [["bash", "-c", "touch pwned"]], "pick": "p.json"}]},
     "steps\\[0\\]: 'bash' is not a distilnas subcommand"),
    ({"entries": [{"label": "a", "steps": [["search"]], "pick": "p.json"}]}, "steps\\[0\\]: .*required: config"),
    ({"entries": [{"label": "a", "steps": [["search", "no.yaml", "--out", "{out}/x"]], "pick": "p.json"}]},
     "steps\\[0\\]: config file 'no.yaml' not found"),
    ({"entries": [{"label": "a", "steps": [["dna-search", "p.json", "--max-flops", "6M"]]}]}, "needs pick"),
    ({"entries": [{"label": "a", "hand": {"flops_max": 1000}}]}, "entry a: .*above flops_max"),
    ({"entries": [{"label": "a", "arch": ARCH}, {"label": "a", "arch": ARCH}]}, "label 'a' appears twice"),
    ({"entries": [{"label": "../a", "arch": ARCH}]}, "label '../a' must be a name"),
])
def test_bad_specs_are_one_line_before_anything_runs(sq, tmp_path, files, monkeypatch, capsys, change, message):
    base = {"retrain": files["retrain"], "seeds": [0, 1], "space": SPACE, "entries": [{"label": "f", "arch": ARCH}]}
    text = yaml.safe_dump({**base, **change}).replace("SEARCH", files["search"])
    (tmp_path / "spec.yaml").write_text(text)
    monkeypatch.setattr(sq.subprocess, "Popen", no_subprocess)
    assert sq.main([str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("search_quality: error: ")
    assert __import__("re").search(message, err[0]), err[0]
    assert not (tmp_path / "out").exists()


def test_steps_run_distilnas_subcommands_only(sq):
    for argv in (["rm", "-rf", "/"], ["python", "-c", "print(1)"], ["/bin/sh"], []):
        with pytest.raises(sq.SpecError, match="is not a distilnas subcommand"):
            sq.parse_step(argv, "x")
    assert sq.parse_step(["dna-search", "p.json", "--max-flops", "6M", "--out", "r.json"], "x").max_flops == 6e6


def test_check_prints_the_plan_and_the_hand_rule(sq, tmp_path, files, capsys):
    space = {**SPACE, "expansions": [2, 4, 8]}  # the largest expansion <= 6 is 4
    spec = write_spec(tmp_path, files, [{"label": "hand", "hand": {"flops_max": 5.0e5}}], space=space)
    assert sq.main([spec, "--check"]) == 0
    s = sq.load_spec(spec, tmp_path / "out")
    arch = s.entries[0].arch
    mb = sq._space(space)
    assert {code for stage in mb.parse(arch).stages for code in stage} <= {"k3e4", "id"}
    assert mb.cost(mb.parse(arch))["flops"] <= 5.0e5
    assert arch == str(mb.uniform_within(3, 4, 5.0e5)) and f"hand: hand {arch}" in capsys.readouterr().out


def test_a_second_run_into_the_same_out_stops_at_once(sq, tmp_path, files, monkeypatch, capsys):
    """Two runs at once into one OUT: the second gets one line naming the holder and starts nothing."""
    from distilnas.fileio import run_lock

    spec = write_spec(tmp_path, files, [{"label": "fixed", "arch": ARCH}])
    monkeypatch.setattr(sq.subprocess, "Popen", no_subprocess)
    out = tmp_path / "out"
    out.mkdir()
    with run_lock(out, "search-quality directory"):
        assert sq.main([spec, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("search_quality: error: ") and "in use" in err[0]


def fake_retrains(out: Path, label: str, accs: list[float]) -> None:
    """What finished retrainings leave: retrain_seed<s>/result.json with a test accuracy."""
    for s, acc in enumerate(accs):
        d = out / label / f"retrain_seed{s}"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"arch": ARCH, "test_accuracy": acc, "val_accuracy": acc,
                                                   "params": 1000, "flops": 7.5e5, "seconds": 3.0}))


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """The 95% Welch interval of mean(a) - mean(b), written out (Welch-Satterthwaite degrees of freedom)."""
    from scipy.stats import t

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t.ppf(0.975, df) * (va + vb) ** 0.5
    d = statistics.mean(a) - statistics.mean(b)
    return d - half, d + half


def test_comparisons_csv_and_figure(sq, tmp_path, files, monkeypatch, capsys):
    entries = [{"label": x, "arch": ARCH} for x in ("good", "same", "base", "one")]
    spec = write_spec(tmp_path, files, entries, seeds=[0, 1, 2], baseline="base", compare=[["good", "same"]],
                      flops_range=[5.0e5, 1.0e6])
    out = tmp_path / "out"
    accs = {"good": [91.0, 91.2, 90.9], "same": [89.1, 89.6, 88.8], "base": [89.4, 89.0, 89.3], "one": [89.2]}
    for label, a in accs.items():
        fake_retrains(out, label, a)
    monkeypatch.setattr(sq.subprocess, "Popen", no_subprocess)
    figure = tmp_path / "fig" / "sq.png"
    args = [spec, "--out", str(out), "--summary-only", "--results", str(tmp_path / "r.json")]
    if __import__("importlib").util.find_spec("matplotlib"):
        args += ["--figure", str(figure)]
    assert sq.main(args) == 0
    summary = json.loads((tmp_path / "r.json").read_text())
    got = {(c["entry"], c["ref"]): c for c in summary["comparisons"]}
    assert list(got) == [("good", "base"), ("same", "base"), ("one", "base"), ("good", "same")]
    for (a, b), c in got.items():
        assert c["mean"] == pytest.approx(statistics.mean(accs[a]) - statistics.mean(accs[b]), abs=1e-4)
        assert c["n"] == [len(accs[a]), len(accs[b])]
        if a != "one":
            assert c["ci95"] == pytest.approx(welch(accs[a], accs[b]), abs=1e-4)
    assert got["good", "base"]["verdict"] == "better" and got["good", "same"]["verdict"] == "better"
    assert got["same", "base"]["verdict"] == "no evidence"
    assert got["one", "base"]["verdict"] == "too few seeds" and got["one", "base"]["ci95"] is None
    printed = capsys.readouterr().out
    assert "good - base" in printed and "no evidence" in printed and "too few seeds" in printed
    rows = list(__import__("csv").DictReader((out / "summary.csv").open()))
    assert [r["label"] for r in rows] == ["good", "same", "base", "one"]
    assert rows[0]["test_acc"] == "91 91.2 90.9" and rows[3]["seeds"] == "0" and rows[3]["std"] == ""
    assert json.loads((out / "summary.json").read_text()) == summary
    if "--figure" in args:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.partial")) and not list(tmp_path.glob("*.partial"))


def test_a_difference_without_spread_has_no_interval(sq):
    assert sq.accuracy_difference([90.0, 90.0], [89.0, 89.0])["verdict"] == "no spread"
    assert sq.accuracy_difference([], [89.0, 89.0]) == {"mean": None, "ci95": None, "verdict": "too few seeds",
                                                        "n": [0, 2]}


@pytest.mark.parametrize("change, message", [
    ({"baseline": "nope"}, "baseline: no entry 'nope'; the spec has f, g"),
    ({"compare": [["f"]]}, r"compare\[0\]: expected \[entry, reference\]"),
    ({"compare": "f,g"}, "compare: expected a list"),
    ({"compare": [["f", "x"]]}, r"compare\[0\]: no entry 'x'"),
    ({"compare": [["g", "g"]]}, r"compare\[0\]: 'g' against itself"),
    ({"figure": "out.pdf"}, "figure: expected a .png path"),
])
def test_bad_comparisons_are_one_line(sq, tmp_path, files, monkeypatch, capsys, change, message):
    spec = write_spec(tmp_path, files, [{"label": "f", "arch": ARCH}, {"label": "g", "arch": ARCH}], **change)
    monkeypatch.setattr(sq.subprocess, "Popen", no_subprocess)
    assert sq.main([spec, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and __import__("re").search(message, err[0]), err


def test_an_unwritable_results_path_is_one_line_after_the_table(sq, tmp_path, files, monkeypatch, capsys):
    spec = write_spec(tmp_path, files, [{"label": "f", "arch": ARCH}])
    fake_retrains(tmp_path / "out", "f", [90.0, 90.5])
    (tmp_path / "blocker").write_text("a file where a folder should be")
    monkeypatch.setattr(sq.subprocess, "Popen", no_subprocess)
    assert sq.main([spec, "--out", str(tmp_path / "out"), "--summary-only",
                    "--results", str(tmp_path / "blocker" / "r.json")]) == 2
    captured = capsys.readouterr()
    assert "90.25" in captured.out  # the table is still shown
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("search_quality: error: ") and "blocker" in err[0]
    if __import__("importlib").util.find_spec("matplotlib"):
        (tmp_path / "dir.png").mkdir()  # a folder where the figure should go
        assert sq.main([spec, "--out", str(tmp_path / "out"), "--summary-only", "--figure",
                        str(tmp_path / "dir.png")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("search_quality: error: cannot write the figure "), err
    assert sq.main([spec, "--out", str(tmp_path / "out"), "--summary-only", "--figure", "f.pdf"]) == 2
    assert capsys.readouterr().err.strip() == "search_quality: error: --figure f.pdf: expected a .png path"
    assert sq.main([spec, "--out", str(tmp_path / "blocker"), "--summary-only"]) == 2  # --out is a file
    assert capsys.readouterr().err.strip().endswith("blocker is a file, not a directory; choose another path")


def test_a_partial_summary_never_replaces_complete_results(sq, tmp_path, files, monkeypatch, capsys):
    spec = write_spec(tmp_path, files, [{"label": "f", "arch": ARCH}])
    fake_retrains(tmp_path / "done", "f", [90.0, 90.5])
    res = tmp_path / "r.json"
    monkeypatch.setattr(sq.subprocess, "Popen", no_subprocess)
    assert sq.main([spec, "--out", str(tmp_path / "done"), "--summary-only", "--results", str(res)]) == 0
    complete = res.read_text()
    assert json.loads(complete)["status"] == "complete"
    # a look at a scratch folder that holds less
    assert sq.main([spec, "--out", str(tmp_path / "scratch"), "--summary-only", "--results", str(res)]) == 0
    assert res.read_text() == complete
    assert f"kept {res} and the figure" in capsys.readouterr().err
    assert json.loads((tmp_path / "scratch" / "summary.json").read_text())["status"].startswith("partial")
