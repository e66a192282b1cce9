"""Safe runs (issue 10): no code runs from a file a user hands us, divergence stops a run, one process per
output, environment errors are one line, interrupts keep work and leave no orphan or temporary file."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from distilnas.algorithms import ALGORITHMS
from distilnas.cli import main
from distilnas.data import load_dataset
from distilnas.fileio import LOCK_NAME, LockedError, PartialRows, lock_file, run_lock
from distilnas.train.checkpoint import CheckpointError, load_checkpoint, safe_load, save_checkpoint
from distilnas.train.loop import build_run, resolve_config, run_search

from conftest import SEARCH_DICT, one_error_line

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
REPO = Path(__file__).resolve().parents[1]


class Payload:
    """What a hostile checkpoint holds: unpickling it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    p = tmp_path / "search.yaml"
    p.write_text(yaml.safe_dump(SEARCH_DICT, sort_keys=False))
    return p


@pytest.fixture
def bench_file(tmp_path: Path) -> Path:
    """A ground-truth build of 4 tiny cells on synthetic data (1 seed, 1 epoch)."""
    p = tmp_path / "gt.yaml"
    p.write_text(yaml.safe_dump({
        "space": "nb201", "space_cfg": {k: v for k, v in SEARCH_DICT["space"].items() if k != "name"},
        "data": {"name": "synthetic", "val_size": 64, "train_size": 128, "test_size": 64},
        "recipe": {"epochs": 1, "batch_size": 32}, "num_archs": 4, "seeds": [0], "workers": 1}))
    return p


@pytest.fixture
def archs_file(tmp_path: Path) -> Path:
    p = tmp_path / "archs.txt"
    p.write_text(ARCH + "\n")
    return p


def _payload_file(path: Path, marker: Path, with_header: bool = True) -> Path:
    obj = {"format": "distilnas-checkpoint", "version": 1, "model": Payload(marker)} if with_header \
        else {"x": Payload(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


# -- 1. loading never runs code -------------------------------------------------------------------------
@pytest.mark.parametrize("with_header", [True, False])
def test_crafted_checkpoint_is_refused_by_every_command(tmp_path, capsys, config_file, archs_file, with_header):
    marker = tmp_path / "pwned"
    ckpt = _payload_file(tmp_path / "evil" / "checkpoint.pt", marker, with_header)
    runs = {
        "score": ["score", str(ckpt), "--archs", str(archs_file), "--out", str(tmp_path / "s.jsonl")],
        "score DIR": ["score", str(ckpt.parent), "--archs", str(archs_file), "--out", str(tmp_path / "s.jsonl")],
        "score overrides": ["score", str(ckpt), "--archs", str(archs_file), "--out", str(tmp_path / "s.jsonl"),
                            "score.val_size=8"],
        "search --resume": ["search", str(config_file), "--out", str(ckpt.parent), "--resume"],
    }
    for name, argv in runs.items():
        rc = main(argv)
        line = one_error_line(capsys, rc)
        assert not marker.exists(), f"{name} ran the payload"
        assert str(ckpt) in line and "refuses to unpickle" in line and "posix.system" in line, (name, line)


def test_crafted_exported_weights_are_refused(tmp_path, capsys):
    """Exported models (retrain's model.pt, DNA's teacher=DIR) go through the same safe loader."""
    from distilnas.train.retrain import RetrainConfig, load_exported, train_architecture
    from distilnas.config import from_dict

    marker = tmp_path / "pwned"
    cfg = from_dict(RetrainConfig, {"space": SEARCH_DICT["space"], "data": SEARCH_DICT["data"],
                                    "recipe": {"epochs": 1, "batch_size": 32}, "device": "cpu",
                                    "export_onnx": False})
    out = tmp_path / "model"
    train_architecture(ARCH, cfg, out, progress=False)
    load_exported(out)  # the real one loads
    torch.save({"w": Payload(marker)}, out / "model.pt")
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        load_exported(out)
    assert not marker.exists()


def test_safe_load_reads_plain_data_only(tmp_path):
    p = tmp_path / "ok.pt"
    torch.save({"a": torch.ones(2), "b": [1, 2.5, "x", None, (3, 4)], "c": {"d": True}}, p)
    assert safe_load(p)["b"] == [1, 2.5, "x", None, (3, 4)]
    with pytest.raises(CheckpointError, match="is a directory"):
        safe_load(tmp_path)
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage" * 20)
    with pytest.raises(CheckpointError, match="is corrupt, or not a file torch.save wrote"):
        safe_load(tmp_path / "garbage.pt")


@pytest.mark.parametrize("algo", ["cream", "rdnas"])
def test_algorithm_checkpoints_round_trip_through_the_safe_loader(tmp_path, algo):
    d = copy.deepcopy(SEARCH_DICT)
    d["algorithm"] = {"name": algo}
    cfg = resolve_config(d)
    run_search(cfg, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # weights_only=True inside
    fresh = build_run(cfg)
    fresh.algorithm.setup(load_dataset(cfg.data), fresh.device, None)
    fresh.algorithm.load_state_dict(state["algorithm"])
    _assert_same(fresh.algorithm.state_dict(), state["algorithm"])
    fresh.supernet.load_state_dict(state["model"])


def test_dna_checkpoint_round_trips_through_the_safe_loader(tmp_path):
    from test_dna import DATA, TEACHER_ARCH, TEACHER_SPACE, search_dict
    from distilnas.config import from_dict
    from distilnas.train.retrain import RetrainConfig, train_architecture

    teacher = tmp_path / "teacher"
    train_architecture(TEACHER_ARCH, from_dict(RetrainConfig, {
        "space": TEACHER_SPACE, "data": DATA, "recipe": {"epochs": 1, "batch_size": 32}, "device": "cpu",
        "export_onnx": False}), teacher, progress=False)
    cfg = resolve_config(search_dict(teacher, 1))
    run_search(cfg, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run")
    fresh = build_run(cfg)
    fresh.algorithm.setup(load_dataset(cfg.data), fresh.device, None)
    fresh.algorithm.load_state_dict(state["algorithm"])
    _assert_same(fresh.algorithm.state_dict(), state["algorithm"])


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


# -- 2. divergence ---------------------------------------------------------------------------------------
def _strict_json(text: str):
    def refuse(c):
        raise ValueError(f"invalid JSON constant {c}")
    return json.loads(text, parse_constant=refuse)


def test_divergence_stops_with_one_line_and_leaves_no_result(tmp_path, capsys, config_file):
    out = tmp_path / "run"
    rc = main(["search", str(config_file), "--out", str(out), "train.lr=1e6", "train.grad_clip=0"])
    line = one_error_line(capsys, rc)
    assert "diverged" in line and "train.lr (now 1e+06)" in line and "step" in line
    assert not (out / "result.json").exists() and not (out / "scores.jsonl").exists()
    for ln in (out / "metrics.jsonl").read_text().splitlines():
        _strict_json(ln)
    assert not list(out.glob("*.tmp")) and not (out / LOCK_NAME).exists()


def _nan_after(monkeypatch, first_bad: int, count: int = 10 ** 9):
    """SPOS steps ``first_bad .. first_bad + count - 1`` report a NaN loss (NaN gradients too)."""
    spos = ALGORITHMS.get("spos")
    real = spos.training_step

    def step(self, x, y, step, epoch, num_epochs):
        res = real(self, x, y, step, epoch, num_epochs)
        if first_bad <= step < first_bad + count:
            for p in self.supernet.parameters():
                if p.grad is not None:
                    p.grad.fill_(math.nan)
            res.loss = math.nan
        return res

    monkeypatch.setattr(spos, "training_step", step)


def test_divergence_keeps_the_last_good_checkpoint_resumable(tmp_path, monkeypatch):
    d = copy.deepcopy(SEARCH_DICT)
    d["train"]["epochs"] = 2  # 4 steps per epoch
    out = tmp_path / "run"
    _nan_after(monkeypatch, 5)
    with pytest.raises(Exception, match=r"diverged: loss nan at step 6 \(epoch 2\).*last good checkpoint"):
        run_search(resolve_config(d), out, progress=False)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1 and not (out / "result.json").exists()
    monkeypatch.undo()
    result = run_search(resolve_config(d), out, resume=True, progress=False)  # resumable as it stands
    assert result["steps"] == 8
    lines = [_strict_json(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines if "train_loss" in ln] == [1, 2]


@pytest.mark.parametrize("grad_clip", [5.0, 0.0])
def test_a_few_nonfinite_steps_may_be_skipped(tmp_path, monkeypatch, grad_clip):
    """A skipped step leaves no trace: no update, BatchNorm statistics restored (the NaN batch ran forward
    through them), the epoch's loss over the good steps; its count is per epoch and saved for --resume."""
    d = copy.deepcopy(SEARCH_DICT)
    d["train"].update(max_nonfinite=1, grad_clip=grad_clip)
    spos = ALGORITHMS.get("spos")
    real = spos.training_step

    def step(self, x, y, step, epoch, num_epochs):  # step 2 sees a NaN batch
        return real(self, x * math.nan if step == 2 else x, y, step, epoch, num_epochs)

    monkeypatch.setattr(spos, "training_step", step)
    result = run_search(resolve_config(d), tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run")
    assert all(torch.isfinite(v.float()).all() for v in state["model"].values())  # weights and BN statistics
    assert state["nonfinite"] == 1
    epoch = [_strict_json(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert epoch["nonfinite_steps"] == 1 and math.isfinite(epoch["train_loss"]) and result["steps"] == 4


def test_a_nonfinite_gradient_under_a_finite_loss_is_caught_without_clipping(tmp_path, monkeypatch):
    d = copy.deepcopy(SEARCH_DICT)
    d["train"]["grad_clip"] = 0.0
    spos = ALGORITHMS.get("spos")
    real = spos.training_step

    def step(self, x, y, step, epoch, num_epochs):
        res = real(self, x, y, step, epoch, num_epochs)
        if step == 1:
            next(p for p in self.supernet.parameters() if p.grad is not None).grad.fill_(math.inf)
        return res

    monkeypatch.setattr(spos, "training_step", step)
    with pytest.raises(Exception, match="diverged: gradient norm inf at step 2"):
        run_search(resolve_config(d), tmp_path / "run", progress=False)


def test_resume_skips_a_garbled_metrics_line(tmp_path):
    d = copy.deepcopy(SEARCH_DICT)
    d["train"]["epochs"] = 2
    out = tmp_path / "run"
    run_search(resolve_config(copy.deepcopy(d) | {"train": {**d["train"], "epochs": 2}}), out, progress=False)
    ckpt = load_checkpoint(out)
    (out / "result.json").unlink()
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 999, "epoch": 5, "lo')  # cut off by a full disk
    torch.save(ckpt, out / "checkpoint.pt")
    assert run_search(resolve_config(d), out, resume=True, progress=False)["steps"] == 8
    for ln in (out / "metrics.jsonl").read_text().splitlines():
        _strict_json(ln)


def test_nonfinite_scores_are_never_selected(tmp_path, monkeypatch, capsys):
    spos = ALGORITHMS.get("spos")
    real = spos.score

    def score(self, archs, *a, **k):
        for i, r in enumerate(real(self, archs, *a, **k)):
            yield {**r, "loss": math.nan, "accuracy": 99.0} if i == 0 else r

    monkeypatch.setattr(spos, "score", score)
    out = tmp_path / "run"
    result = run_search(resolve_config(copy.deepcopy(SEARCH_DICT)), out, progress=False)
    bad = result["nonfinite"][0]
    assert result["best"]["arch"] != bad and all(r["arch"] != bad for r in result["top"])
    _strict_json((out / "result.json").read_text())
    rows = [_strict_json(ln) for ln in (out / "scores.jsonl").read_text().splitlines()]
    assert rows[0]["loss"] is None and rows[0]["arch"] == bad
    assert "non-finite" in capsys.readouterr().err


def test_cream_board_selection_skips_nonfinite_scores(tmp_path, monkeypatch):
    """select_by=board ranks board entries by the board's own accuracy: a path whose rescore is not
    finite is still never selected."""
    cream = ALGORITHMS.get("cream")
    real = cream.score

    def score(self, archs, *a, **k):
        for i, r in enumerate(real(self, archs, *a, **k)):
            yield {**r, "loss": math.nan} if i == 0 else r

    monkeypatch.setattr(cream, "score", score)
    d = copy.deepcopy(SEARCH_DICT)
    d["algorithm"] = {"name": "cream", "warmup_epochs": 1, "board_size": 3, "update_iter": 2,
                      "board_val_size": 32, "meta_val_batch": 16, "select_by": "board"}
    d["train"]["epochs"] = 3
    result = run_search(resolve_config(d), tmp_path / "run", progress=False)
    bad = result["nonfinite"][0]
    assert result["arch"] != bad and all(r["arch"] != bad for r in result["top"])


def test_rank_refuses_nonfinite_predictions(tmp_path, capsys):
    pred, truth = tmp_path / "p.jsonl", tmp_path / "t.json"
    archs = [f"a{i}" for i in range(6)]
    pred.write_text("".join(json.dumps({"arch": a, "accuracy": None if i < 2 else float(i)}) + "\n"
                            for i, a in enumerate(archs)))
    truth.write_text(json.dumps({a: float(i) for i, a in enumerate(archs)}))
    line = one_error_line(capsys, main(["rank", str(pred), str(truth)]))
    assert "2 of 6 predictions" in line and "--drop-nonfinite" in line
    assert main(["rank", str(pred), str(truth), "--drop-nonfinite", "--bootstrap", "10"]) == 0
    captured = capsys.readouterr()
    assert "dropped 2" in captured.err and "4 architectures in common" in captured.out


# -- 3. one process per output -----------------------------------------------------------------------------
def _hold_lock(path: Path) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        from distilnas.fileio import run_lock
        with run_lock({str(path)!r}):
            print("ready", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_run_into_a_locked_directory_stops(tmp_path, capsys, config_file, bench_file):
    out = tmp_path / "run"
    out.mkdir()
    holder = _hold_lock(out)
    try:
        for argv in (["search", str(config_file), "--out", str(out)],
                     ["bench", "build", str(bench_file), "--out", str(out)]):
            line = one_error_line(capsys, main(argv))
            assert f"in use by another distilnas process (PID {holder.pid})" in line
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written by the refused runs
    finally:
        holder.kill()
        holder.wait()
    # a lock whose holder died (even by kill -9) is not stale: the next run takes it
    assert (out / LOCK_NAME).exists()
    assert run_search(resolve_config(copy.deepcopy(SEARCH_DICT)), out, progress=False)["best"]
    assert not (out / LOCK_NAME).exists()


def test_score_output_is_locked(tmp_path, capsys, archs_file, trained_run):
    out = tmp_path / "s.jsonl"
    with lock_file(tmp_path / "s.jsonl.lock", "x"):
        rc = main(["score", str(trained_run), "--archs", str(archs_file), "--out", str(out)])
        assert "in use by another distilnas process" in one_error_line(capsys, rc)
    assert main(["score", str(trained_run), "--archs", str(archs_file), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s.")) == ["s.jsonl"]


def test_lock_in_process(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(LockedError, match=f"PID {os.getpid()}"):
            with run_lock(tmp_path):
                pass


def test_fresh_run_starts_metrics_afresh_and_clears_a_stale_temporary(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n' * 120)  # a run killed while saving its first checkpoint
    (out / "checkpoint.pt.tmp").write_bytes(b"half")
    run_search(resolve_config(copy.deepcopy(SEARCH_DICT)), out, progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3  # steps 2 and 4 (log_every 2) and the epoch line
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.partial"))


def test_a_failed_save_leaves_no_temporary(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint({"epoch": 1}, tmp_path / "checkpoint.pt")
    assert list(tmp_path.iterdir()) == []


# -- 5. environment errors ----------------------------------------------------------------------------------
def test_output_paths_that_cannot_be_written(tmp_path, capsys, config_file):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, fragment in ((afile, "is a file, not a directory"), (afile / "sub", "a part of the path is a file")):
        line = one_error_line(capsys, main(["search", str(config_file), "--out", str(out)]))
        assert fragment in line and str(out) in line
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                             capture_output=True).returncode == 0  # root on Linux; else no such file system
    try:
        if not mounted:
            pytest.skip("cannot mount a read-only file system here")
        out = ro / "run"
        line = one_error_line(capsys, main(["search", str(config_file), "--out", str(out)]))
        assert f"cannot create run directory (--out) {out} (read-only file system); choose a writable path" in line
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.parametrize("device, fragment", [
    ("foo", "train.device='foo' is not a device; use auto, cpu, cuda or cuda:N"),
    ("cuda", "train.device='cuda' but"),
    ("cuda:x", "is not a device"),
])
def test_bad_devices(tmp_path, capsys, config_file, device, fragment):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "run"
    line = one_error_line(capsys, main(["search", str(config_file), "--out", str(out), f"train.device={device}"]))
    assert fragment in line


# -- 6. interrupts and child processes ------------------------------------------------------------------------
def test_interrupt_messages_name_what_each_command_kept(tmp_path, capsys, monkeypatch, bench_file, archs_file,
                                                        trained_run):
    import distilnas.evaluate.scoring as scoring

    def interrupted(*a, **k):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(scoring, "score_archs", interrupted)
    out = tmp_path / "s.jsonl"
    assert main(["score", str(trained_run), "--archs", str(archs_file), "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "nothing was scored yet; rerun the command" in err  # interrupted before the first row
    import distilnas.evaluate.groundtruth as gt
    monkeypatch.setattr(gt, "_build", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(["bench", "build", str(bench_file), "--out", str(tmp_path / "gt")]) == 130
    assert "no run had finished; rerun the command" in capsys.readouterr().err
    (tmp_path / "gt" / "runs.jsonl").write_text('{"arch": "a"}\n')  # one run finished before the interrupt
    assert main(["bench", "build", str(bench_file), "--out", str(tmp_path / "gt")]) == 130
    err = capsys.readouterr().err
    assert f"finished runs are kept in {tmp_path / 'gt'}/runs.jsonl; rerun the same command" in err
    assert "checkpoint.pt" not in err
    spos = ALGORITHMS.get("spos")
    monkeypatch.setattr(spos, "training_step", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    cfg = tmp_path / "search.yaml"
    cfg.write_text(yaml.safe_dump(SEARCH_DICT, sort_keys=False))
    assert main(["search", str(cfg), "--out", str(tmp_path / "run")]) == 130
    assert "no epoch had finished, nothing to resume: rerun the command without --resume" in capsys.readouterr().err


def test_score_resumes_from_the_rows_it_wrote(tmp_path, capsys, monkeypatch, trained_run):
    import distilnas.evaluate.scoring as scoring
    from distilnas.spaces import create_space
    from distilnas.spaces import build_space_config

    space = create_space("nb201", build_space_config("nb201", SEARCH_DICT["space"]))
    import random
    archs = [str(space.sample(random.Random(i))) for i in range(5)]
    f = tmp_path / "archs.txt"
    f.write_text("\n".join(archs) + "\n")
    ref = tmp_path / "ref.jsonl"
    assert main(["score", str(trained_run), "--archs", str(f), "--out", str(ref)]) == 0
    real, seen = scoring.score_archs, []

    def killed_after_two(supernet, todo, *a, **k):
        seen.append(len(todo))
        for i, r in enumerate(real(supernet, todo, *a, **k)):
            if i == 2 and len(seen) == 1:
                raise KeyboardInterrupt
            yield r

    monkeypatch.setattr(scoring, "score_archs", killed_after_two)
    out = tmp_path / "s.jsonl"
    assert main(["score", str(trained_run), "--archs", str(f), "--out", str(out)]) == 130
    assert f"scored rows are kept in {out}.resume; rerun the same command" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "s.jsonl.resume").exists()
    capsys.readouterr()
    assert main(["score", str(trained_run), "--archs", str(f), "--out", str(out)]) == 0
    assert "resuming: 2 of 5" in capsys.readouterr().err and seen == [5, 3]
    assert out.read_text() == ref.read_text()  # same rows, same order, as one uninterrupted run
    assert not (tmp_path / "s.jsonl.resume").exists() and not (tmp_path / "s.jsonl.lock").exists()


def test_partial_rows_of_another_input_are_not_reused(tmp_path):
    rows = PartialRows(tmp_path / "o.jsonl", "key-a")
    rows.append({"arch": "x", "accuracy": 1.0})
    rows.close()
    assert PartialRows(tmp_path / "o.jsonl", "key-a").reused == 1
    assert PartialRows(tmp_path / "o.jsonl", "key-b").reused == 0


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _kill_tree(pid: int) -> None:
    for p in _alive(_children(pid)) | {pid}:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _bench_subprocess(tmp_path: Path) -> subprocess.Popen:
    """``distilnas bench build`` of 4 long trainings in 2 worker processes, in its own session."""
    cfg = tmp_path / "gt.yaml"
    cfg.write_text(yaml.safe_dump({
        "space": "nb201", "space_cfg": {k: v for k, v in SEARCH_DICT["space"].items() if k != "name"},
        "data": {"name": "synthetic", "val_size": 64, "train_size": 1536, "test_size": 64},
        "recipe": {"epochs": 50, "batch_size": 32}, "num_archs": 4, "seeds": [0], "workers": 2}))
    return subprocess.Popen([sys.executable, "-m", "distilnas.cli", "bench", "build", str(cfg), "--out",
                             str(tmp_path / "gt")], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_bench_build_workers_die_with_their_parent(tmp_path, sig):
    parent = _bench_subprocess(tmp_path)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(_children(parent.pid)) < 2:
            time.sleep(0.2)
        time.sleep(2)  # the workers are up and training
        kids = _children(parent.pid)
        assert len(kids) >= 2, "the pool did not start"
        parent.send_signal(sig)
        parent.wait(timeout=30)
        deadline = time.time() + 10
        while time.time() < deadline and _alive(kids):
            time.sleep(0.2)
        assert not _alive(kids), f"workers survived their parent: {_alive(kids)}"
        if sig == signal.SIGTERM:
            assert parent.returncode == 143
            assert "distilnas: interrupted; " in parent.stderr.read()
    finally:
        _kill_tree(parent.pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_dead_worker_ends_bench_build_with_one_line(tmp_path):
    """A worker killed by the OOM killer (here: kill -9) does not hang the build."""
    parent = _bench_subprocess(tmp_path)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(_children(parent.pid)) < 2:
            time.sleep(0.2)
        time.sleep(2)
        workers = [p for p in _children(parent.pid)
                   if "spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
        assert workers, "no worker started"
        os.kill(workers[0], signal.SIGKILL)
        rc = parent.wait(timeout=60)
        err = parent.stderr.read().strip().splitlines()
        assert rc == 2 and err[-1].startswith("distilnas: error: a worker process died"), err
        assert not _alive(_children(parent.pid))
    finally:
        _kill_tree(parent.pid)


# -- 7. smaller input problems ---------------------------------------------------------------------------------
def test_bad_archs_files(tmp_path, capsys, trained_run):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(bytes(range(256)))
    for f, fragment in ((empty, "holds no architectures"), (binary, "is not a UTF-8 text file")):
        for argv in (["score", str(trained_run), "--archs", str(f), "--out", str(tmp_path / "o.jsonl")],
                     ["proxy", "params", "--archs", str(f), "--out", str(tmp_path / "o.jsonl")]):
            line = one_error_line(capsys, main(argv))
            assert fragment in line and str(f) in line
    assert not (tmp_path / "o.jsonl").exists()


def test_empty_archs_file_fails_before_training(tmp_path, capsys, config_file):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "run"
    line = one_error_line(capsys, main(["search", str(config_file), "--out", str(out),
                                        f"select.archs_file={empty}"]))
    assert "holds no architectures" in line and not (out / "checkpoint.pt").exists()


def test_score_accepts_a_run_directory(tmp_path, capsys, archs_file, trained_run):
    out = tmp_path / "s.jsonl"
    assert main(["score", str(trained_run), "--archs", str(archs_file), "--out", str(out)]) == 0
    assert _strict_json(out.read_text().splitlines()[0])["arch"] == ARCH
    line = one_error_line(capsys, main(["score", str(tmp_path), "--archs", str(archs_file), "--out", str(out)]))
    assert "is a directory without checkpoint.pt" in line


def test_score_override_that_changes_the_network_is_named(tmp_path, capsys, archs_file, trained_run):
    rc = main(["score", str(trained_run), "--archs", str(archs_file), "--out", str(tmp_path / "s.jsonl"),
               "space.C=8"])
    line = one_error_line(capsys, rc)
    assert "overriding space.C: 4 -> 8 does not fit the weights" in line and "drop that override" in line


def test_standalone_divergence_is_one_line(tmp_path, capsys):
    rc = main(["train", ARCH, "space.C=4", "space.N=1", "data.name=synthetic", "data.val_size=50",
               "data.train_size=256", "data.test_size=50", "recipe.epochs=3", "recipe.batch_size=32",
               "recipe.lr=1e9", "recipe.grad_clip=0", "device=cpu", "--out", str(tmp_path / "m")])
    line = one_error_line(capsys, rc)
    assert "training diverged: a non-finite loss in epoch 1; lower recipe.lr (now 1e+09)" in line
    assert not (tmp_path / "m" / "model.pt").exists()


def test_rank_refuses_nonfinite_ground_truth(tmp_path, capsys):
    pred, truth = tmp_path / "p.jsonl", tmp_path / "t.json"
    pred.write_text("".join(json.dumps({"arch": f"a{i}", "accuracy": float(i)}) + "\n" for i in range(4)))
    truth.write_text(json.dumps({"archs": {f"a{i}": {"accuracy": [None if i == 0 else float(i)]} for i in range(4)}}))
    line = one_error_line(capsys, main(["rank", str(pred), str(truth)]))
    assert "1 ground-truth entries" in line and "not finite" in line
    truth.write_text(json.dumps({"a0": True, "a1": 1.0}))
    assert "holds True, not numbers" in one_error_line(capsys, main(["rank", str(pred), str(truth)]))


def test_a_raw_pickle_is_one_line_and_runs_nothing(tmp_path, capsys, archs_file):
    import pickle

    marker = tmp_path / "pwned"
    p = tmp_path / "raw.pt"
    p.write_bytes(pickle.dumps({"x": Payload(marker)}, protocol=4))
    line = one_error_line(capsys, main(["score", str(p), "--archs", str(archs_file), "--out", str(tmp_path / "o")]))
    assert not marker.exists() and "can be read without running code" in line
    (tmp_path / "d" / "checkpoint.pt").mkdir(parents=True)
    line = one_error_line(capsys, main(["score", str(tmp_path / "d" / "checkpoint.pt"), "--archs", str(archs_file),
                                        "--out", str(tmp_path / "o")]))
    assert "is a directory, not a file" in line


def test_out_paths_that_are_not_run_directories(tmp_path, capsys, config_file, archs_file, trained_run):
    mine = tmp_path / "home"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    line = one_error_line(capsys, main(["search", str(config_file), "--out", str(mine)]))
    assert "is a directory with other files (notes.txt); choose a new or empty directory" in line
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    assert "dangling symbolic link" in one_error_line(capsys, main(["search", str(config_file), "--out", str(link)]))
    line = one_error_line(capsys, main(["score", str(trained_run), "--archs", str(archs_file),
                                        "--out", str(tmp_path / "newdir") + "/"]))
    assert "names a directory" in line and not (tmp_path / "newdir").exists()


def test_bench_build_checks_its_archs_file_before_writing(tmp_path, capsys, bench_file):
    out = tmp_path / "gt"
    for text, fragment in (("", "holds no architectures"), ("# only a comment\n", "holds no architectures"),
                           ("|bad~0|\n", ":1:")):
        f = tmp_path / "a.txt"
        f.write_text(text)
        line = one_error_line(capsys, main(["bench", "build", str(bench_file), "--out", str(out), "--archs", str(f)]))
        assert fragment in line and str(f) in line
        assert not out.exists()
    f.write_text("\ufeff" + ARCH + "\n")  # a byte-order mark is not part of the first architecture
    from distilnas.spaces import create_space
    from distilnas.spaces import build_space_config
    from distilnas.train.loop import read_archs
    assert [str(a) for a in read_archs(f, create_space("nb201", build_space_config("nb201", {})))] == [ARCH]


def test_rank_input_problems(tmp_path, capsys):
    pred, truth = tmp_path / "p.jsonl", tmp_path / "t.json"
    truth.write_text(json.dumps({"a": 1.0, "b": 2.0}))
    pred.write_text("\n")
    assert "holds no predictions" in one_error_line(capsys, main(["rank", str(pred), str(truth)]))
    pred.write_text(json.dumps({"arch": "a", "accuracy": True}) + "\n")
    assert ":1: expected a JSON object" in one_error_line(capsys, main(["rank", str(pred), str(truth)]))


def test_train_output_is_locked(tmp_path, capsys):
    out = tmp_path / "m"
    out.mkdir()
    with run_lock(out):
        rc = main(["train", ARCH, "space.C=4", "space.N=1", "data.name=synthetic", "data.val_size=50",
                   "data.train_size=64", "data.test_size=50", "recipe.epochs=1", "recipe.batch_size=32",
                   "device=cpu", "--out", str(out)])
        assert "in use by another distilnas process" in one_error_line(capsys, rc)


def test_extend_a_finished_run_with_more_epochs(tmp_path, capsys, config_file):
    """--extend continues with more epochs: the schedule is the one of the new total from the step reached,
    so the extended run equals a run started with the new total only where the schedules agree."""
    from distilnas.train.standalone import make_optimizer  # noqa: F401 (the schedule under test)

    out = tmp_path / "run"
    assert main(["search", str(config_file), "--out", str(out), "select.num_archs=2"]) == 0
    line = one_error_line(capsys, main(["search", str(config_file), "--out", str(out), "--resume",
                                        "select.num_archs=2", "train.epochs=2"]))
    assert "written by a different config (train.epochs: 1 -> 2)" in line
    assert main(["search", str(config_file), "--out", str(out), "--extend", "select.num_archs=2",
                 "train.epochs=2"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 8 and load_checkpoint(out)["epoch"] == 2
    steps = [_strict_json(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if '"lr"' in ln]
    lr_at_6 = next(r["lr"] for r in steps if r["step"] == 6)
    import math as m
    assert lr_at_6 == pytest.approx(0.05 * 0.5 * (1 + m.cos(m.pi * 6 / 8)))  # cosine over the new 8 steps
    line = one_error_line(capsys, main(["search", str(config_file), "--out", str(out), "--extend",
                                        "select.num_archs=2", "train.epochs=1"]))
    assert "--extend needs more epochs than the run's 2" in line
    line = one_error_line(capsys, main(["search", str(config_file), "--out", str(out), "--extend",
                                        "select.num_archs=2", "train.epochs=3", "train.lr=0.1"]))
    assert "different config (train.lr" in line
