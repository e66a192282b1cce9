"""DNA (distilnas.algorithms.dna, distilnas.search.blocks, distilnas.commands.dna): teacher features, student
blocks, rating, merge, search on the merged potentials and the block-score sum."""

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
import torch.nn.functional as F
import yaml

from distilnas.algorithms import ALGORITHMS, path_rng
from distilnas.algorithms.dna import (
    DNA, DNABlock, ErrorMeter, TargetStats, TeacherFeatures, feature_errors,
)
from distilnas.arch import ArchError
from distilnas.cli import main
from distilnas.config import ConfigError, from_dict
from distilnas.spaces import build_space_config
from distilnas.data import load_dataset
from distilnas.search.blocks import dna_scores, merge_blocks
from distilnas.search import Potentials, PotentialsError, load_potentials
from distilnas.spaces import create_space
from distilnas.spaces.mobilenet import MobileNetArch, MobileNetSpace
from distilnas.train.loop import build_run, resolve_config, run_search, train_supernet
from distilnas.train.retrain import RetrainConfig, load_exported, resolve_target, train_architecture

# A tiny student space (3 searchable stages, 2 layers each, 4 ops) and a teacher twice as wide with the same
# strides (so its stage outputs have the student's resolutions): 16x16 -> 8 -> 4 -> 4.
STUDENT: dict[str, Any] = {"name": "mobilenet", "preset": "fmnist16", "stem_channels": 8, "first_channels": 8,
                           "widths": [8, 16, 16], "depths": [2, 2, 2], "strides": [2, 2, 1], "kernels": [3, 5],
                           "expansions": [1, 2], "last_channels": 16, "head_channels": 16, "width_mult": 1.0}
TEACHER_SPACE: dict[str, Any] = {**STUDENT, "widths": [16, 24, 32], "depths": [1, 1, 1], "kernels": [3],
                                 "expansions": [2]}
TEACHER_ARCH = "k3e2_k3e2_k3e2"
DATA = {"name": "synthetic", "val_size": 64, "train_size": 64, "test_size": 32}
OPS = ("k3e1", "k3e2", "k5e1", "k5e2")
NUM_CANDIDATES = 4 + 4 ** 2  # depth 1 and depth 2


def space_of(cfg: dict[str, Any]) -> MobileNetSpace:
    return create_space("mobilenet", build_space_config("mobilenet", cfg))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher trained for one epoch by the ordinary pipeline (``distilnas train``'s code path)."""
    out = tmp_path_factory.mktemp("teacher") / "t"
    cfg = from_dict(RetrainConfig, {"space": TEACHER_SPACE, "data": DATA, "recipe": {"epochs": 1, "batch_size": 32},
                                    "device": "cpu", "export_onnx": False})
    train_architecture(TEACHER_ARCH, cfg, out, progress=False)
    return out


def search_dict(teacher: Path, block: int, **algo: Any) -> dict[str, Any]:
    return {
        "seed": 0, "space": dict(STUDENT), "data": dict(DATA),
        "algorithm": {"name": "dna", "block": block, "teacher": str(teacher), **algo},
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.003, "optimizer": "adam", "schedule": "step",
                  "weight_decay": 0.0, "steps_per_epoch": 3, "log_every": 0, "device": "cpu"},
        "score": {"bn_recal_batches": 1, "bn_recal_batch_size": 16, "val_size": 32, "batch_size": 16},
        "select": {"top": 3},
    }


@pytest.fixture(scope="module")
def block_runs(teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One finished block run per block (0, 1, 2) through ``run_search``."""
    root = tmp_path_factory.mktemp("blocks")
    dirs = []
    for b in range(3):
        run_search(resolve_config(search_dict(teacher_dir, b)), root / f"block{b}", progress=False)
        dirs.append(root / f"block{b}")
    return dirs


@pytest.fixture(scope="module")
def merged(block_runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("merged") / "potentials.json"
    assert main(["dna-merge", *map(str, reversed(block_runs)), "--out", str(out)]) == 0  # any order
    return out


# -- space costs ------------------------------------------------------------------------------------------
def test_stage_costs_add_up_to_the_space_cost():
    space = space_of(STUDENT)
    rng = random.Random(0)
    for _ in range(20):
        arch = space.sample(rng)
        fixed = space.fixed_cost()
        parts = [space.stage_cost(s, codes) for s, codes in enumerate(arch.stages)]
        total = {k: fixed[k] + sum(p[k] for p in parts) for k in ("params", "flops")}
        assert total == space.cost(arch)
    net = space.build(space.parse("k5e2-k3e1_k3e2-id_k5e1-k5e2"))
    from distilnas.spaces import count_flops, count_params

    stage = space.stage_cost(1, ("k3e2", "id"))
    assert stage["params"] == count_params(net.stages[1])
    assert stage["flops"] == count_flops(net.stages[1], (8, 8, 8))  # stage 1 input: 8 channels at 8x8
    with pytest.raises(ArchError):
        space.stage_cost(3, ("k3e1", "id"))
    with pytest.raises(ArchError):
        space.stage_cost(0, ("k7e1", "id"))


# -- metrics ------------------------------------------------------------------------------------------------
def test_metrics_on_known_tensors():
    # target: channel 0 alternates +1/-1 (mean 0, var 1), channel 1 alternates +2/-2 (var 4); global std:
    # mean 0, mean square (1 + 4) / 2 = 2.5 -> std sqrt(2.5)
    target = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(1, 1, 2, 2)
    target = torch.cat([target, 2 * target], dim=1)  # (1, 2, 2, 2)
    pred = target + 0.5
    e = feature_errors(pred, target)
    assert e["mse"] == pytest.approx(0.25)
    assert e["rel_l1"] == pytest.approx(0.5 / 2.5 ** 0.5)
    assert e["nsr"] == pytest.approx((0.25 / 1 + 0.25 / 4) / 2)
    # against the formulas on random tensors, and accumulation over batches equals one pass
    g = torch.Generator().manual_seed(0)
    y = torch.randn(6, 3, 4, 4, generator=g) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1) + 2.0
    y_hat = y + 0.3 * torch.randn(6, 3, 4, 4, generator=g)
    d = y_hat - y
    e = feature_errors(y_hat, y)
    assert e["mse"] == pytest.approx(float((d ** 2).mean()), rel=1e-6)
    assert e["rel_l1"] == pytest.approx(float(d.abs().mean() / y.std(correction=0)), rel=1e-6)
    nsr = ((d ** 2).mean(dim=(0, 2, 3)) / y.var(dim=(0, 2, 3), correction=0)).mean()
    assert e["nsr"] == pytest.approx(float(nsr), rel=1e-6)
    meter = ErrorMeter(TargetStats.of([y[:2], y[2:]]))
    meter.update(y_hat[:2], y[:2])
    meter.update(y_hat[2:], y[2:])
    assert meter.result() == pytest.approx(e)


# -- teacher and blocks ---------------------------------------------------------------------------------------
def test_block_candidates_and_shapes(teacher_dir: Path):
    space = space_of(STUDENT)
    cfg = DNA.Config(block=1, teacher=str(teacher_dir))
    block = DNA.build_supernet(space, cfg)
    assert isinstance(block, DNABlock) and block.depths == (1, 2) and block.ops == OPS
    cands = block.candidates()
    assert len(cands) == NUM_CANDIDATES == len(set(cands))
    assert {c.depth for c in cands} == {1, 2}
    assert {c.ops for c in cands if c.depth == 2} == {(a, b) for a in OPS for b in OPS}
    for c in cands:  # candidate strings are the space's stage strings
        assert block.parse(str(c)) == c
        assert MobileNetArch.parse(str(c)).stages[0] == c.codes
        space.layout.stages[1].check(c.codes)
    assert str(block.candidate(["k5e2"])) == "k5e2-id"
    for bad in ("id-k3e1", "k3e1", "k7e1-id", "k3e1-k3e1-k3e1"):
        with pytest.raises(ArchError):
            block.parse(bad)
    # widths: teacher map 0 (16 ch) -> hidden = the student's stage width (16) -> teacher map 1 (24 ch)
    teacher = TeacherFeatures(load_exported(teacher_dir), ["stages.0", "stages.1", "stages.2"])
    assert teacher.probe(space.input_shape()) == [(16, 8, 8), (24, 4, 4), (32, 4, 4)]
    x = torch.randn(2, 1, 16, 16)
    maps = teacher(x)
    assert len(teacher(x, upto=1)) == 2 and torch.equal(teacher(x, upto=1)[1], maps[1])
    spec = block.specs[2]
    assert (spec.in_channels, spec.hidden_channels, spec.out_channels) == (16, 16, 24)
    for c in (cands[0], cands[-1]):
        assert block(maps[0], c).shape == maps[1].shape
    # block 0 starts from the image, through the student's stem and first stage
    block0 = DNA.build_supernet(space, DNA.Config(block=0, teacher=str(teacher_dir), depths=[2]))
    assert block0.depths == (2,) and block0.prefix is not None
    assert block0(x, block0.candidates()[0]).shape == maps[0].shape


def test_sampling_is_uniform_over_depths_then_ops(teacher_dir: Path):
    block = DNA.build_supernet(space_of(STUDENT), DNA.Config(block=2, teacher=str(teacher_dir)))
    rng = random.Random(0)
    draws = [block.sample(rng) for _ in range(4000)]
    depth1 = sum(c.depth == 1 for c in draws)
    assert 1800 < depth1 < 2200  # half the draws, not 4 / 20 of them (uniform over candidates)
    first_ops = [c.ops[0] for c in draws]
    assert all(800 < first_ops.count(op) < 1200 for op in OPS)


def test_training_keeps_the_teacher_frozen_in_eval_mode(teacher_dir: Path):
    cfg = resolve_config(search_dict(teacher_dir, 1))
    run = build_run(cfg)
    algo = run.algorithm
    assert isinstance(algo, DNA)
    before = {k: v.clone() for k, v in algo.teacher.model.state_dict().items()}
    data = load_dataset(cfg.data)
    # one step by hand: the loss is the MSE of the path_rng candidate on the teacher's maps
    algo.setup(data, run.device)
    x = data.train_x[:8].contiguous(memory_format=torch.channels_last)
    cand = run.supernet.sample(path_rng(cfg.seed, 5))
    maps = algo.teacher(x)
    with torch.no_grad():
        want = F.mse_loss(run.supernet(maps[0], cand), maps[1]).item()
    out = algo.training_step(x, data.train_y[:8], 5, 0, 1)
    assert out.loss == pytest.approx(want, rel=1e-5) and out.correct is None and out.samples == 8
    assert all(p.grad is None for p in algo.teacher.model.parameters())
    grads = [n for n, p in run.supernet.named_parameters() if p.grad is not None]
    assert grads and all(n.startswith("cells.d%d." % cand.depth) for n in grads)
    run.supernet.zero_grad(set_to_none=True)
    stats = train_supernet(run, data, None, progress=False)
    assert stats["steps"] == 3
    assert not algo.teacher.model.training
    assert not any(p.requires_grad for p in algo.teacher.model.parameters())
    after = algo.teacher.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(n.startswith("teacher") for n in run.supernet.state_dict())  # not trained, not saved


def test_official_train_mode_option_changes_the_teacher(teacher_dir: Path):
    """teacher_mode=train reproduces the official code's pitfall: batch-statistics BN that drifts."""
    teacher = TeacherFeatures(load_exported(teacher_dir), ["stages.0", "stages.1", "stages.2"], mode="train")
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    teacher(torch.randn(8, 1, 16, 16))
    after = teacher.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if "running_mean" in k)


def test_bad_configs(teacher_dir: Path, tmp_path: Path):
    space = space_of(STUDENT)
    with pytest.raises(ConfigError, match="no module"):
        DNA.build_supernet(space, DNA.Config(teacher=str(teacher_dir), teacher_stages=["stages.0", "x", "y"]))
    with pytest.raises(ConfigError, match="3 blocks"):
        DNA.build_supernet(space, DNA.Config(teacher=str(teacher_dir), teacher_stages=["stages.0", "stages.1"]))
    with pytest.raises(ConfigError, match="4x4 but student stage 1 outputs 8x8"):
        DNA.build_supernet(space_of({**STUDENT, "strides": [2, 1, 2]}), DNA.Config(teacher=str(teacher_dir)))
    with pytest.raises(ConfigError, match="forward order"):
        DNA.build_supernet(space, DNA.Config(teacher=str(teacher_dir),
                                             teacher_stages=["stages.1", "stages.0", "stages.2"]))
    with pytest.raises(ConfigError, match="allows depths"):
        DNA.build_supernet(space, DNA.Config(teacher=str(teacher_dir), depths=[3]))
    with pytest.raises(ConfigError, match="block"):
        DNA.build_supernet(space, DNA.Config(teacher=str(teacher_dir), block=3))
    with pytest.raises(ConfigError, match="not a directory"):
        DNA.build_supernet(space, DNA.Config(teacher=str(tmp_path / "none")))
    with pytest.raises(ConfigError, match="exactly one"):
        DNA.build_supernet(space, DNA.Config())
    if importlib.util.find_spec("timm") is None:
        with pytest.raises(ConfigError, match="needs timm"):
            DNA.build_supernet(space, DNA.Config(teacher_timm="efficientnet_b0"))
    with pytest.raises(ConfigError, match="metric"):
        DNA.build_supernet(space, DNA.Config(teacher=str(teacher_dir), metric="acc"))
    with pytest.raises(ConfigError, match="mobilenet"):
        DNA.build_supernet(create_space("nb201", build_space_config("nb201", {"name": "nb201"})),
                           DNA.Config(teacher=str(teacher_dir)))
    with pytest.raises(ConfigError, match="unknown config key"):
        resolve_config(search_dict(teacher_dir, 0, temperature=2))
    assert ALGORITHMS.get("dna") is DNA


# -- rating and potentials ------------------------------------------------------------------------------------
def test_block_runs_rate_every_candidate(block_runs: list[Path]):
    space = space_of(STUDENT)
    for b, d in enumerate(block_runs):
        result = json.loads((d / "result.json").read_text())
        assert result["algorithm"] == "dna" and result["arch"] is None and result["num_scored"] == NUM_CANDIDATES
        assert result["dna"]["block"] == b and result["dna"]["metric"] == "rel_l1"
        rows = [json.loads(ln) for ln in (d / "scores.jsonl").read_text().splitlines()]
        assert len({r["arch"] for r in rows}) == NUM_CANDIDATES
        for r in rows:
            assert all(torch.isfinite(torch.tensor(r[k])) and r[k] >= 0 for k in ("mse", "rel_l1", "nsr"))
            assert r["score"] == r["rel_l1"]
            assert {"flops": r["flops"], "params": r["params"]} == space.stage_cost(b, tuple(r["arch"].split("-")))
        assert len({r["mse"] for r in rows}) > 1  # the candidates are told apart
        assert [r["arch"] for r in result["block_best"]] == [r["arch"] for r in sorted(rows, key=lambda r: r["score"])[:3]]
        lines = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
        assert lines[-1]["train_mse"] == pytest.approx(lines[-1]["train_loss"]) and lines[-1]["block"] == b


def test_rating_recalibrates_bn_on_fixed_images(teacher_dir: Path):
    cfg = resolve_config(search_dict(teacher_dir, 1))
    run = build_run(cfg)
    data = load_dataset(cfg.data)
    run.algorithm.setup(data, run.device)
    cands = run.supernet.candidates()[:3]
    first = list(run.algorithm.score(cands, data, cfg.score, progress=False))
    again = list(run.algorithm.score(list(reversed(cands)), data, cfg.score, progress=False))
    assert first == list(reversed(again))  # independent of order: each candidate recalibrated afresh
    other = copy.deepcopy(cfg.score)
    other.bn_recal_batches = 0
    assert list(run.algorithm.score(cands, data, other, progress=False)) != first


def test_merge_writes_potentials_in_block_order(merged: Path, block_runs: list[Path]):
    space = space_of(STUDENT)
    pot = load_potentials(merged)
    assert len(pot.blocks) == 3 and all(len(b) == NUM_CANDIDATES for b in pot.blocks)
    assert (pot.fixed_flops, pot.fixed_params) == (space.fixed_cost()["flops"], space.fixed_cost()["params"])
    meta = pot.extra["meta"]
    assert meta["space"]["widths"] == STUDENT["widths"] and meta["data"]["name"] == "synthetic"
    assert meta["teacher"]["arch"] == TEACHER_ARCH and meta["runs"] == [str(d) for d in block_runs]
    assert set(pot.blocks[0][0].extra) >= {"mse", "rel_l1", "nsr"}
    rng = random.Random(1)
    for _ in range(10):  # fixed + block costs == the space's cost of the joined architecture
        idx = [rng.randrange(len(b)) for b in pot.blocks]
        arch = space.parse(pot.join(idx))
        cands = [pot.blocks[i][j] for i, j in enumerate(idx)]
        assert space.cost(arch) == {"flops": pot.fixed_flops + sum(c.flops for c in cands),
                                    "params": pot.fixed_params + sum(c.params for c in cands)}
    assert yaml.safe_load((merged.parent / "config.yaml").read_text()) == {"space": meta["space"],
                                                                           "data": meta["data"]}


def test_merge_errors(block_runs: list[Path], tmp_path: Path, capsys):
    with pytest.raises(ConfigError, match=r"block\(s\) 2 missing"):
        merge_blocks(block_runs[:2])
    with pytest.raises(ConfigError, match="block 1 appears twice"):
        merge_blocks([*block_runs, block_runs[1]])
    changed = tmp_path / "changed"
    shutil.copytree(block_runs[2], changed)
    cfg = yaml.safe_load((changed / "config.yaml").read_text())
    cfg["space"]["widths"] = [8, 16, 24]
    (changed / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="different space configs"):
        merge_blocks([*block_runs[:2], changed])
    unfinished = tmp_path / "unfinished"
    shutil.copytree(block_runs[0], unfinished)
    (unfinished / "result.json").unlink()
    with pytest.raises(ConfigError, match="no result.json"):
        merge_blocks([unfinished, *block_runs[1:]])
    # on the command line: one error line, exit status 2, and an existing config.yaml is never replaced
    rc = main(["dna-merge", str(block_runs[0]), "--out", str(tmp_path / "p.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("distilnas: error: block(s) 1, 2 missing")
    rc = main(["dna-merge", *map(str, block_runs), "--out", str(block_runs[0] / "p.json")])
    assert rc == 2 and "exists with another config" in capsys.readouterr().err
    assert not (block_runs[0] / "p.json").exists()


def test_dna_search_result_parses_and_retrains(merged: Path, capsys):
    space = space_of(STUDENT)
    result = merged.parent / "result.json"
    lo, hi = space.flops_range()
    assert main(["dna-search", str(merged), "--max-flops", str(hi), "--out", str(result)]) == 0
    found = json.loads(result.read_text())
    arch = space.parse(found["arch"])
    assert found["flops"] == space.cost(arch)["flops"]
    pot = load_potentials(merged)
    best = pot.join([min(range(len(b)), key=lambda j: b[j].score) for b in pot.blocks])
    assert found["arch"] == best  # no budget binds: the best candidate of every block
    # distilnas retrain finds the space and data through the config.yaml next to the potentials
    target, cfg, source = resolve_target(result, {"recipe": {"epochs": 1}})
    assert target == found["arch"] and source == str(result)
    assert cfg.space["widths"] == STUDENT["widths"] and cfg.data.name == "synthetic"


def test_dna_score_is_the_sum_of_block_scores(merged: Path, tmp_path: Path):
    pot = load_potentials(merged)
    space = space_of(STUDENT)
    rng = random.Random(2)
    archs, want = [], {}
    for _ in range(6):
        idx = [rng.randrange(len(b)) for b in pot.blocks]
        a = pot.join(idx)
        archs.append(a)
        want[a] = sum(pot.blocks[i][j].score for i, j in enumerate(idx))
    # a non-canonical spelling of the same architecture is canonicalised in the potentials' space
    alias = archs[0].replace("k3e1-id", "id-k3e1") if "k3e1-id" in archs[0] else archs[0]
    archs_file = tmp_path / "archs.txt"
    archs_file.write_text("\n".join(archs + [alias]) + "\n")
    out = tmp_path / "dna.jsonl"
    assert main(["dna-score", str(merged), "--archs", str(archs_file), "--out", str(out)]) == 0
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert len(rows) == 7 and rows[-1]["arch"] == archs[0]
    for r in rows:
        assert r["block_sum"] == pytest.approx(want[r["arch"]]) and r["score"] == -r["block_sum"]
        assert r["flops"] == space.cost(space.parse(r["arch"]))["flops"]
    rows_nsr, _ = dna_scores(pot, archs[:1], metric="nsr")
    idx = pot.split(archs[0])
    assert rows_nsr[0]["block_sum"] == pytest.approx(sum(pot.blocks[i][j].extra["nsr"] for i, j in enumerate(idx)))
    # distilnas rank reads the negated sum as the prediction
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({a: -w for a, w in want.items()}))  # a truth that the sum ranks perfectly
    assert main(["rank", str(out), str(truth), "--bootstrap", "10"]) == 0
    # a candidate that was never rated (here: depth 2 of block 0 left out): an error, or skipped on request
    obj = pot.to_dict()
    obj["blocks"][0] = [c for c in obj["blocks"][0] if c["depth"] == 1]
    part = Potentials.from_dict(obj)
    deep = "k3e1-k5e2_k3e1-id_k3e1-id"
    with pytest.raises(PotentialsError, match="not in the potentials"):
        dna_scores(part, [deep])
    rows, skipped = dna_scores(part, [deep, "k3e1-id_k3e1-id_k3e1-id"], skip_missing=True)
    assert skipped == [deep] and [r["arch"] for r in rows] == ["k3e1-id_k3e1-id_k3e1-id"]
    with pytest.raises(ArchError):  # not an architecture of the space at all
        dna_scores(pot, ["k7e1-id_k3e1-id_k3e1-id"])
