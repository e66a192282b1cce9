"""``distilnas retrain`` (standalone retraining + export) and the random-search baseline."""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import distilnas.train.retrain as rt
from distilnas.cli import main
from distilnas.config import ConfigError, from_dict, load_yaml
from distilnas.spaces import build_space_config
from distilnas.data import DataConfig, load_dataset
from distilnas.spaces import create_space
from distilnas.train.random_search import RandomSearchConfig, random_search, sample_in_flops_range
from distilnas.train.retrain import RetrainConfig, load_exported, retrain, train_architecture
from distilnas.train.standalone import evaluate

from conftest import TINY_SPACE, one_error_line

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
DATA = {"name": "synthetic", "val_size": 100, "train_size": 64, "test_size": 50}
RECIPE = {"epochs": 1, "batch_size": 32}
OPTS: dict[str, Any] = {"space": TINY_SPACE, "data": DATA, "recipe": RECIPE, "device": "cpu", "export_onnx": False}
CLI_OPTS = [f"space.{k}={v}" for k, v in TINY_SPACE.items()] + [f"data.{k}={v}" for k, v in DATA.items()] + \
    [f"recipe.{k}={v}" for k, v in RECIPE.items()] + ["device=cpu"]
HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in rt.ONNX_PACKAGES)


def opts(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(OPTS)
    for k, v in changes.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_splits():
    return load_dataset(from_dict(DataConfig, DATA))


# -- retrain ----------------------------------------------------------------------------------------
def test_retrain_arch_string_writes_files_and_reloads(tmp_path):
    out = tmp_path / "rt"
    r = retrain(ARCH, opts(), out=out, progress=False)
    assert {p.name for p in out.iterdir()} == {"result.json", "arch.json", "model.pt"}  # export_onnx=false
    saved = json.loads((out / "result.json").read_text())
    assert saved == json.loads(json.dumps(r))
    assert saved["arch"] == ARCH and saved["source"] is None and saved["onnx"] == "off"
    assert {"val_accuracy", "test_accuracy", "params", "flops", "seconds", "recipe_hash"} <= set(saved)
    assert saved["config"]["space"]["C"] == 4 and saved["config"]["data"]["train_size"] == 64
    space = create_space("nb201", build_space_config("nb201", TINY_SPACE))
    assert saved["flops"] == space.cost(space.parse(ARCH))["flops"]
    meta = json.loads((out / "arch.json").read_text())
    assert meta["space"] == "nb201" and meta["arch"] == ARCH and meta["space_config"]["C"] == 4
    # the rebuilt network is the trained one: the same test loss as measured right after training
    model = load_exported(out)
    assert not model.training
    d = tiny_splits()
    again = evaluate(model, d.test_x, d.test_y)
    assert again["loss"] == pytest.approx(saved["test_loss"], rel=1e-5)
    assert again["accuracy"] == pytest.approx(saved["test_accuracy"])
    fresh = space.build(space.parse(ARCH), seed=1).eval()
    assert evaluate(fresh, d.test_x, d.test_y)["loss"] != pytest.approx(saved["test_loss"], rel=1e-5)
    # a retrain's own result can be retrained (space and data from its stored config)
    again = retrain(out, {"recipe": RECIPE, "device": "cpu", "export_onnx": False}, progress=False)
    assert again["source"] == str(out / "result.json") and again["config"]["space"] == saved["config"]["space"]


def test_load_exported_matches_the_trained_model(tmp_path, monkeypatch):
    """Capture the model object that trained; the reloaded one gives the same outputs."""
    trained = {}
    real = rt.train_standalone

    def spy(model, *args, **kwargs):
        trained["model"] = model
        return real(model, *args, **kwargs)

    monkeypatch.setattr(rt, "train_standalone", spy)
    cfg = from_dict(RetrainConfig, opts())
    train_architecture(ARCH, cfg, tmp_path, progress=False)
    x = torch.randn(5, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(load_exported(tmp_path / "arch.json")(x), trained["model"].eval()(x))


def test_retrain_from_search_result(trained_run, tmp_path, capsys):
    search = json.loads((trained_run / "result.json").read_text())
    r = retrain(trained_run / "result.json", {"recipe": RECIPE, "device": "cpu", "export_onnx": False,
                                              "data": {"test_size": 20}}, out=tmp_path / "a", progress=False)
    assert r["arch"] == search["arch"] and r["source"] == str(trained_run / "result.json")
    run_cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert r["config"]["space"] == run_cfg["space"]  # the run's space ...
    assert r["config"]["data"] == {**run_cfg["data"], "test_size": 20}  # ... and data, with the override
    # the run directory works too, and so does the command line
    rc = main(["retrain", str(trained_run), "--out", str(tmp_path / "b"), "recipe.epochs=1",
               "recipe.batch_size=32", "device=cpu", "export_onnx=false"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert f"retrained {search['arch']}" in stdout and "test acc" in stdout
    b = json.loads((tmp_path / "b" / "result.json").read_text())
    assert b["arch"] == search["arch"] and b["source"] == r["source"]
    assert b["config"]["space"] == run_cfg["space"] and b["config"]["data"] == run_cfg["data"]


def test_retrain_typed_config(trained_run, tmp_path):
    """A complete RetrainConfig is used as it is; only the arch comes from the result."""
    search = json.loads((trained_run / "result.json").read_text())
    run_cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    cfg = from_dict(RetrainConfig, opts(space=run_cfg["space"]))
    r = retrain(trained_run, cfg, progress=False)
    assert r["arch"] == search["arch"] and r["config"]["data"]["train_size"] == 64


def test_ema_changes_the_weights(tmp_path):
    def weights(name: str, ema: float) -> dict[str, torch.Tensor]:
        cfg = from_dict(RetrainConfig, opts(recipe={"ema_decay": ema, "epochs": 2}))
        train_architecture(ARCH, cfg, tmp_path / name, progress=False)
        return torch.load(tmp_path / name / "model.pt", weights_only=True)

    plain, again, ema = weights("a", 0.0), weights("b", 0.0), weights("c", 0.5)
    assert all(torch.equal(plain[k], again[k]) for k in plain)  # deterministic without EMA ...
    diff = [k for k in plain if plain[k].is_floating_point() and not torch.equal(plain[k], ema[k])]
    assert any(k.endswith("weight") for k in diff)  # ... so EMA is what changed them


def test_onnx_skipped_cleanly_without_packages(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rt, "missing_onnx_packages", lambda: ["onnxscript"])
    rc = main(["retrain", ARCH, "--out", str(tmp_path / "a"), *CLI_OPTS])  # export_onnx=auto
    assert rc == 0
    captured = capsys.readouterr()
    note = [ln for ln in captured.out.splitlines() if "ONNX" in ln]
    assert len(note) == 1 and "skipped" in note[0] and "pip install onnx onnxscript" in note[0]
    assert all(ln.startswith("epoch ") for ln in captured.err.splitlines())  # progress lines only
    assert (tmp_path / "a" / "model.pt").is_file() and not (tmp_path / "a" / "model.onnx").exists()
    assert json.loads((tmp_path / "a" / "result.json").read_text())["onnx"] == "skipped"
    # export_onnx=true without the packages: an error before any training
    rc = main(["retrain", ARCH, "--out", str(tmp_path / "b"), *CLI_OPTS, "export_onnx=true"])
    assert "pip install onnx" in one_error_line(capsys, rc)
    assert not (tmp_path / "b").exists()


def test_failing_onnx_export_keeps_the_weights(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded\nTraceback-like second line")

    monkeypatch.setattr(rt, "missing_onnx_packages", lambda: [])
    monkeypatch.setattr(torch.onnx, "export", broken)
    r = retrain(ARCH, opts(export_onnx="auto"), out=tmp_path / "a", progress=False)
    assert r["onnx"] == "failed" and "exporter exploded" in r["onnx_note"] and "\n" not in r["onnx_note"]
    assert (tmp_path / "a" / "model.pt").is_file() and not (tmp_path / "a" / "model.onnx").exists()
    assert load_exported(tmp_path / "a") is not None
    rc = main(["retrain", ARCH, "--out", str(tmp_path / "b"), *CLI_OPTS, "export_onnx=true"])
    line = one_error_line(capsys, rc)
    assert "exporter exploded" in line and "model.pt" in line
    assert (tmp_path / "b" / "model.pt").is_file() and (tmp_path / "b" / "result.json").is_file()


@pytest.mark.skipif(not HAVE_ONNX, reason="needs onnx and onnxscript (pip install onnx onnxscript)")
def test_onnx_export_matches_torch(tmp_path):
    import onnx
    from onnx.reference import ReferenceEvaluator

    r = retrain(ARCH, opts(export_onnx=True), out=tmp_path, progress=False)
    assert r["onnx"] == "exported" and "onnx_note" not in r
    proto = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(proto)
    x = torch.randn(3, 1, 16, 16)  # another batch size than the export's example (dynamic batch)
    got = ReferenceEvaluator(proto).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), load_exported(tmp_path)(x), rtol=1e-4, atol=1e-5)


def test_retrain_error_lines(trained_run, tmp_path, capsys):
    rc = main(["retrain", "runs/missing/result.json", *CLI_OPTS])
    assert "looks like a path" in one_error_line(capsys, rc)
    rc = main(["retrain", "|nor_conv_3x3~0|+|oops|", *CLI_OPTS])
    line = one_error_line(capsys, rc)
    assert "not a file or directory" in line and "malformed NB201 arch" in line
    rc = main(["retrain", ARCH, *CLI_OPTS, "space.ops=[none,skip_connect]"])
    assert "which this space excludes" in one_error_line(capsys, rc)
    no_arch = tmp_path / "noarch" / "result.json"
    no_arch.parent.mkdir()
    no_arch.write_text(json.dumps({"best": None}))
    rc = main(["retrain", str(no_arch), *CLI_OPTS])
    assert "has no 'arch'" in one_error_line(capsys, rc)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(trained_run / "result.json", bare / "result.json")
    rc = main(["retrain", str(bare), *CLI_OPTS])
    assert "no config.yaml" in one_error_line(capsys, rc)
    rc = main(["retrain", str(tmp_path / "noarch" / ".."), *CLI_OPTS])
    assert "has no result.json" in one_error_line(capsys, rc)
    rc = main(["retrain", str(trained_run), *CLI_OPTS, "space.ops=[none]"])
    assert "not valid in the configured space" in one_error_line(capsys, rc)
    rc = main(["retrain", ARCH, *CLI_OPTS, "recipe.epochz=1"])
    assert "'recipe.epochz'" in one_error_line(capsys, rc)
    rc = main(["retrain", ARCH, *CLI_OPTS, "export_onnx=maybe"])
    assert "export_onnx='maybe'" in one_error_line(capsys, rc)
    rc = main(["retrain", ARCH, *CLI_OPTS, "--out", str(trained_run)])  # would replace the search's result
    assert "holds a search" in one_error_line(capsys, rc)
    with pytest.raises(FileNotFoundError, match="arch.json not found"):
        load_exported(tmp_path)


def test_retrain_configs_parse():
    files = sorted(Path(__file__).parents[1].glob("configs/retrain/*.yaml"))
    assert files
    for f in files:
        data = load_yaml(f)
        if "search_recipe" in data:
            cfg = from_dict(RandomSearchConfig, data)
        else:
            cfg = from_dict(RetrainConfig, data)
            rt._onnx_mode(cfg.export_onnx)
        build_space_config(str(cfg.space.get("name", "nb201")), cfg.space)


# -- random search ------------------------------------------------------------------------------------
@pytest.fixture
def rs_cfg() -> RandomSearchConfig:
    space = create_space("nb201", build_space_config("nb201", TINY_SPACE))
    flops = sorted(space.cost(space.sample(random.Random(i)))["flops"] for i in range(40))
    lo, hi = flops[10], flops[30]  # a middle band of the space
    return from_dict(RandomSearchConfig, {"seed": 0, "space": TINY_SPACE, "data": DATA, "num_archs": 3,
                                          "flops_min": lo, "flops_max": hi, "search_recipe": RECIPE,
                                          "workers": 1, "device": "cpu", "top": 2})


def test_random_search_end_to_end(rs_cfg, tmp_path, capsys):
    out = tmp_path / "rs"
    r = random_search(rs_cfg, out, progress=False)
    space = create_space("nb201", build_space_config("nb201", TINY_SPACE))
    rows = [json.loads(ln) for ln in (out / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and r["num_scored"] == 3 and r["trained_now"] == 3
    archs = [space.parse(row["arch"]) for row in rows]
    assert len({a.isomorphism_key() for a in archs}) == 3  # distinct
    for a, row in zip(archs, rows):
        assert rs_cfg.flops_min <= space.cost(a)["flops"] == row["flops"] <= rs_cfg.flops_max
    # the shape of distilnas search's result.json
    saved = json.loads((out / "result.json").read_text())
    assert saved["arch"] == saved["best"]["arch"] == saved["top"][0]["arch"]
    assert {"accuracy", "params", "flops"} <= set(saved["best"])
    best = max(rows, key=lambda row: (row["accuracy"], -row["flops"]))
    assert saved["best"]["accuracy"] == best["accuracy"] and len(saved["top"]) == 2
    assert saved["top"][0]["accuracy"] >= saved["top"][1]["accuracy"]
    assert yaml.safe_load((out / "config.yaml").read_text())["space"]["C"] == 4
    # resume: nothing to train again; a cut-off last line is redone
    again = random_search(rs_cfg, out, progress=False)
    assert again["trained_now"] == 0 and again["best"] == saved["best"]
    lines = (out / "runs.jsonl").read_text().splitlines()
    (out / "runs.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    third = random_search(rs_cfg, out, progress=False)
    assert third["trained_now"] == 1 and third["best"]["arch"] == saved["best"]["arch"]
    assert random_search(rs_cfg, out, progress=False)["trained_now"] == 0  # the redone line is whole
    # a changed recipe does not reuse the old candidates
    other = copy.deepcopy(rs_cfg)
    other.search_recipe.lr = 0.05
    assert random_search(other, out, progress=False)["trained_now"] == 3
    # its result retrains like a searched one
    random_search(rs_cfg, out, progress=False)
    rc = main(["retrain", str(out / "result.json"), "--out", str(tmp_path / "rt"), "recipe.epochs=1",
               "recipe.batch_size=32", "device=cpu", "export_onnx=false"])
    assert rc == 0
    retrained = json.loads((tmp_path / "rt" / "result.json").read_text())
    assert retrained["arch"] == saved["arch"] and retrained["config"]["space"]["C"] == 4


def test_random_search_cli_and_errors(rs_cfg, tmp_path, capsys):
    from distilnas.config import to_dict

    f = tmp_path / "rs.yaml"
    f.write_text(yaml.safe_dump({**to_dict(rs_cfg), "num_archs": 2}))
    rc = main(["random-search", str(f), "--out", str(tmp_path / "rs"), "top=1"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "best: " in stdout and "distilnas retrain" in stdout
    assert len(json.loads((tmp_path / "rs" / "result.json").read_text())["top"]) == 1
    rc = main(["random-search", str(f), "--out", str(tmp_path / "x"), "flops_min=1e12", "flops_max=0"])
    assert "found only 0 of 2" in one_error_line(capsys, rc)
    rc = main(["random-search", str(f), "--out", str(tmp_path / "x"), "flops_max=10"])
    assert "flops_max=10 is below flops_min" in one_error_line(capsys, rc)
    rc = main(["random-search", str(f), "--out", str(tmp_path / "x"), "num_arch=3"])
    assert "unknown config key 'num_arch'" in one_error_line(capsys, rc)


def test_sampling_uses_the_spaces_sample_in_range():
    space = create_space("nb201", build_space_config("nb201", TINY_SPACE))
    calls = []

    def in_range(rng, lo, hi):
        calls.append((lo, hi))
        return space.sample(rng)

    space.sample_in_range = in_range  # type: ignore[attr-defined]
    archs = sample_in_flops_range(space, 4, random.Random(0), 1.0, 0.0)
    assert len({a.isomorphism_key() for a in archs}) == 4
    assert calls and all(c == (1.0, float("inf")) for c in calls)
    with pytest.raises(ConfigError, match="found only"):  # more distinct cells than a 1-op space has
        one_op = create_space("nb201", build_space_config("nb201", {**TINY_SPACE, "ops": ["nor_conv_3x3"]}))
        sample_in_flops_range(one_op, 2, random.Random(0))


@pytest.mark.slow
def test_random_search_workers_match_in_process(rs_cfg, tmp_path):
    """Two spawned worker processes give the same candidates and accuracies as training in-process."""
    from distilnas.config import to_dict

    one = random_search(rs_cfg, tmp_path / "one", progress=False)
    two = random_search(from_dict(RandomSearchConfig, {**to_dict(rs_cfg), "workers": 2}), tmp_path / "two",
                        progress=False)

    def key(r: dict[str, Any]) -> list[tuple[str, float, int]]:
        return [(row["arch"], row["accuracy"], row["flops"]) for row in r["top"]]

    assert two["trained_now"] == 3 and key(one) == key(two)


def test_ema_batchnorm_statistics_match_the_averaged_weights():
    """The EMA model's BN statistics are those of its own weights (re-estimated on training batches), not
    an average of the statistics seen during training, which left the MobileNet retrain at chance."""
    import copy

    from distilnas.data import make_loader
    from distilnas.evaluate.scoring import bn_layers, recalibrate_bn
    from distilnas.spaces import NB201Config, NB201Space
    from distilnas.train.standalone import EMA_BN_BATCHES, Recipe, train_standalone
    from distilnas.data.datasets import Splits

    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 1, 16, 16, generator=g) * 2
    def split(n):
        y = torch.randint(0, 4, (n,), generator=g)
        return centers[y] + 0.5 * torch.randn(n, 1, 16, 16, generator=g), y
    (tx, ty), (vx, vy) = split(512), split(256)
    data = Splits(train_x=tx, train_y=ty, val_x=vx, val_y=vy, test_x=vx, test_y=vy, num_classes=4)
    space = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16, num_classes=4))
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|")
    torch.manual_seed(0)
    model = space.build(arch)
    out = train_standalone(model, data, Recipe(epochs=3, batch_size=32, lr=0.05, ema_decay=0.9), seed=0,
                           channels_last=False)
    assert out["val_accuracy"] > 60.0  # four well-separated classes; chance is 25%
    ref = copy.deepcopy(model)
    loader = make_loader(tx, ty, 32, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(1))
    recalibrate_bn(ref, (xb for xb, _ in list(loader)[:EMA_BN_BATCHES]))
    for a, b in zip(bn_layers(model), bn_layers(ref)):  # a full pass in another order: the same statistics
        assert torch.allclose(a.running_mean, b.running_mean, atol=1e-2)
        assert torch.allclose(a.running_var, b.running_var, rtol=5e-2)  # per-batch variances: batch order matters a little
