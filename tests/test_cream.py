"""Tests of Cream: the prioritized path board, teacher choice, the meta-gradient, FLOPs range, resume."""

from __future__ import annotations

import json
import random

import pytest
import torch
import torch.nn.functional as F

from distilnas.algorithms.cream import BoardEntry, Cream, MatchingNetwork, PrioritizedBoard, soft_cross_entropy
from distilnas.config import ConfigError
from distilnas.data import Splits
from distilnas.spaces import NB201Config, NB201Space
from distilnas.train.checkpoint import load_checkpoint
from distilnas.train.loop import resolve_config, run_search


def entry(arch: str, acc: float, flops: float, step: int = 0) -> BoardEntry:
    return BoardEntry(arch, acc, flops, 0.0, step, torch.zeros(2, 1, 4, 4), torch.full((2, 10), 0.1))


def test_board_rule():
    board = PrioritizedBoard(size=3, gap=5.0)
    for i, acc in enumerate((50.0, 60.0, 55.0)):
        assert board.update(entry(f"a{i}", acc, 100.0))  # room left
    assert [e.accuracy for e in board] == [60.0, 55.0, 50.0]
    assert not board.update(entry("b", 54.0, 100.0))  # better than the worst, but not by the gap, same FLOPs
    assert not board.update(entry("c", 49.0, 10.0))  # cheaper, but less accurate
    assert board.update(entry("d", 51.0, 90.0))  # more accurate AND cheaper than the worst: in
    assert [e.arch for e in board] == ["a1", "a2", "d"]
    assert board.update(entry("e", 56.5, 500.0))  # beats the worst (51) by more than the gap: in
    assert [e.arch for e in board] == ["a1", "e", "a2"] and len(board) == 3
    assert board.update(entry("a2", 70.0, 100.0, step=9))  # a path already on the board is re-measured
    assert [e.arch for e in board] == ["a2", "a1", "e"] and board.entries[0].step == 9


def test_board_sorts_ties_by_flops_and_round_trips():
    board = PrioritizedBoard(size=4, gap=5.0)
    board.update(entry("x", 50.0, 300.0))
    board.update(entry("y", 50.0, 100.0))
    assert [e.arch for e in board] == ["y", "x"]
    other = PrioritizedBoard(4, 5.0)
    other.load_state_dict(board.state_dict())
    assert [(e.arch, e.accuracy, e.flops) for e in other] == [(e.arch, e.accuracy, e.flops) for e in board]
    assert torch.equal(other.entries[0].probs, board.entries[0].probs)
    assert "inputs" not in board.entries[0].summary()


def test_soft_cross_entropy():
    logits = torch.randn(5, 10)
    q = F.softmax(torch.randn(5, 10), dim=1)
    assert soft_cross_entropy(logits, q).item() == pytest.approx(
        -(q * F.log_softmax(logits, 1)).sum(1).mean().item())
    hard = F.one_hot(torch.arange(5), 10).float()
    assert soft_cross_entropy(logits, hard).item() == pytest.approx(F.cross_entropy(logits, torch.arange(5)).item())


# -- the algorithm on a tiny NB201 supernet ----------------------------------------------------------
@pytest.fixture
def space() -> NB201Space:
    return NB201Space(NB201Config(C=4, N=1, in_channels=1, input_size=16))


def tiny_data(n: int = 64) -> Splits:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)
    return Splits(x, y, x.clone(), y.clone(), x[:8], y[:8], 10)


def make_cream(space: NB201Space, dtype=torch.float32, **cfg) -> Cream:
    torch.manual_seed(0)
    supernet = space.supernet().to(dtype)
    algo = Cream(space, supernet, Cream.Config(**cfg), seed=0)
    data = tiny_data()
    data.val_x = data.val_x.to(dtype)
    algo.setup(data, torch.device("cpu"))
    algo.meta.to(dtype)
    return algo


def fill_board(algo: Cream, n: int, dtype=torch.float32) -> None:
    rng = random.Random(1)
    for i in range(n):
        a = algo.space.sample(rng)
        x = torch.randn(algo.cfg.slice, 1, 16, 16, dtype=dtype)
        with torch.no_grad():
            p = F.softmax(algo.supernet(x, a), 1)
        algo.board.update(BoardEntry(str(a), 50.0 + i, 1e5, 1e3, 0, x, p))


def test_pick_teacher(space):
    algo = make_cream(space, pick="top1")
    fill_board(algo, 4)
    a = space.sample(random.Random(5))
    t, rho, _ = algo.pick_teacher(a, random.Random(0))
    assert t is algo.board.entries[0] and rho == 0.5  # the fixed weight (algorithm.rho)
    algo.cfg.pick = "meta"
    t, rho, spent = algo.pick_teacher(a, random.Random(0))
    with torch.no_grad():
        scores = algo.meta(algo._deltas(a))
    assert t is algo.board.entries[int(scores.argmax())]
    assert rho == pytest.approx(torch.sigmoid(scores.max()).item())
    assert spent == 4 * algo.cfg.slice
    algo.cfg.pick = "random"
    picks = {algo.pick_teacher(a, random.Random(s))[0].arch for s in range(30)}
    assert len(picks) > 1 and picks <= {e.arch for e in algo.board}


def meta_case(space: NB201Space, arch_seed: int, data_seed: int, n: int):
    """A float64 Cream with 3 board entries, a sampled path and seeded training / validation batches of
    ``n`` images: (algo, arch, x, val_x, val_y) for the meta-gradient tests."""
    algo = make_cream(space, dtype=torch.float64)
    fill_board(algo, 3, torch.float64)
    a = space.sample(random.Random(arch_seed))
    g = torch.Generator().manual_seed(data_seed)
    x = torch.randn(n, 1, 16, 16, generator=g, dtype=torch.float64)
    vx = torch.randn(n, 1, 16, 16, generator=g, dtype=torch.float64)
    vy = torch.randint(0, 10, (n,), generator=g)
    return algo, a, x, vx, vy


def test_meta_gradient_matches_finite_differences(space):
    """The unrolled meta-gradient (eq. 7-8), sign included, equals a central finite difference."""
    algo, a, x, vx, vy = meta_case(space, arch_seed=7, data_seed=3, n=16)
    lr = 0.5
    bias = algo.meta.fc.bias
    (grad,) = torch.autograd.grad(algo.meta_objective(a, x, vx, vy, lr), [bias])
    eps = 1e-5
    with torch.no_grad():
        bias += eps
    up = algo.meta_objective(a, x, vx, vy, lr).item()
    with torch.no_grad():
        bias -= 2 * eps
    down = algo.meta_objective(a, x, vx, vy, lr).item()
    fd = (up - down) / (2 * eps)
    assert abs(grad.item()) > 1e-8  # the meta loss does depend on the matching network
    assert grad.item() == pytest.approx(fd, rel=1e-4, abs=1e-10)


def test_meta_update_moves_only_the_meta_network(space):
    algo = make_cream(space, meta_lr=0.1, meta_optimizer="adam")
    fill_board(algo, 3)
    before_meta = [p.clone() for p in algo.meta.parameters()]
    before_net = {k: v.clone() for k, v in algo.supernet.named_parameters()}
    x = torch.randn(8, 1, 16, 16)
    opt = torch.optim.SGD(algo.supernet.parameters(), lr=0.1)
    algo.optimizer = opt
    assert algo.meta_update(space.sample(random.Random(2)), x, step=0) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before_meta, algo.meta.parameters()))
    after = dict(algo.supernet.named_parameters())
    assert all(torch.equal(v, after[k]) for k, v in before_net.items())
    assert all(p.grad is None for p in algo.supernet.parameters())


def test_training_step_distils_after_warmup(space):
    algo = make_cream(space, warmup_epochs=1, board_size=3, board_val_size=16)
    data = tiny_data()
    x, y = data.train_x[:8], data.train_y[:8]
    out = algo.training_step(x, y, step=0, epoch=0, num_epochs=3)  # warm-up: plain CE, board closed
    assert len(algo.board) == 0 and out.forward_images == 0 and algo.stats["distilled"] == 0
    for step in range(1, 5):
        algo.supernet.zero_grad()
        out = algo.training_step(x, y, step=step, epoch=1, num_epochs=3)
    assert len(algo.board) == 3 and algo.stats["distilled"] == 3
    assert out.forward_images >= 16 + len(x)  # board evaluation + the teacher's forward
    for e in algo.board:  # accuracy on the held-out images, not the training batch
        assert e.accuracy * 16 / 100 == pytest.approx(round(e.accuracy * 16 / 100))


def test_flops_range_is_respected(space):
    costs = sorted(space.cost(space.sample(random.Random(i)))["flops"] for i in range(200))
    lo, hi = costs[60], costs[140]
    algo = make_cream(space, flops_min=lo, flops_max=hi)
    for s in range(100):
        assert lo <= space.cost(algo.sample(random.Random(s)))["flops"] <= hi
    bad = make_cream(space, flops_min=1.0, flops_max=2.0, max_tries=20)
    with pytest.raises(ConfigError, match="flops"):
        bad.sample(random.Random(0))
    with pytest.raises(ConfigError, match="flops_min"):
        make_cream(space, flops_min=5.0, flops_max=2.0)


def test_prior_biases_sampling(space):
    algo = make_cream(space, prior={"nor_conv_3x3": 20.0})
    ops = [op for s in range(50) for op in algo.sample(random.Random(s)).ops]
    assert ops.count("nor_conv_3x3") > len(ops) / 2


def test_bad_options(space):
    with pytest.raises(ConfigError, match="pick"):
        make_cream(space, pick="best")
    with pytest.raises(ConfigError, match="board_eval"):
        make_cream(space, board_eval="test")


def cream_search(search_dict, **algo):
    search_dict["algorithm"] = {"name": "cream", "warmup_epochs": 1, "board_size": 3, "update_iter": 2,
                                "board_val_size": 32, "meta_val_batch": 16, **algo}
    search_dict["train"]["epochs"] = 3
    return search_dict


def test_search_selects_from_the_board(tmp_path, search_dict):
    result = run_search(resolve_config(cream_search(search_dict)), tmp_path / "run", progress=False)
    board = [e["arch"] for e in result["board"]]
    assert len(board) == 3 and result["arch"] in board
    assert result["num_scored"] == 3 and {r["arch"] for r in result["top"]} <= set(board)
    assert result["best"]["flops"] > 0 and "board_accuracy" in result["best"]
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["algorithm"]
    assert [e["arch"] for e in state["board"]] == board and state["meta"] is not None
    # whether the matching network learns is in metrics.jsonl, per epoch after the warm-up (docs/cream.md)
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if '"epoch"' in line]
    distilled = [e for e in epochs if "rho_mean" in e]
    assert distilled and all(e["epoch"] >= 1 for e in distilled)
    for e in distilled:
        assert 0 < e["rho_mean"] < 1 and len(e["teacher_picks"]) == 3 and sum(e["teacher_picks"]) > 0
        assert e["meta_change"] > 0 and e["meta_loss"] > 0


def test_resume_restores_board_and_meta(tmp_path, search_dict, monkeypatch):
    cfg = cream_search(search_dict)
    straight = run_search(resolve_config(json.loads(json.dumps(cfg))), tmp_path / "a", progress=False)

    calls = {"n": 0}
    original = Cream.on_epoch_end

    def interrupt(self, epoch):
        out = original(self, epoch)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(Cream, "on_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_search(resolve_config(json.loads(json.dumps(cfg))), tmp_path / "b", progress=False)
    monkeypatch.setattr(Cream, "on_epoch_end", original)
    resumed = run_search(resolve_config(json.loads(json.dumps(cfg))), tmp_path / "b", resume=True, progress=False)
    assert resumed["board"] == straight["board"] and resumed["top"] == straight["top"]
    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["algorithm"]["meta"][k], b["algorithm"]["meta"][k]) for k in a["algorithm"]["meta"])


def test_matching_network_shape():
    m = MatchingNetwork(10, 4)
    assert m(torch.randn(7, 4, 10)).shape == (7,)


def test_meta_update_on_the_mobilenet_space():
    """The meta-gradient needs a double backward through every op (e.g. the SE gate's hard sigmoid)."""
    from distilnas.spaces import MobileNetConfig, MobileNetSpace

    space = MobileNetSpace(MobileNetConfig(preset="fmnist16", depths=[1, 1, 1, 1, 1], head_channels=32))
    torch.manual_seed(0)
    algo = Cream(space, space.supernet(), Cream.Config(meta_lr=0.1), seed=0)
    algo.setup(tiny_data(), torch.device("cpu"), torch.optim.SGD(algo.supernet.parameters(), lr=0.1))
    fill_board(algo, 2)
    before = [p.clone() for p in algo.meta.parameters()]
    algo.meta_update(space.sample(random.Random(0)), torch.randn(4, 1, 16, 16), step=0)
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.meta.parameters()))


def test_finite_difference_meta_gradient_matches_the_exact_one(space):
    """meta_grad=fd (DARTS' trick) computes the same unrolled meta-gradient as the double backward."""
    algo, a, x, vx, vy = meta_case(space, arch_seed=7, data_seed=3, n=16)
    before = [p.clone() for p in algo.supernet.parameters()]
    exact = torch.autograd.grad(algo.meta_objective(a, x, vx, vy, 0.5), list(algo.meta.parameters()))
    tight = algo.meta_gradient_fd(a, x, vx, vy, lr=0.5, radius=1e-6)
    default = algo.meta_gradient_fd(a, x, vx, vy, lr=0.5)
    assert all(torch.equal(p, q) for p, q in zip(before, algo.supernet.parameters()))  # weights restored
    for e, t, d in zip(exact, tight, default):
        assert e.norm() > 1e-8
        assert float((t - e).norm() / e.norm()) < 1e-6  # converges to the exact gradient
        assert float((d - e).norm() / e.norm()) < 0.1  # the default radius: a few percent


# -- fidelity (issue 12) ---------------------------------------------------------------------------------------
def test_ablations_change_only_the_teacher(space):
    """pick=random/top1 use the fixed weight algorithm.rho (default 0.5, the meta network's rho at
    initialisation), so the KD/CE balance of eq. 6 is the same in every arm of the ablation."""
    meta = make_cream(space)
    fill_board(meta, 4)
    a = space.sample(random.Random(5))
    _, rho_meta, _ = meta.pick_teacher(a, random.Random(0))
    for pick in ("random", "top1"):
        algo = make_cream(space, pick=pick)
        fill_board(algo, 4)
        _, rho, _ = algo.pick_teacher(a, random.Random(0))
        assert rho == 0.5 and abs(rho_meta - rho) < 0.05
    algo = make_cream(space, pick="top1", rho=1.0)
    fill_board(algo, 2)
    assert algo.pick_teacher(a, random.Random(0))[1] == 1.0


def _distil_steps(algo, steps, epoch=1, start=0):
    data = tiny_data()
    algo.optimizer = torch.optim.SGD(algo.supernet.parameters(), lr=0.05)
    for step in range(start, start + steps):
        algo.supernet.zero_grad()
        x, y = data.train_x[8 * (step % 8):8 * (step % 8) + 8], data.train_y[8 * (step % 8):8 * (step % 8) + 8]
        algo.training_step(x, y, step=step, epoch=epoch, num_epochs=3)


def test_official_meta_training_adds_the_training_loss_gradient(space):
    """meta_train=official: rho stays differentiable in eq. 6, so the matching network moves at every
    distilled step; meta_train=paper: it moves only at meta updates."""
    for mode in ("paper", "official"):
        algo = make_cream(space, warmup_epochs=0, board_size=3, board_val_size=16, update_iter=1000,
                          meta_lr=0.01, meta_train=mode)
        _distil_steps(algo, 1)  # step 0: the meta update (update_iter divides 0) can't run on an empty board
        before = [p.detach().clone() for p in algo.meta.parameters()]
        _distil_steps(algo, 4, start=1)  # steps 1..4 distil, no meta update
        moved = any(not torch.equal(b, p) for b, p in zip(before, algo.meta.parameters()))
        assert moved == (mode == "official"), mode


def test_learning_statistics_are_logged(space):
    algo = make_cream(space, warmup_epochs=0, board_size=3, board_val_size=16, update_iter=2, meta_lr=0.05)
    _distil_steps(algo, 7)
    stats = algo.on_epoch_end(0)
    assert stats["meta_change"] > 0 and 0 < stats["rho_mean"] < 1 and stats["rho_std"] >= 0
    assert sum(stats["teacher_picks"]) == algo.stats["distilled"] and len(stats["teacher_picks"]) == 3
    assert stats["meta_loss"] > 0 and stats["board_worst_acc"] <= stats["board_best_acc"]
    again = algo.on_epoch_end(1)  # the per-epoch statistics start afresh
    assert "rho_mean" not in again and "teacher_picks" not in again and again["meta_change"] == stats["meta_change"]


def test_archs_file_bypassing_the_board_says_so(tmp_path, search_dict, capsys):
    f = tmp_path / "archs.txt"
    f.write_text("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|\n")
    cfg = cream_search(search_dict)
    cfg["select"]["archs_file"] = str(f)
    run_search(resolve_config(cfg), tmp_path / "run", progress=False)
    assert "select.archs_file replaces cream's own candidates" in capsys.readouterr().err


def test_archs_file_wins_over_select_by_board(tmp_path, search_dict):
    """select_by=board ranks the board's own accuracies, but listed architectures replace the board as
    the candidates: the result is the best listed one by the supernet's accuracy, as the note says."""
    rng = random.Random(0)
    space = NB201Space(NB201Config())
    f = tmp_path / "archs.txt"
    f.write_text("".join(f"{space.sample(rng)}\n" for _ in range(4)))
    cfg = cream_search(search_dict)
    cfg["select"]["archs_file"] = str(f)
    cfg["algorithm"]["select_by"] = "board"
    result = run_search(resolve_config(cfg), tmp_path / "run", progress=False)
    listed = {ln for ln in f.read_text().splitlines()}
    scored = [json.loads(ln) for ln in (tmp_path / "run" / "scores.jsonl").read_text().splitlines()]
    assert {r["arch"] for r in scored} == listed and result["best"]["arch"] in listed
    assert result["best"]["accuracy"] == max(r["accuracy"] for r in scored)


def test_the_unrolled_step_is_the_training_step(space):
    """Eq. 7-8 differentiate through the student step training takes: w' = w - lr * rho * dKD/dw with rho
    a constant in w (the training step does not differentiate rho either), not through d rho / dw."""
    from torch.func import functional_call

    algo, a, x, vx, vy = meta_case(space, arch_seed=11, data_seed=4, n=8)
    got = algo.meta_objective(a, x, vx, vy, 0.5)
    with torch.no_grad():
        scores = algo.meta(algo._deltas(a))
        b = int(scores.argmax())
        rho = float(torch.sigmoid(scores[b]))
        teacher = F.softmax(algo.supernet(x, space.parse(algo.board.entries[b].arch)), dim=1)
    named = {n: p for n, p in algo.supernet.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad(soft_cross_entropy(algo.supernet(x, a), teacher), list(named.values()),
                                allow_unused=True)
    fast = {n: (p - 0.5 * rho * gr if gr is not None else p) for (n, p), gr in zip(named.items(), grads)}
    want = F.cross_entropy(functional_call(algo.supernet, fast, (vx, a)), vy)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_an_empty_board_falls_back_to_paths_in_the_flops_range(space):
    algo = make_cream(space, flops_min=0.0)
    costs = sorted(space.cost(space.sample(random.Random(i)))["flops"] for i in range(50))
    algo.cfg.flops_min, algo.cfg.flops_max = costs[20], costs[35]
    cands = algo.candidates(8, random.Random(0))
    assert len(cands) == 8 and len({str(c) for c in cands}) == 8
    assert all(costs[20] <= space.cost(c)["flops"] <= costs[35] for c in cands)


def test_cream_without_distillation_trains_exactly_as_spos_with_label_smoothing(tmp_path, search_dict):
    """The KD ablation's baseline: Cream at a fixed teacher with KD weight 0 (eq. 6 with rho = 0 is the
    label-smoothed cross-entropy alone) draws the same paths and batches as SPOS, so its weights are SPOS's
    with Cream's label smoothing, bit for bit (the ablations suite compares cream-top1 with spos-ls). Only
    BatchNorm's running statistics differ (the teacher's forward passes update them), and scoring
    recalibrates those."""
    import copy

    spos = copy.deepcopy(search_dict)
    spos["train"].update(epochs=3, label_smoothing=0.1)
    cream = cream_search(copy.deepcopy(search_dict), pick="top1", rho=0.0)
    cream["train"]["label_smoothing"] = 0.1
    run_search(resolve_config(spos), tmp_path / "spos", progress=False)
    run_search(resolve_config(cream), tmp_path / "cream", progress=False)
    def weights(run):
        state = load_checkpoint(tmp_path / run / "checkpoint.pt")["model"]
        return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}

    a, b = weights("spos"), weights("cream")
    assert len(a) > 10 and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    kd = cream_search(copy.deepcopy(search_dict), pick="top1", rho=0.5)  # with KD the weights differ
    kd["train"]["label_smoothing"] = 0.1
    run_search(resolve_config(kd), tmp_path / "kd", progress=False)
    c = weights("kd")
    assert not all(torch.equal(a[k], c[k]) for k in a)
