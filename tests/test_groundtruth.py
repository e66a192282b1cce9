"""Tests of the ground-truth builder (distilnas.evaluate.groundtruth) and the recipe hash."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from distilnas.config import ConfigError, from_dict, to_dict
from distilnas.data import DataConfig
from distilnas.evaluate import groundtruth
from distilnas.evaluate.groundtruth import (BenchConfig, aggregate_runs, build_ground_truth, load_table, load_truth,
                                            load_truth_dir, sample_archs)
from distilnas.spaces import NB201Arch, NB201Space, count_flops, count_params
from distilnas.train.standalone import Recipe, recipe_hash

from conftest import TINY_SPACE, one_error_line


def tiny_bench(**kw) -> BenchConfig:
    return BenchConfig(space="nb201", space_cfg={k: v for k, v in TINY_SPACE.items() if k != "name"},
                       data=DataConfig(name="synthetic", val_size=100, train_size=64, test_size=50),
                       recipe=Recipe(epochs=1, batch_size=32), num_archs=3, seeds=[0, 1], workers=1, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gt") / "bench"
    table = build_ground_truth(tiny_bench(), out, progress=False)
    return out, table


def test_build_trains_every_arch_and_seed(built):
    out, table = built
    cfg = tiny_bench()
    archs = sample_archs(cfg)
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["arch"], r["seed"]) for r in runs) == sorted((a, s) for a in archs for s in (0, 1))
    assert all(r["recipe_hash"] == table["recipe_hash"] for r in runs)
    assert list(table["archs"]) == archs
    assert (out / "archs.txt").read_text().split() == archs
    assert json.loads((out / "table.json").read_text()) == table
    space = NB201Space(NB201Space.Config(**cfg.space_cfg))
    by = {(r["arch"], r["seed"]): r for r in runs}
    for a, row in table["archs"].items():
        assert row["seeds"] == [0, 1]
        assert row["accuracy"] == [by[(a, 0)]["accuracy"], by[(a, 1)]["accuracy"]]
        assert row["loss"] == [by[(a, 0)]["loss"], by[(a, 1)]["loss"]]
        assert all(0.0 <= v <= 100.0 for v in row["accuracy"])
        net = space.build(space.parse(a))
        assert row["params"] == count_params(net) and row["flops"] == count_flops(net, space.input_shape())


def test_worker_result_is_reproducible_in_process(built):
    out, table = built
    a = next(iter(table["archs"]))
    r = groundtruth._train_one(to_dict(tiny_bench()), a, 1)
    assert r["accuracy"] == table["archs"][a]["accuracy"][1]
    assert r["loss"] == pytest.approx(table["archs"][a]["loss"][1], rel=1e-6)


def test_rebuild_retrains_nothing(built, monkeypatch):
    out, table = built
    runs_before = (out / "runs.jsonl").read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("the rebuild trained something")

    monkeypatch.setattr(groundtruth, "_train_one", no_training)
    again = build_ground_truth(tiny_bench(), out, progress=False)
    assert again == table
    assert (out / "runs.jsonl").read_bytes() == runs_before


def test_other_recipe_does_not_reuse_runs(built, tmp_path):
    out, table = built
    copy_dir = tmp_path / "bench"
    copy_dir.mkdir()
    (copy_dir / "runs.jsonl").write_bytes((out / "runs.jsonl").read_bytes())
    other = replace(tiny_bench(), recipe=Recipe(epochs=2, batch_size=32))
    t2 = build_ground_truth(other, copy_dir, archs=[], progress=False)  # nothing to train
    assert t2["recipe_hash"] != table["recipe_hash"]
    assert t2["archs"] == {}
    same = build_ground_truth(tiny_bench(), copy_dir, archs=list(table["archs"])[:1], progress=False)
    assert list(same["archs"]) == list(table["archs"])[:1]  # the matching runs are reused


def test_recipe_hash():
    assert recipe_hash(Recipe()) == recipe_hash(Recipe())
    assert recipe_hash(Recipe(epochs=1)) != recipe_hash(Recipe(epochs=2))
    assert recipe_hash(Recipe(lr=0.1)) != recipe_hash(Recipe(lr=0.2))
    assert recipe_hash(Recipe(), {"space": "a"}) != recipe_hash(Recipe(), {"space": "b"})
    # options added later change the hash only when they leave their default
    assert recipe_hash(Recipe(optimizer="adam")) != recipe_hash(Recipe())
    assert recipe_hash(Recipe(ema_decay=0.999)) != recipe_hash(Recipe())
    assert len(recipe_hash(Recipe())) == 16


def test_sample_archs_connected_unique_deterministic():
    cfg = replace(tiny_bench(), num_archs=40, sample_seed=3)
    archs = sample_archs(cfg)
    assert archs == sample_archs(cfg)
    assert archs != sample_archs(replace(cfg, sample_seed=4))
    parsed = [NB201Arch.parse(a) for a in archs]
    assert len(parsed) == 40
    assert all(a.is_connected() for a in parsed)
    assert len({a.isomorphism_key() for a in parsed}) == 40
    loose = sample_archs(replace(cfg, num_archs=200, connected_only=False, unique=False))
    assert any(not NB201Arch.parse(a).is_connected() for a in loose)


def test_sample_flops_spread_spans_the_space():
    """flops_spread: one architecture per log-FLOPs target, so the sample spans far more of the space's
    FLOPs range than uniform samples do (which concentrate), deterministically and without repeats."""
    space_cfg = {"preset": "fmnist16", "kernels": [3, 5, 7], "expansions": [3, 6], "depths": [2, 2, 2, 2, 2],
                 "identity": True, "width_mult": 0.25}
    cfg = BenchConfig(space="mobilenet", space_cfg=space_cfg, num_archs=12, sample_seed=1, sample="flops_spread")
    spread = sample_archs(cfg)
    assert spread == sample_archs(cfg) and len(set(spread)) == 12
    space = groundtruth._space(cfg)
    flops = [space.cost(space.parse(a))["flops"] for a in spread]
    lo, hi = space.flops_range()
    assert flops[0] < lo * 1.5 and flops[-1] > hi / 1.5  # both ends of the space are reached
    assert sorted(flops) == flops  # targets go up, and each walk lands nearer its own than the next one
    uniform = [space.cost(space.parse(a))["flops"] for a in sample_archs(replace(cfg, sample="uniform"))]
    assert max(flops) / min(flops) > 2 * max(uniform) / min(uniform)


def test_sample_flops_spread_keeps_nb201_filters():
    """Spaces without an exact FLOPs range use the range of uniform samples; connected/unique still hold."""
    cfg = replace(tiny_bench(), num_archs=10, sample_seed=2, sample="flops_spread")
    parsed = [NB201Arch.parse(a) for a in sample_archs(cfg)]
    assert len(parsed) == 10 and all(a.is_connected() for a in parsed)
    assert len({a.isomorphism_key() for a in parsed}) == 10
    with pytest.raises(Exception, match="sample"):
        from_dict(BenchConfig, {"sample": "stratified"})


def test_holdout_is_test_plus_the_unused_training_images():
    from distilnas.data import load_dataset, load_holdout

    cfg = DataConfig(name="synthetic", val_size=100, train_size=64, test_size=50)
    data = load_dataset(cfg)
    hx, hy = load_holdout(cfg)
    assert len(hx) == len(hy) == 50 + (2000 - 100 - 64)  # synthetic: 2000 training-file images
    assert torch.equal(hx[:50], data.test_x) and torch.equal(hy[:50], data.test_y)
    seen = {t.numpy().tobytes() for t in torch.cat([data.train_x, data.val_x])}
    assert not any(t.numpy().tobytes() in seen for t in hx[50:])  # never trained on, never validated on
    full = DataConfig(name="synthetic", val_size=100, test_size=50)  # the whole file trains: holdout = test
    assert torch.equal(load_holdout(full)[0], load_dataset(full).test_x)


@pytest.mark.parametrize("train_size", [64, 0])  # 0: every training-file image trains, the holdout is the test set
def test_holdout_ground_truth_records_both_accuracies(tmp_path, train_size):
    import dataclasses

    from distilnas.data import load_dataset, load_holdout
    from distilnas.evaluate.groundtruth import _space
    from distilnas.train.standalone import train_standalone

    cfg = dataclasses.replace(tiny_bench(eval_split="holdout"), num_archs=1, seeds=[0])
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_size=train_size))
    table = build_ground_truth(cfg, tmp_path / "gt", progress=False)
    run = json.loads((tmp_path / "gt" / "runs.jsonl").read_text().splitlines()[0])
    arch = next(iter(table["archs"]))
    assert table["archs"][arch]["accuracy"] == [run["accuracy"]] and "test_accuracy" in run
    # the same training, evaluated by hand on both splits
    space = _space(cfg)
    data = dataclasses.replace(load_dataset(cfg.data), **dict(zip(("holdout_x", "holdout_y"),
                                                                  load_holdout(cfg.data))))
    res = train_standalone(space.build(space.parse(arch), seed=0), data, cfg.recipe, seed=0,
                           eval_sets=("holdout", "test"))
    assert res["holdout_accuracy"] == run["accuracy"]  # the same correct count over the same images
    assert res["holdout_loss"] == pytest.approx(run["loss"], rel=1e-6)  # float32 sums chunked otherwise
    assert res["test_accuracy"] == run["test_accuracy"]
    assert tiny_bench(eval_split="holdout") != tiny_bench()  # another recipe hash: never mixed with test tables


def test_aggregate_runs_orders_by_seed():
    runs = [{"arch": "a", "seed": 2, "accuracy": 3.0, "loss": 0.3, "params": 1, "flops": 2},
            {"arch": "a", "seed": 0, "accuracy": 1.0, "loss": 0.1, "params": 1, "flops": 2},
            {"arch": "b", "seed": 0, "accuracy": 5.0, "loss": 0.5, "params": 3, "flops": 4}]
    table = aggregate_runs(runs)
    assert table == {"a": {"accuracy": [1.0, 3.0], "loss": [0.1, 0.3], "seeds": [0, 2], "params": 1, "flops": 2},
                     "b": {"accuracy": [5.0], "loss": [0.5], "seeds": [0], "params": 3, "flops": 4}}
    assert list(aggregate_runs(runs, ["b", "a", "c"])) == ["b", "a"]


def test_load_truth_formats(tmp_path, built):
    out, table = built
    from_table = load_truth(out / "table.json")
    assert from_table == {a: row["accuracy"] for a, row in table["archs"].items()}
    assert load_truth(out / "table.json", key="loss") == {a: row["loss"] for a, row in table["archs"].items()}
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"a": 91.5, "b": [90, 92.0]}))
    assert load_truth(plain) == {"a": [91.5], "b": [90.0, 92.0]}
    lines = tmp_path / "truth.jsonl"
    lines.write_text('{"arch": "a", "accuracy": 1}\n\n{"arch": "b", "accuracy": 2}\n{"arch": "a", "accuracy": 3}\n')
    assert load_truth(lines) == {"a": [1.0, 3.0], "b": [2.0]}


def test_load_truth_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_truth(tmp_path / "none.json")
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"archs": {"a": {"loss": [1.0]}}}))
    with pytest.raises(ValueError, match="no 'accuracy'"):
        load_truth(p)
    q = tmp_path / "t.jsonl"
    q.write_text('{"arch": "a", "accuracy": 1}\n{"arch": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        load_truth(q)


def test_load_truth_dir_reads_a_finished_or_running_build(tmp_path, built):
    out, table = built
    assert load_truth_dir(out) == {a: row["accuracy"] for a, row in table["archs"].items()}
    first = {a: row["accuracy"][row["seeds"].index(0)] for a, row in table["archs"].items()}
    assert {a: v[0] for a, v in load_truth_dir(out, seed=0).items()} == first
    running = tmp_path / "running"
    running.mkdir()
    (running / "runs.jsonl").write_text('{"arch": "a", "seed": 1, "accuracy": 3}\n{"arch": "a", "seed": 0, "accuracy": 1}\n'
                                        '{"arch": "b", "seed": 1, "accuracy": 5}\n{"arch": "b", "se')  # killed mid-line
    assert load_truth_dir(running) == {"a": [1.0, 3.0], "b": [5.0]}
    assert load_truth_dir(running, seed=0) == {"a": [1.0]}
    with pytest.raises(FileNotFoundError, match="bench build"):
        load_truth_dir(tmp_path / "empty")


def test_load_table_keeps_the_costs(tmp_path, built):
    out, table = built
    rows = load_table(out)
    assert {a: (r["accuracy"], r["flops"], r["params"]) for a, r in rows.items()} == {
        a: (row["accuracy"], row["flops"], row["params"]) for a, row in table["archs"].items()}
    running = tmp_path / "running"
    running.mkdir()
    (running / "runs.jsonl").write_text('{"arch": "a", "seed": 0, "accuracy": 1, "flops": 7}\n')
    assert load_table(running) == {"a": {"accuracy": [1], "seeds": [0], "flops": 7, "params": None}}


def test_bench_report_of_a_table_a_running_build_and_an_empty_one(tmp_path, built, capsys):
    pytest.importorskip("matplotlib")
    from distilnas.cli import main

    out, table = built
    assert main(["bench", "report", str(out), "--figure", str(tmp_path / "t.png")]) == 0
    text = capsys.readouterr().out
    assert "noise ceiling" in text and f"{len(table['archs'])} architectures" in text
    assert re.search(r"noise ceiling \(seed vs seed\) +\d+ +-?[\d.na]+ \[-?[\d.na]+, -?[\d.na]+\]", text), text
    assert (tmp_path / "t.png").stat().st_size > 0
    running = tmp_path / "running"
    running.mkdir()
    runs = (out / "runs.jsonl").read_text().splitlines()
    (running / "runs.jsonl").write_text("\n".join(runs[:3]) + "\n")  # a build cut off after three runs
    assert main(["bench", "report", str(running), "--figure", str(tmp_path / "r.png")]) == 0
    assert "the 3 runs finished so far" in capsys.readouterr().out and (tmp_path / "r.png").exists()
    (running / "runs.jsonl").write_text("")
    line = one_error_line(capsys, main(["bench", "report", str(running)]))
    assert "holds no finished run yet" in line


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (Path(__file__).resolve().parents[1] / "benchmarks" / "groundtruth").glob("*/bench_config.json")))
def test_committed_micro_benchmark_hash_is_current(name):
    """Options added to the configs later must not invalidate the committed ground truth."""
    root = Path(__file__).resolve().parents[1] / "benchmarks" / "groundtruth" / name
    saved = json.loads((root / "bench_config.json").read_text())
    cfg = from_dict(BenchConfig, {k: v for k, v in saved.items() if k != "recipe_hash"})
    assert groundtruth._hash(cfg) == saved["recipe_hash"]
    if (root / "table.json").exists():
        assert json.loads((root / "table.json").read_text())["recipe_hash"] == saved["recipe_hash"]


@pytest.mark.parametrize("sample", ["uniform", "flops_spread"])
def test_sampling_more_archs_than_the_space_holds_is_an_error(sample):
    """A space with one architecture cannot give five: a one-line ConfigError, never a silent shortfall."""
    space_cfg = {"preset": "fmnist16", "kernels": [3], "expansions": [3], "depths": [1, 1, 1, 1, 1]}
    cfg = BenchConfig(space="mobilenet", space_cfg=space_cfg, num_archs=5, sample=sample)
    with pytest.raises(ConfigError, match="num_archs"):
        sample_archs(cfg)
    assert len(sample_archs(replace(cfg, num_archs=1))) == 1


def test_seed_pairs_pair_runs_by_their_seed_numbers():
    from distilnas.report import seed_pairs

    rows = {"a": {"accuracy": [80, 82], "seeds": [0, 2]}, "b": {"accuracy": [70, 71, 72], "seeds": [0, 1, 2]},
            "c": {"accuracy": [60, 61]}}  # no seeds recorded: seeds 0 and 1
    assert seed_pairs(rows) == {(0, 1): [(70.0, 71.0), (60.0, 61.0)], (0, 2): [(80.0, 82.0), (70.0, 72.0)],
                                (1, 2): [(71.0, 72.0)]}
