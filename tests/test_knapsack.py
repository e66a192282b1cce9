"""Tests of distilnas.search: the potentials file, the exact knapsack search, the Pareto front, DONNA's
linear model and the dna-search / dna-fit commands. Exactness is checked against an independent
pure-Python brute force on small tables."""

from __future__ import annotations

import itertools
import json
import math
import random
import time

import numpy as np
import pytest

from distilnas.cli import main
from distilnas.search import (
    Candidate,
    InfeasibleError,
    Potentials,
    PotentialsError,
    exhaustive_search,
    fit_linear,
    load_linear,
    load_potentials,
    pareto_front,
    save_linear,
    save_potentials,
    search,
)


# ---------------------------------------------------------------------------------------------------
# helpers
def make_pot(blocks: list[list[tuple[float, float, float]]], fixed: tuple[float, float] = (0, 0)) -> Potentials:
    """Potentials from per-block (score, flops, params) triples; candidate j of block i is named 'b{i}c{j}'."""
    return Potentials(tuple(tuple(Candidate(f"b{i}c{j}", float(s), f, p) for j, (s, f, p) in enumerate(b))
                            for i, b in enumerate(blocks)), fixed[0], fixed[1])


def random_pot(rng: random.Random, nb: int, n: int, kind: str) -> Potentials:
    """Integer costs with few distinct scores (many ties), or real costs and scores."""
    blocks = []
    for _ in range(nb):
        if kind == "int":
            blocks.append([(rng.choice([0.1, 0.2, 0.3, 0.5]), rng.randint(0, 12), rng.randint(0, 12))
                           for _ in range(rng.randint(1, n))])
        else:
            blocks.append([(rng.random(), rng.uniform(0, 12), rng.uniform(0, 12)) for _ in range(rng.randint(1, n))])
    return make_pot(blocks, (rng.randint(0, 5), rng.randint(0, 5)))


def dense_pot(seed: int, nb: int = 3, n: int = 6) -> Potentials:
    """``n`` candidates in every block, real scores, integer costs 1..12, fixed part 1."""
    rng = random.Random(seed)
    return make_pot([[(rng.random(), rng.randint(1, 12), rng.randint(1, 12)) for _ in range(n)] for _ in range(nb)],
                    (1, 1))


def brute(pot: Potentials, max_flops=None, max_params=None) -> list[tuple]:
    """Every feasible architecture as (score, flops, params, picks), totals summed fixed + block 0 + ..."""
    out = []
    for pick in itertools.product(*[range(len(b)) for b in pot.blocks]):
        f, p, s = pot.fixed_flops, pot.fixed_params, 0.0
        for i, j in enumerate(pick):
            c = pot.blocks[i][j]
            f, p, s = f + c.flops, p + c.params, s + c.score
        if (max_flops is None or f <= max_flops) and (max_params is None or p <= max_params):
            out.append((s, f, p, pick))
    return out


def order_key(max_flops, max_params):
    """The documented order: score, then the budgeted costs (FLOPs before params)."""
    def key(x) -> tuple:
        s, f, p = x[:3]
        return (s,) + ((f,) if max_flops is not None else ()) + ((p,) if max_params is not None else ())
    return key


def check_against_brute(pot: Potentials, max_flops, max_params, top: int) -> None:
    key = order_key(max_flops, max_params)
    expected = sorted(brute(pot, max_flops, max_params), key=key)
    if not expected:
        with pytest.raises(InfeasibleError):
            search(pot, max_flops, max_params, top)
        return
    got = search(pot, max_flops, max_params, top)
    assert [key((g.score, g.flops, g.params)) for g in got] == [key(e) for e in expected[:top]]
    picks = [tuple(c.index for c in g.choices) for g in got]
    assert len(set(picks)) == len(picks)  # distinct architectures
    feasible = {e[3]: e for e in expected}
    for g, pick in zip(got, picks):
        s, f, p, _ = feasible[pick]  # each returned architecture is feasible and its totals are right
        assert (g.score, g.flops, g.params) == (s, f, p)
        assert g.arch == "_".join(f"b{i}c{j}" for i, j in enumerate(pick))


# ---------------------------------------------------------------------------------------------------
# exactness against brute force
@pytest.mark.parametrize("kind", ["int", "real"])
@pytest.mark.parametrize("seed", range(6))
def test_search_matches_brute_force(kind: str, seed: int) -> None:
    rng = random.Random(seed * 10 + (kind == "real"))
    for _ in range(12):
        pot = random_pot(rng, rng.randint(1, 4), 5, kind)
        hi = 12 * len(pot.blocks) + 5
        max_flops = rng.choice([None, rng.randint(0, hi) if kind == "int" else rng.uniform(0, hi)])
        max_params = rng.choice([None, rng.randint(0, hi) if kind == "int" else rng.uniform(0, hi)])
        check_against_brute(pot, max_flops, max_params, rng.choice([1, 2, 3, 7]))


def test_realistic_costs_match_exhaustive() -> None:
    """Realistic magnitudes (FLOPs 1e6-1e8, params 1e4-1e6) and top-K, against the numpy brute force."""
    rng = np.random.default_rng(0)
    blocks = [[(float(rng.uniform(0.1, 1.0)), int(rng.integers(1_000_000, 100_000_000)),
                int(rng.integers(10_000, 1_000_000))) for _ in range(9)] for _ in range(5)]
    pot = make_pot(blocks, (3_000_000, 20_000))
    for max_flops, max_params, top in [(150e6, None, 1), (150e6, 1.5e6, 1), (250e6, 2e6, 10), (90e6, 3e6, 5)]:
        key = order_key(max_flops, max_params)
        got = [key((s.score, s.flops, s.params)) for s in search(pot, max_flops, max_params, top)]
        ref = [key((s.score, s.flops, s.params)) for s in exhaustive_search(pot, max_flops, max_params, top)]
        assert got == ref


def test_exhaustive_search_matches_python_brute_force() -> None:
    rng = random.Random(3)
    pot = random_pot(rng, 3, 4, "int")
    key = order_key(20, 25)
    expected = sorted(brute(pot, 20, 25), key=key)[:4]
    got = exhaustive_search(pot, 20, 25, 4)
    assert [key((g.score, g.flops, g.params)) for g in got] == [key(e) for e in expected]


# ---------------------------------------------------------------------------------------------------
# adversarial cases
def test_all_scores_equal() -> None:
    """Every architecture ties on score: the order falls to the budgeted costs."""
    rng = random.Random(1)
    pot = make_pot([[(0.5, rng.randint(0, 9), rng.randint(0, 9)) for _ in range(4)] for _ in range(3)])
    for top in (1, 5, 64):
        check_against_brute(pot, 20, None, top)
        check_against_brute(pot, 20, 15, top)
        check_against_brute(pot, None, None, top)


def test_identical_candidates() -> None:
    pot = make_pot([[(0.3, 5, 5)] * 3, [(0.2, 4, 4)] * 2 + [(0.1, 9, 9)]])
    got = search(pot, 9, None, top=6)
    assert len(got) == 6 and len({g.arch for g in got}) == 6
    assert [g.score for g in got] == sorted(g.score for g in got)
    check_against_brute(pot, 9, 9, 4)


def test_budget_exactly_at_cost() -> None:
    """The best architecture costs exactly the budget (real-valued costs, so the sum order matters)."""
    rng = random.Random(7)
    pot = random_pot(rng, 4, 5, "real")
    costs = sorted(f for _, f, _, _ in brute(pot))
    for budget in costs[len(costs) // 3], costs[len(costs) // 2], costs[0], costs[-1]:
        best = search(pot, budget)[0]
        assert best.flops <= budget
        check_against_brute(pot, budget, None, 3)
    # a table where the best architecture sits exactly on the budget
    pot = make_pot([[(0.1, 0.7, 1), (0.5, 0.1, 1)], [(0.2, 0.2, 1), (0.6, 0.1, 1)]], (0.1, 0))
    budget = 0.1 + 0.7 + 0.2
    assert search(pot, budget)[0].arch == "b0c0_b1c0"
    assert search(pot, math.nextafter(budget, 0))[0].arch != "b0c0_b1c0"


def test_infeasible_budgets() -> None:
    pot = make_pot([[(0.1, 10, 3), (0.2, 20, 1)], [(0.3, 5, 4), (0.1, 8, 2)]], (100, 10))
    with pytest.raises(InfeasibleError, match="smallest achievable flops is 115") as e:
        search(pot, max_flops=114)
    assert "\n" not in str(e.value)
    with pytest.raises(InfeasibleError, match="smallest achievable params is 13"):
        search(pot, max_params=12.5)
    # each budget alone can be met (FLOPs 115 with params 17; params 13 with FLOPs 128), both cannot
    with pytest.raises(InfeasibleError, match="fewest params within the FLOPs budget is 15"):
        search(pot, max_flops=118, max_params=13)
    assert search(pot, max_flops=118, max_params=15)[0].params == 15


def test_fewer_feasible_than_top() -> None:
    pot = make_pot([[(0.1, 1, 0), (0.2, 5, 0)], [(0.1, 1, 0), (0.2, 5, 0)]])
    got = search(pot, max_flops=6, top=10)
    assert got[0].arch == "b0c0_b1c0" and {g.arch for g in got[1:]} == {"b0c0_b1c1", "b0c1_b1c0"}


def test_single_block_and_bad_arguments() -> None:
    pot = make_pot([[(0.4, 3, 1), (0.2, 9, 1), (0.3, 4, 1)]], (1, 1))
    assert [g.arch for g in search(pot, 5, top=3)] == ["b0c2", "b0c0"]
    with pytest.raises(ValueError, match="top"):
        search(pot, 5, top=0)
    with pytest.raises(ValueError, match="max_flops"):
        search(pot, float("nan"))


def test_solution_totals_fixed_part_and_separator() -> None:
    pot = make_pot([[(0.25, 10, 100)], [(0.5, 20, 200)]], (1000, 7))
    best = search(pot, 2000, sep="|")[0]
    assert (best.arch, best.score, best.flops, best.params) == ("b0c0|b1c0", 0.75, 1030, 307)
    assert [(c.block, c.index, c.arch) for c in best.choices] == [(0, 0, "b0c0"), (1, 0, "b1c0")]
    assert isinstance(best.flops, int)


# ---------------------------------------------------------------------------------------------------
# Pareto front
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cost", ["flops", "params"])
def test_pareto_front_matches_brute_force(seed: int, cost: str) -> None:
    rng = random.Random(seed)
    pot = random_pot(rng, rng.randint(1, 4), 5, "int" if seed % 2 else "real")
    k = 1 if cost == "flops" else 2
    pts = sorted({(x[k], x[0]) for x in brute(pot)})
    front, best = [], math.inf
    for c, s in pts:  # ascending cost; a point is on the front iff it beats every cheaper score
        if s < best:
            front.append((c, s))
            best = s
    got = pareto_front(pot, cost)
    assert [(getattr(g, cost), g.score) for g in got] == front
    for g in got:  # the front's points are the optimum of the search at their cost
        kw = {"max_flops": g.flops} if cost == "flops" else {"max_params": g.params}
        assert search(pot, **kw)[0].score == g.score


# ---------------------------------------------------------------------------------------------------
# potentials file
def test_potentials_round_trip_keeps_extra_keys(tmp_path) -> None:
    obj = {"meta": {"teacher": "b7"}, "fixed": {"flops": 12, "params": 3.5},
           "blocks": [[{"arch": "a", "score": 0.5, "flops": 1, "params": 2, "mse": 0.1}],
                      [{"arch": "b", "score": 1, "flops": 0, "params": 0, "nsr": [1, 2]},
                       {"arch": "c", "score": -0.5, "flops": 2.5, "params": 1}]]}
    path = tmp_path / "pot.json"
    path.write_text(json.dumps(obj))
    pot = load_potentials(path)
    assert pot.fixed_flops == 12 and pot.fixed_params == 3.5 and pot.num_archs == 2
    assert pot.blocks[0][0].extra == {"mse": 0.1} and pot.extra == {"meta": {"teacher": "b7"}}
    save_potentials(pot, tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == obj
    assert load_potentials(tmp_path / "again.json") == pot


@pytest.mark.parametrize("mutate, where", [
    (lambda o: o.pop("fixed"), "missing key 'fixed'"),
    (lambda o: o.pop("blocks"), "missing key 'blocks'"),
    (lambda o: o["fixed"].pop("params"), "fixed: missing key 'params'"),
    (lambda o: o["blocks"][1][0].pop("score"), "blocks[1][0]: missing key 'score'"),
    (lambda o: o["blocks"][0][1].update(flops="12"), "blocks[0][1].flops: expected a finite number"),
    (lambda o: o["blocks"][0][1].update(params=-1), "blocks[0][1].params: negative cost"),
    (lambda o: o["blocks"][1][0].update(score=float("nan")), "blocks[1][0].score: expected a finite number"),
    (lambda o: o["blocks"][0][0].update(arch=3), "blocks[0][0].arch: expected a non-empty string"),
    (lambda o: o["blocks"][0][1].update(arch="x"), "blocks[0][1]: arch 'x' repeats blocks[0][0]"),
    (lambda o: o["blocks"].append([]), "blocks[2]: expected a non-empty list"),
    (lambda o: o.update(blocks={}), "blocks: expected a non-empty list of blocks"),
    (lambda o: o["blocks"][0].__setitem__(0, 5), "blocks[0][0]: expected an object"),
])
def test_malformed_potentials(tmp_path, mutate, where) -> None:
    obj = {"fixed": {"flops": 0, "params": 0},
           "blocks": [[{"arch": "x", "score": 0.1, "flops": 1, "params": 1},
                       {"arch": "y", "score": 0.2, "flops": 2, "params": 2}],
                      [{"arch": "z", "score": 0.3, "flops": 3, "params": 3}]]}
    mutate(obj)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(PotentialsError) as e:
        load_potentials(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and where in msg and "\n" not in msg


def test_unreadable_potentials(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_potentials(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PotentialsError, match="not valid JSON at line 1"):
        load_potentials(tmp_path / "bad.json")


def test_split_and_join_with_separator_inside_block_strings() -> None:
    pot = Potentials((tuple(Candidate(a, 0.1, 1, 1) for a in ("k3", "k3_e6", "k5")),
                      tuple(Candidate(a, 0.1, 1, 1) for a in ("e6_k5", "k7"))))
    assert pot.split("k3_e6_k5") == (0, 0)  # 'k3' + 'e6_k5' (the other cut 'k3_e6' + 'k5' is no block-1 arch)
    assert pot.split("k3_e6_k7") == (1, 1)
    assert pot.split(pot.join((2, 0), sep="/"), sep="/") == (2, 0)
    with pytest.raises(PotentialsError, match="matches no"):
        pot.split("k3_k3")
    amb = Potentials((tuple(Candidate(a, 0.1, 1, 1) for a in ("a", "a_b")),
                      tuple(Candidate(a, 0.1, 1, 1) for a in ("b_c", "c"))))
    with pytest.raises(PotentialsError, match="matches 2 different"):
        amb.split("a_b_c")


# ---------------------------------------------------------------------------------------------------
# DONNA linear model
def synthetic_truth(pot: Potentials, w0: float, w: np.ndarray, n: int, noise: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    truth = {}
    while len(truth) < n:
        pick = [int(rng.integers(len(b))) for b in pot.blocks]
        s = np.array([pot.blocks[i][j].score for i, j in enumerate(pick)])
        truth[pot.join(pick)] = float(w0 + s @ w + noise * rng.normal())
    return truth


def test_fit_linear_recovers_known_weights() -> None:
    pot = dense_pot(0, nb=4, n=8)
    w0, w = 75.0, np.array([-3.0, -8.0, -1.0, -5.0])
    model = fit_linear(pot, synthetic_truth(pot, w0, w, 25, 0.0, 0))
    assert model.intercept == pytest.approx(w0) and np.allclose(model.weights, w)
    assert model.r2 == pytest.approx(1.0) and model.kendall_tau == pytest.approx(1.0)
    assert model.n == 25 and model.cv_folds == 25 and model.skipped == 0

    noisy = fit_linear(pot, synthetic_truth(pot, w0, w, 60, 0.3, 1), folds=5, seed=3)
    assert np.allclose(noisy.weights, w, atol=0.8) and 0.8 < noisy.r2 < 1.0
    assert noisy.cv_folds == 5 and 0.5 < noisy.kendall_tau < 1.0
    assert noisy.kendall_tau > noisy.kendall_tau_sum  # unequal true weights: the plain sum ranks worse

    ridge = fit_linear(pot, synthetic_truth(pot, w0, w, 25, 0.0, 0), ridge=100.0)
    assert np.linalg.norm(ridge.weights) < np.linalg.norm(w)


def test_fit_linear_search_maximises_predicted_accuracy(tmp_path) -> None:
    pot = dense_pot(1, nb=3, n=5)
    w = np.array([-2.0, -6.0, -1.0])
    model = fit_linear(pot, synthetic_truth(pot, 70.0, w, 12, 0.0, 2))
    lin = model.to_potentials(pot)
    budget = 12 * 3 // 2
    best = search(lin, budget, top=3)
    feasible = [x for x in brute(pot, budget)]
    pred = sorted(-(model.intercept + np.array([pot.blocks[i][j].score for i, j in enumerate(pk)]) @ model.weights)
                  for _, _, _, pk in feasible)
    assert [b.score for b in best] == pytest.approx(pred[:3])
    assert best[0].flops <= budget and lin.blocks[0][0].extra["dna_score"] == pot.blocks[0][0].score
    save_linear(model, tmp_path / "fit.json")
    assert load_linear(tmp_path / "fit.json") == model


def test_fit_linear_errors_and_skips() -> None:
    pot = dense_pot(2)
    truth = synthetic_truth(pot, 70.0, np.array([-1.0, -2.0, -3.0]), 8, 0.0, 0)
    model = fit_linear(pot, {**truth, "not_an_arch": 50.0, pot.join((0, 0, 0)): [60.0, 62.0]})
    assert model.skipped == 1 and model.n == len({**truth, pot.join((0, 0, 0)): 0})
    with pytest.raises(ValueError, match="needs at least 5"):
        fit_linear(pot, dict(list(truth.items())[:4]))
    assert fit_linear(pot, dict(list(truth.items())[:4]), ridge=0.1).n == 4
    with pytest.raises(ValueError, match="folds"):
        fit_linear(pot, truth, folds=1)
    with pytest.raises(PotentialsError, match="no finite 'nsr'"):
        fit_linear(pot, truth, metric="nsr")


# ---------------------------------------------------------------------------------------------------
# command line
@pytest.fixture
def pot_file(tmp_path):
    pot = dense_pot(5)
    path = tmp_path / "pot.json"
    save_potentials(pot, path)
    return pot, path


def test_cli_dna_search(pot_file, tmp_path, capsys) -> None:
    pot, path = pot_file
    out = tmp_path / "res.json"
    assert main(["dna-search", str(path), "--max-flops", "20", "--max-params", "25", "--top", "3",
                 "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "best of" in line
    res = json.loads(out.read_text())
    ref = search(pot, 20, 25, 3)
    assert (res["arch"], res["score"], res["flops"], res["params"]) == (ref[0].arch, ref[0].score, ref[0].flops,
                                                                        ref[0].params)
    assert [c["index"] for c in res["choices"]] == [c.index for c in ref[0].choices]
    assert [t["arch"] for t in res["top"]] == [s.arch for s in ref]
    assert res["budgets"] == {"max_flops": 20, "max_params": 25} and res["search_seconds"] >= 0
    assert [p["flops"] for p in res["pareto_front"]["flops"]] == [s.flops for s in pareto_front(pot)]
    assert "params" in res["pareto_front"]


@pytest.mark.parametrize("args, message", [
    (["missing.json", "--max-flops", "1M"], "not found"),
    (["BAD", "--max-flops", "1M"], "missing key 'score'"),
    (["POT", "--max-flops", "1"], "smallest achievable flops"),
])
def test_cli_dna_search_errors(pot_file, tmp_path, capsys, args, message) -> None:
    _, path = pot_file
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"fixed": {"flops": 0, "params": 0}, "blocks": [[{"arch": "a", "flops": 1,
                                                                               "params": 1}]]}))
    args = [str(path) if a == "POT" else str(bad) if a == "BAD" else str(tmp_path / a) if a.endswith(".json")
            else a for a in args]
    assert main(["dna-search", *args, "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("distilnas: error: ") and message in err and err.count("\n") == 1


def test_cli_dna_fit_then_search(pot_file, tmp_path, capsys) -> None:
    pot, path = pot_file
    truth = synthetic_truth(pot, 70.0, np.array([-2.0, -6.0, -1.0]), 10, 0.0, 0)
    table = tmp_path / "table.json"  # the layout distilnas bench build writes
    table.write_text(json.dumps({"archs": {a: {"accuracy": [v - 0.1, v + 0.1], "flops": 1} for a, v in truth.items()}}))
    fit = tmp_path / "fit.json"
    assert main(["dna-fit", str(path), str(table), "--out", str(fit)]) == 0
    assert "R^2 1.000" in capsys.readouterr().out
    assert np.allclose(json.loads(fit.read_text())["weights"], [-2.0, -6.0, -1.0])
    out = tmp_path / "res.json"
    assert main(["dna-search", str(path), "--max-flops", "30", "--linear", str(fit), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["predicted_accuracy"] == pytest.approx(-search(load_linear(fit).to_potentials(pot), 30)[0].score)


# ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_speed_6x7776() -> None:
    """6 blocks x 7,776 candidates with realistic magnitudes: one budget and two, each well under 2 s."""
    rng = np.random.default_rng(0)
    blocks = [list(zip(rng.uniform(0.1, 1.0, 7776), rng.integers(1_000_000, 100_000_001, 7776).tolist(),
                       rng.integers(10_000, 1_000_001, 7776).tolist())) for _ in range(6)]
    pot = make_pot(blocks)
    for kw in ({"max_flops": 200e6}, {"max_flops": 200e6, "max_params": 2e6}):
        t0 = time.perf_counter()
        search(pot, **kw)
        assert time.perf_counter() - t0 < 2.0
