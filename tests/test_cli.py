"""The command-line contract (distilnas.cli.main): outputs, files, and one-line errors with status 2."""

from __future__ import annotations

import importlib.util

import json
from pathlib import Path

import pytest
import yaml

from distilnas.cli import main

from conftest import SEARCH_DICT, one_error_line

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
TINY_TRAIN = ["space.C=4", "space.N=1", "space.in_channels=1", "space.input_size=16", "data.name=synthetic",
              "data.val_size=100", "data.train_size=64", "data.test_size=50", "recipe.epochs=1",
              "recipe.batch_size=32", "device=cpu"]


@pytest.fixture
def config_file(tmp_path) -> Path:
    p = tmp_path / "search.yaml"
    p.write_text(yaml.safe_dump(SEARCH_DICT, sort_keys=False))
    return p


# -- success paths ----------------------------------------------------------------------------------
def test_search(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["search", str(config_file), "--out", str(out), "seed=1", "select.num_archs=3"])
    assert rc == 0
    stdout = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert f"best: {result['arch']}" in stdout
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["seed"] == 1 and saved["select"]["num_archs"] == 3  # the overrides were applied
    assert result["seed"] == 1 and result["num_scored"] == 3


def test_overrides_may_come_before_options(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", str(config_file), "select.num_archs=2", "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text())["num_scored"] == 2


def test_score(trained_run, tmp_path, capsys):
    archs = [ARCH, "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"]
    f = tmp_path / "archs.txt"
    f.write_text("# candidates\n" + "\n".join(archs) + "\n\n")
    out = tmp_path / "sub" / "scores.jsonl"
    rc = main(["score", str(trained_run / "checkpoint.pt"), "--archs", str(f), "--out", str(out),
               "score.val_size=32"])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["arch"] for r in rows] == archs
    assert all(0 <= r["accuracy"] <= 100 and r["loss"] > 0 for r in rows)
    assert "scored 2 architectures" in capsys.readouterr().out


def test_rank(tmp_path, capsys):
    truth = {f"arch{i}": [50.0 + i, 51.0 + i] for i in range(12)}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"arch": f"arch{i}", "accuracy": float(i)}) + "\n" for i in range(12)))
    rc = main(["rank", str(pred), str(tmp_path / "truth.json"), "--bootstrap", "50"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "12 architectures in common" in stdout
    assert "kendall_tau" in stdout
    lines = stdout.splitlines()
    header = next(line for line in lines if "kendall_tau" in line)
    row = next(line for line in lines if line.startswith("pred.jsonl vs truth"))
    col = header.split().index("kendall_tau")
    assert row[len("pred.jsonl vs truth"):].split()[col] == "1.000"  # same order as the truth


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("nb201", "spos", "fairnas", "fmnist16", "synthetic"):
        assert name in out
    assert main(["list", "algorithms", "f*"]) == 0
    assert capsys.readouterr().out.strip() == "algorithms: fairnas"


def test_train(tmp_path, capsys):
    out = tmp_path / "train"
    rc = main(["train", ARCH, "--space", "nb201", "--out", str(out), *TINY_TRAIN])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((out / "result.json").read_text())
    assert printed["arch"] == saved["arch"] == ARCH
    assert {"val_accuracy", "test_accuracy", "params", "flops"} <= set(printed)
    assert saved["config"]["space"]["C"] == 4 and (out / "model.pt").is_file()


# -- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, fragment", [
    (["bogus=1"], "unknown config key 'bogus'"),
    (["train.epochs=abc"], "train.epochs: expected an integer"),
    (["space.foo=1"], "'space.foo'"),
    (["algorithm.name=nope"], "unknown algorithm 'nope'"),
    (["data.name=cifar10"], "data.root"),  # missing dataset root
])
def test_search_errors(config_file, tmp_path, capsys, overrides, fragment):
    rc = main(["search", str(config_file), "--out", str(tmp_path / "run"), *overrides])
    assert fragment in one_error_line(capsys, rc)


def test_missing_config_file(tmp_path, capsys):
    rc = main(["search", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "run")])
    assert "not found" in one_error_line(capsys, rc)


def test_search_resume_errors(config_file, trained_run, tmp_path, capsys):
    rc = main(["search", str(config_file), "--out", str(trained_run)])
    assert "--resume" in one_error_line(capsys, rc)
    rc = main(["search", str(config_file), "--out", str(tmp_path / "new"), "--resume"])
    assert "no checkpoint.pt" in one_error_line(capsys, rc)


def test_score_errors(trained_run, tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text(ARCH + "\n|nor_conv_3x3~0|+|oops|\n")
    out = str(tmp_path / "s.jsonl")
    rc = main(["score", str(trained_run / "checkpoint.pt"), "--archs", str(archs), "--out", out])
    assert f"{archs}:2: " in one_error_line(capsys, rc)  # malformed arch, with file and line
    rc = main(["score", str(trained_run / "checkpoint.pt"), "--archs", str(tmp_path / "none.txt"), "--out", out])
    assert "none.txt not found" in one_error_line(capsys, rc)
    rc = main(["score", str(tmp_path / "missing.pt"), "--archs", str(archs), "--out", out])
    assert "missing.pt not found" in one_error_line(capsys, rc)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02not really a checkpoint")
    rc = main(["score", str(corrupt), "--archs", str(archs), "--out", out])
    assert "corrupt" in one_error_line(capsys, rc)


def test_train_errors(tmp_path, capsys):
    rc = main(["train", "|nor_conv_3x3~0|", *TINY_TRAIN])
    assert "malformed NB201 arch" in one_error_line(capsys, rc)
    rc = main(["train", ARCH, *TINY_TRAIN, "recipe.epochz=1"])
    assert "'recipe.epochz'" in one_error_line(capsys, rc)
    rc = main(["train", ARCH, *TINY_TRAIN, "data.name=cifar10"])
    assert "data.root" in one_error_line(capsys, rc)


def test_train_shape_mismatch_is_an_error_line(capsys):
    # a space given 3x32x32 inputs explicitly; synthetic data are 1x16x16
    rc = main(["train", ARCH, "space.in_channels=3", "space.input_size=32", "data.name=synthetic",
               "data.val_size=100", "device=cpu"])
    assert "space.in_channels=1" in one_error_line(capsys, rc)


def test_rank_errors(tmp_path, capsys):
    pred = tmp_path / "pred.jsonl"
    pred.write_text('{"arch": "a", "accuracy": 1}\nnot json\n')
    (tmp_path / "truth.json").write_text(json.dumps({"a": 1.0, "b": 2.0}))
    rc = main(["rank", str(pred), str(tmp_path / "truth.json")])
    assert "pred.jsonl:2" in one_error_line(capsys, rc)
    pred.write_text('{"arch": "a", "accuracy": 1}\n')
    rc = main(["rank", str(pred), str(tmp_path / "missing.json")])
    assert "missing.json not found" in one_error_line(capsys, rc)


def test_keyboard_interrupt_exits_130(config_file, tmp_path, capsys, monkeypatch):
    import distilnas.train.loop as loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "run_search", interrupted)
    assert main(["search", str(config_file), "--out", str(tmp_path / "run")]) == 130
    assert "--resume" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["search"])
    assert e.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # an override without '='
        main(["search", "c.yaml", "--out", "run", "train.epochs"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "distilnas search: error: override 'train.epochs' is not key=value (e.g. train.epochs=5)"
    with pytest.raises(SystemExit) as e:
        main(["list", "spaces", "*", "--bogus"])
    assert e.value.code == 2
    assert "distilnas list: error:" in capsys.readouterr().err


def test_search_prints_the_next_commands(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", str(config_file), "--out", str(out), "select.num_archs=2"]) == 0
    stdout = capsys.readouterr().out
    for cmd in (f"distilnas report {out}", f"distilnas score {out} --archs", f"distilnas rank {out}/gt_scores.jsonl",
                f"distilnas retrain {out}/result.json"):
        assert cmd in stdout
    if importlib.util.find_spec("matplotlib"):  # the search ends with its report
        assert f"report: {out}/report.md (scores.png, training.png)" in stdout
        assert (out / "training.png").read_bytes()[:4] == b"\x89PNG" and (out / "report.md").exists()


def test_a_failed_report_does_not_fail_the_search(config_file, tmp_path, capsys, monkeypatch):
    import distilnas.report

    def broken(*a, **k):
        raise RuntimeError("figure backend exploded")

    monkeypatch.setattr(distilnas.report, "write_report", broken)
    out = tmp_path / "run"
    assert main(["search", str(config_file), "--out", str(out), "select.num_archs=2"]) == 0
    assert "no report (RuntimeError: figure backend exploded); the run is complete" in capsys.readouterr().out
    assert (out / "result.json").exists()


def test_next_commands_use_the_committed_ground_truth(monkeypatch):
    from distilnas.commands.search import _next_steps
    from distilnas.config import load_yaml
    from distilnas.train.loop import resolve_config

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    text = _next_steps("runs/spos", resolve_config(load_yaml("configs/bench/spos_nb201_fmnist16.yaml")))
    assert "--archs benchmarks/groundtruth/nb201_fmnist16/archs.txt" in text
    assert "--truth benchmarks/groundtruth/nb201_fmnist16/table.json" in text


def test_progress_lines_when_not_on_a_terminal(tmp_path, capsys, monkeypatch, trained_run):
    """Logs and CI get a line with the step, rate and ETA every DISTILNAS_PROGRESS_EVERY seconds; the
    scoring phase reports too."""
    from distilnas.progress import LineProgress, progress_bar

    bar = LineProgress(total=10, desc="work", every=1e-9, initial=2)
    bar.update(3)
    line = capsys.readouterr().err.strip()
    assert line.startswith("work: 5/10 (50%)") and "/s" in line and "ETA" in line
    assert isinstance(progress_bar(total=3, desc="x"), LineProgress)  # stderr is captured: not a terminal
    monkeypatch.setenv("DISTILNAS_PROGRESS_EVERY", "1e-9")
    f = tmp_path / "archs.txt"
    f.write_text(ARCH + "\n")
    assert main(["score", str(trained_run), "--archs", str(f), "--out", str(tmp_path / "s.jsonl")]) == 0
    assert "scoring: 1/1 (100%)" in capsys.readouterr().err


def test_config_prints_every_default(capsys):
    assert main(["config", "train.epochs=3", "algorithm.name=rdnas"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["train"]["epochs"] == 3 and cfg["algorithm"]["sampler"] == "group" and "select" in cfg
    line = one_error_line(capsys, main(["config", "train.nope=1"]))
    assert "unknown config key 'train.nope'" in line


def test_a_bare_override_shows_the_command_usage(config_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", str(config_file), "--out", str(tmp_path / "r"), "train.epochs"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage: distilnas search")
    assert "override 'train.epochs' is not key=value" in err


def test_train_takes_its_input_shape_from_the_data(tmp_path, capsys):
    """`distilnas train ARCH` with the default space and data: the network fits the data's shape."""
    rc = main(["train", ARCH, "space.C=4", "space.N=1", "data.name=synthetic", "data.val_size=50",
               "data.train_size=64", "data.test_size=50", "recipe.epochs=1", "recipe.batch_size=32", "device=cpu"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["params"] > 0


def test_openmp_spins_briefly_by_default():
    """Spinning OpenMP threads fight other processes and sleeping ones wake too late (docs/performance.md):
    importing distilnas bounds the spin unless the environment sets a policy or a spin count."""
    import os
    import subprocess
    import sys

    def spin(env):
        code = "import os, distilnas; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()

    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    assert spin(base) == "10000 None"
    assert spin({**base, "OMP_WAIT_POLICY": "ACTIVE"}) == "None ACTIVE"
    assert spin({**base, "GOMP_SPINCOUNT": "5"}) == "5 None"


def test_help_imports_neither_torch_nor_scipy():
    """`distilnas --help`, `search --help` and `list` answer without importing torch or scipy (start-up time)."""
    import subprocess
    import sys

    code = ("import sys\nfrom distilnas.cli import main\n"
            "for argv in (['--help'], ['search', '--help'], ['report', '--help'], ['list']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    assert out == "[]"


def test_list_names_what_the_registries_hold(capsys):
    """`list` reads the names from the registering decorators; they are exactly the registries' names."""
    from distilnas.algorithms import ALGORITHMS
    from distilnas.commands.list import builtin
    from distilnas.data import DATASETS
    from distilnas.proxies import PROXIES
    from distilnas.spaces import SPACES

    for kind, reg in {"spaces": SPACES, "algorithms": ALGORITHMS, "datasets": DATASETS, "proxies": PROXIES}.items():
        assert builtin(kind) == reg.list() and len(reg) > 0
    assert main(["list", "proxies", "*o*"]) == 0
    assert capsys.readouterr().out.strip() == "proxies: " + ", ".join(n for n in PROXIES.list("*o*"))


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`distilnas bench report DIR | head -1`: the closed pipe ends the command with status 141 (as SIGPIPE
    would) and no traceback."""
    import os
    import subprocess
    import sys

    (tmp_path / "runs.jsonl").write_text("".join(
        json.dumps({"arch": a, "seed": s, "accuracy": 80 + i + s / 10}) + "\n" for i, a in enumerate("abc") for s in (0, 1)))
    read, write = os.pipe()
    os.close(read)  # nobody reads: the first print fails with EPIPE
    proc = subprocess.run([sys.executable, "-m", "distilnas.cli", "bench", "report", str(tmp_path)], stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert proc.returncode == 141 and "Traceback" not in proc.stderr, proc.stderr
