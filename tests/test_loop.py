"""Tests of the search run (distilnas.train.loop), checkpoints and scoring (distilnas.evaluate.scoring)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from distilnas.algorithms import SPOS
from distilnas.config import ConfigError, load_yaml
from distilnas.data import DataConfig, load_dataset
from distilnas.evaluate.scoring import ScoreConfig, recalibrate_bn, score_archs
from distilnas.spaces import NB201Config, NB201Space
from distilnas.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from distilnas.train.loop import RunError, load_supernet, resolve_config, run_search
from distilnas.train.standalone import evaluate

from conftest import SEARCH_DICT


def search(d: dict[str, Any], out: Path, **kw: Any) -> dict[str, Any]:
    return run_search(resolve_config(copy.deepcopy(d)), out, progress=False, **kw)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def two_epochs(augment: bool = True) -> dict[str, Any]:
    d = copy.deepcopy(SEARCH_DICT)
    d["train"]["epochs"] = 2
    d["data"]["augment"] = augment  # the loader's generator state must survive a resume too
    return d


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """A 2-epoch search run without interruption."""
    out = tmp_path_factory.mktemp("straight") / "run"
    search(two_epochs(), out)
    return out


def model_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoint.pt")["model"]


def ranking(run_dir: Path) -> list[tuple[str, float, float]]:
    return [(r["arch"], r["accuracy"], r["loss"]) for r in jsonl(run_dir / "scores.jsonl")]


# -- one run ----------------------------------------------------------------------------------------
def test_run_search_writes_its_files(trained_run):
    for name in ("config.yaml", "checkpoint.pt", "metrics.jsonl", "result.json", "scores.jsonl"):
        assert (trained_run / name).is_file(), name
    cfg = resolve_config(load_yaml(trained_run / "config.yaml"))
    assert cfg == resolve_config(copy.deepcopy(SEARCH_DICT))  # the saved config reproduces the run
    result = json.loads((trained_run / "result.json").read_text())
    space = NB201Space(NB201Config(**{k: v for k, v in cfg.space.items() if k != "name"}))
    best = result["best"]
    assert result["arch"] == best["arch"] and result["algorithm"] == "spos" and result["space"] == "nb201"
    assert 0.0 <= best["accuracy"] <= 100.0
    assert {"params": best["params"], "flops": best["flops"]} == space.cost(space.parse(best["arch"]))
    assert len(result["top"]) == cfg.select.top and result["num_scored"] == cfg.select.num_archs
    scores = jsonl(trained_run / "scores.jsonl")
    assert len(scores) == cfg.select.num_archs == len({r["arch"] for r in scores})
    assert all(set(r) >= {"arch", "accuracy", "loss"} for r in scores)
    assert max(r["accuracy"] for r in scores) == best["accuracy"]
    steps_per_epoch = cfg.data.train_size // cfg.train.batch_size
    assert result["steps"] == result["passes"] == cfg.train.epochs * steps_per_epoch
    epochs = [r for r in jsonl(trained_run / "metrics.jsonl") if "train_loss" in r]
    assert [r["epoch"] for r in epochs] == list(range(1, cfg.train.epochs + 1))
    state = load_checkpoint(trained_run / "checkpoint.pt")
    assert state["epoch"] == cfg.train.epochs and state["step"] == result["steps"]


def test_load_supernet_restores_the_weights(trained_run):
    run, state = load_supernet(trained_run / "checkpoint.pt")
    own = run.supernet.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state["model"].items())
    assert run.cfg == resolve_config(copy.deepcopy(SEARCH_DICT))


# -- resume -----------------------------------------------------------------------------------------
def interrupt_at(monkeypatch: pytest.MonkeyPatch, at_epoch: int) -> None:
    """Raise KeyboardInterrupt at the end of epoch index ``at_epoch`` (before its checkpoint)."""
    def on_epoch_end(self, epoch):
        if epoch == at_epoch:
            raise KeyboardInterrupt
        return {}

    monkeypatch.setattr(SPOS, "on_epoch_end", on_epoch_end)


def test_resume_is_exact(straight, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        interrupt_at(m, 1)
        with pytest.raises(KeyboardInterrupt):
            search(two_epochs(), out)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert not (out / "result.json").exists()
    search(two_epochs(), out, resume=True)
    a, b = model_state(straight), model_state(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ranking(out) == ranking(straight)
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (straight, out))
    for key in ("arch", "best", "top", "steps", "passes"):
        assert ra[key] == rb[key], key
    ma = [{k: v for k, v in r.items() if "seconds" not in k} for r in jsonl(straight / "metrics.jsonl")]
    mb = [{k: v for k, v in r.items() if "seconds" not in k} for r in jsonl(out / "metrics.jsonl")]
    assert ma == mb  # no duplicated or missing lines, same losses


def test_resume_with_another_config_is_refused(straight, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes((straight / "checkpoint.pt").read_bytes())
    d = two_epochs()
    d["train"]["lr"] = 0.5
    with pytest.raises(CheckpointError, match="different config") as e:
        search(d, out, resume=True)
    assert "train.lr" in str(e.value) and "\n" not in str(e.value)


def test_existing_run_needs_resume(trained_run, tmp_path):
    with pytest.raises(RunError, match="--resume"):
        search(SEARCH_DICT, trained_run)
    with pytest.raises(RunError, match="no checkpoint.pt"):
        search(SEARCH_DICT, tmp_path / "fresh", resume=True)


# -- checkpoints ------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint({"epoch": 3, "model": {"w": torch.ones(2)}}, p)
    state = load_checkpoint(p)
    assert state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))
    assert not (tmp_path / "c.pt.tmp").exists()


@pytest.mark.parametrize("kind, fragment", [
    ("missing", "not found"),
    ("corrupt", "is corrupt"),
    ("truncated", "is corrupt"),
    ("foreign", "not a distilnas checkpoint"),
    ("not a dict", "not a distilnas checkpoint"),
    ("version", "format version 99"),
])
def test_bad_checkpoints(tmp_path, trained_run, kind, fragment):
    p = tmp_path / "checkpoint.pt"
    if kind == "corrupt":
        p.write_bytes(b"\x00garbage" * 20)
    elif kind == "truncated":
        p.write_bytes((trained_run / "checkpoint.pt").read_bytes()[:1000])
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(1)}}, p)
    elif kind == "not a dict":
        torch.save([1, 2, 3], p)
    elif kind == "version":
        torch.save({"format": "distilnas-checkpoint", "version": 99}, p)
    with pytest.raises(CheckpointError, match=fragment) as e:
        load_checkpoint(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_resume_from_a_corrupt_checkpoint(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="corrupt"):
        search(SEARCH_DICT, out, resume=True)


# -- reproducibility --------------------------------------------------------------------------------
def test_same_seed_same_result_other_seed_differs(trained_run, tmp_path):
    search(SEARCH_DICT, tmp_path / "again")
    assert ranking(tmp_path / "again") == ranking(trained_run)
    a, b = model_state(trained_run), model_state(tmp_path / "again")
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = copy.deepcopy(SEARCH_DICT)
    other["seed"] = 1
    search(other, tmp_path / "other")
    c = model_state(tmp_path / "other")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_input_shape_mismatch_is_a_config_error(tmp_path):
    d = copy.deepcopy(SEARCH_DICT)
    d["space"]["input_size"] = 32
    with pytest.raises(ConfigError, match="space.input_size=16"):
        search(d, tmp_path / "run")


# -- scoring ----------------------------------------------------------------------------------------
def test_recalibrate_bn_is_a_cumulative_average():
    bn = nn.BatchNorm2d(2, momentum=0.1)
    model = nn.Sequential(bn).eval()
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(9.0)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 2, 3, 3, generator=g) * s + s for n, s in ((4, 1.0), (2, 3.0), (6, -2.0))]
    recalibrate_bn(model, batches)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches])
    vars_ = torch.stack([b.transpose(0, 1).reshape(2, -1).var(dim=1, unbiased=True) for b in batches])
    torch.testing.assert_close(bn.running_mean, means.mean(0))  # the mean of batch means, old stats gone
    torch.testing.assert_close(bn.running_var, vars_.mean(0))
    assert bn.momentum == 0.1 and not model.training
    model.train()
    recalibrate_bn(model, batches[:1], forward=lambda x: model(x * 0 + 1))
    torch.testing.assert_close(bn.running_mean, torch.ones(2))
    assert model.training


@pytest.fixture(scope="module")
def scoring_setup():
    data = load_dataset(DataConfig(name="synthetic", val_size=64, train_size=96))
    space = NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16))
    torch.manual_seed(0)
    sn = space.supernet()
    sn.train()
    with torch.no_grad():
        for k in range(3):
            sn(data.train_x[:32], space.sample(random.Random(k)))
    return space, sn, data


def test_score_archs_equals_evaluating_the_extracted_network(scoring_setup):
    space, sn, data = scoring_setup
    archs = [space.sample(random.Random(10 + k)) for k in range(3)]
    cfg = ScoreConfig(bn_recal_batches=2, bn_recal_batch_size=32, val_size=40, batch_size=16)
    rows = list(score_archs(sn, archs, data, cfg))
    assert [r["arch"] for r in rows] == [str(a) for a in archs]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 100.0 and r["loss"] > 0
    # after scoring, the supernet's BN statistics are those recalibrated for the last arch
    net = sn.extract(archs[-1]).eval()
    res = evaluate(net, data.val_x[:40], data.val_y[:40])
    assert res["accuracy"] == pytest.approx(rows[-1]["accuracy"])
    assert res["loss"] == pytest.approx(rows[-1]["loss"], rel=1e-5)
    again = list(score_archs(sn, archs, data, cfg, channels_last=True))
    for r, s in zip(rows, again):
        assert r["accuracy"] == s["accuracy"] and r["loss"] == pytest.approx(s["loss"], rel=1e-5)


def test_score_archs_without_recalibration_keeps_running_stats(scoring_setup):
    space, sn, data = scoring_setup
    before = {k: v.clone() for k, v in sn.state_dict().items()}
    cfg = ScoreConfig(bn_recal_batches=0, val_size=20)
    rows = list(score_archs(sn, [space.sample(random.Random(1))], data, cfg))
    assert len(rows) == 1 and set(rows[0]) == {"arch", "accuracy", "loss"}
    assert all(torch.equal(before[k], v) for k, v in sn.state_dict().items())


def test_result_records_the_platform(trained_run):
    """A seed pins a run on one platform only: result.json says which (versions, CPU kernels, threads)."""
    import json

    env = json.loads((trained_run / "result.json").read_text())["environment"]
    assert env["torch"] == torch.__version__ and env["torch_threads"] >= 1 and env["device"] == "cpu"
    assert env["cpu"] and env["cpu_capability"] and env["distilnas"]


def test_score_recal_seed_and_val_offset(trained_run):
    """Other BN-recalibration images and the other validation images: other, equally valid scores."""
    from distilnas.data import load_dataset
    from distilnas.evaluate.scoring import ScoreConfig, score_archs
    from distilnas.train.loop import load_supernet

    run, _ = load_supernet(trained_run)
    data = load_dataset(run.cfg.data)
    arch = run.space.sample(__import__("random").Random(0))

    def score(**kw):
        cfg = ScoreConfig(bn_recal_batches=1, bn_recal_batch_size=32, val_size=64, batch_size=64, **kw)
        return next(score_archs(run.supernet, [arch], data, cfg))

    base = score()
    assert score(recal_seed=0) == base and score(recal_seed=1)["loss"] != base["loss"]
    assert score(val_offset=64)["loss"] != base["loss"]
    with pytest.raises(ValueError, match="val_offset=500 leaves none"):
        score(val_offset=500)


def test_scores_csv_and_result_fields(trained_run):
    import csv
    import json

    rows = list(csv.DictReader((trained_run / "scores.csv").open()))
    scores = [json.loads(ln) for ln in (trained_run / "scores.jsonl").read_text().splitlines()]
    assert [r["arch"] for r in rows] == [s["arch"] for s in scores]
    assert {"arch", "accuracy", "loss", "flops", "params"} <= set(rows[0]) and int(rows[0]["flops"]) > 0
    fields = json.loads((trained_run / "result.json").read_text())["fields"]
    assert "not the accuracy of the architecture trained on its own" in fields["accuracy"]


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    import copy

    from conftest import SEARCH_DICT
    from distilnas.train.loop import resolve_config, run_search

    d = copy.deepcopy(SEARCH_DICT)
    d["train"]["tensorboard"] = True
    run_search(resolve_config(d), tmp_path / "run", progress=False)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/lr", "epoch/train_loss", "epoch/train_acc"} <= tags
    assert len(events.Scalars("step/loss")) == 2  # steps 2 and 4 (log_every 2)


def test_tensorboard_missing_is_one_line(tmp_path, monkeypatch):
    import copy
    import sys

    from conftest import SEARCH_DICT
    from distilnas.config import ConfigError
    from distilnas.train.loop import resolve_config, run_search

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    d = copy.deepcopy(SEARCH_DICT)
    d["train"]["tensorboard"] = True
    with pytest.raises(ConfigError, match=r"pip install 'distilnas\[tensorboard\]'"):
        run_search(resolve_config(d), tmp_path / "run", progress=False)


def test_search_and_score_set_threads_and_restore_them(search_dict, trained_run, tmp_path, monkeypatch):
    """One way to set torch threads (train.parallel.torch_threads): the search and ``score`` use
    train.threads while they run and leave the caller's setting as it was."""
    import distilnas.train.parallel as parallel
    from distilnas.cli import main

    seen: list[int] = []
    real = parallel.torch_threads

    def spy(n: int):
        seen.append(n)
        return real(n)

    monkeypatch.setattr(parallel, "torch_threads", spy)
    monkeypatch.setattr("distilnas.train.loop.torch_threads", spy)
    before = torch.get_num_threads()
    search_dict["train"]["threads"] = 2
    run_search(resolve_config(search_dict), tmp_path / "run", progress=False)
    assert seen == [2] and torch.get_num_threads() == before
    archs = tmp_path / "archs.txt"
    archs.write_text(json.loads((trained_run / "result.json").read_text())["arch"] + "\n")
    assert main(["score", str(trained_run), "--archs", str(archs), "--out", str(tmp_path / "s.jsonl"),
                 "train.threads=2"]) == 0
    assert seen == [2, 2] and torch.get_num_threads() == before


def test_resume_accepts_a_new_thread_count_but_not_a_new_recipe(search_dict, tmp_path):
    """Runtime-only keys (threads, logging) may change on --resume; what the run computes may not."""
    run_search(resolve_config(copy.deepcopy(search_dict)), tmp_path / "run", progress=False)
    search_dict["train"].update(threads=2, log_every=1)
    assert run_search(resolve_config(copy.deepcopy(search_dict)), tmp_path / "run", resume=True, progress=False)
    search_dict["train"]["lr"] = 0.1
    with pytest.raises(CheckpointError, match="train.lr"):
        run_search(resolve_config(search_dict), tmp_path / "run", resume=True, progress=False)


def test_snapshots_keep_the_weights_of_every_nth_epoch(tmp_path, straight):
    """train.snapshot_every=1: DIR/snapshots/epochE.pt after each epoch, loadable for scoring; the last one
    holds the final weights; the same search without snapshots trains identically."""
    d = two_epochs()
    d["train"]["snapshot_every"] = 1
    out = tmp_path / "run"
    search(d, out)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["epoch1.pt", "epoch2.pt"]
    last, first = load_checkpoint(out / "snapshots" / "epoch2.pt"), load_checkpoint(out / "snapshots" / "epoch1.pt")
    assert (last["epoch"], first["epoch"]) == (2, 1) and "optimizer" not in last
    final = model_state(out)
    assert all(torch.equal(last["model"][k], v) for k, v in final.items())
    assert not all(torch.equal(first["model"][k], v) for k, v in final.items())
    assert all(torch.equal(model_state(straight)[k], v) for k, v in final.items())
    run, state = load_supernet(out / "snapshots" / "epoch1.pt")
    assert state["epoch"] == 1 and all(torch.equal(run.supernet.state_dict()[k], v) for k, v in first["model"].items())
    d["train"]["snapshot_every"] = 2  # how often to snapshot is not part of what the run computes
    d["train"]["epochs"] = 3
    search(d, out, extend=True)
    assert (out / "snapshots" / "epoch2.pt").exists() and not (out / "snapshots" / "epoch3.pt").exists()


def _weights_after(search_dict: dict[str, Any], out: Path, **train: Any) -> dict[str, torch.Tensor]:
    d = copy.deepcopy(search_dict)
    d["train"].update(train)
    search(d, out)
    return {k: v for k, v in model_state(out).items() if v.is_floating_point()}


def test_zero_grad_zeros_keeps_stepping_weights_off_the_path(search_dict, tmp_path):
    """train.zero_grad: 'zeros' (official Cream/SPOS/DNA under PyTorch < 2) gives the weights of ops sampled
    earlier but not at this step a momentum and weight-decay step; 'none' (the default) leaves them alone.
    The two differ only through those steps: without momentum and weight decay they train the same weights."""
    none = _weights_after(search_dict, tmp_path / "none", zero_grad="none")
    zeros = _weights_after(search_dict, tmp_path / "zeros", zero_grad="zeros")
    assert any(not torch.equal(none[k], zeros[k]) for k in none)
    plain = dict(momentum=0.0, weight_decay=0.0)
    none0 = _weights_after(search_dict, tmp_path / "none0", zero_grad="none", **plain)
    zeros0 = _weights_after(search_dict, tmp_path / "zeros0", zero_grad="zeros", **plain)
    assert all(torch.equal(none0[k], zeros0[k]) for k in none0)


def test_resume_refuses_another_zero_grad(search_dict, tmp_path):
    run_search(resolve_config(copy.deepcopy(search_dict)), tmp_path / "run", progress=False)
    search_dict["train"]["zero_grad"] = "zeros"
    with pytest.raises(CheckpointError, match="train.zero_grad"):
        run_search(resolve_config(search_dict), tmp_path / "run", resume=True, progress=False)
