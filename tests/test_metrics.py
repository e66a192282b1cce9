"""Tests of distilnas.evaluate.metrics."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from distilnas.evaluate.metrics import (
    align,
    detectable_difference,
    difference_power,
    format_table,
    noise_ceiling,
    rank_metrics,
    seed_arch_bootstrap,
    summarize_seeds,
    verdict,
)


def test_perfect_ranking():
    truth = np.arange(30, dtype=float)
    pred = truth * 2.0 + 5.0  # same order, different scale
    m = rank_metrics(pred, truth, bootstrap=0)
    assert m["n"] == 30
    assert m["kendall_tau"] == pytest.approx(1.0)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["pearson"] == pytest.approx(1.0)
    assert m["top10_tau"] == pytest.approx(1.0)
    assert m["top20_tau"] == pytest.approx(1.0)
    assert m["precision@10"] == pytest.approx(1.0)
    assert m["precision@20"] == pytest.approx(1.0)
    assert m["cpr"] == pytest.approx(1.0)
    assert "kendall_tau_lo" not in m and "spearman_hi" not in m


def test_reversed_ranking():
    truth = np.arange(30, dtype=float)
    m = rank_metrics(-truth, truth, bootstrap=0)
    assert m["kendall_tau"] == pytest.approx(-1.0)
    assert m["spearman"] == pytest.approx(-1.0)
    assert m["top10_tau"] == pytest.approx(-1.0)
    assert m["cpr"] == pytest.approx(0.0)
    # the 10 worst predictions are the 10 best truths: no overlap
    assert m["precision@10"] == pytest.approx(0.0)


def test_hand_computed_example():
    truth = [1.0, 2.0, 3.0, 4.0, 5.0]
    pred = [0.1, 0.3, 0.2, 0.5, 0.4]
    conc = disc = 0
    for i, j in combinations(range(len(truth)), 2):
        s = (pred[i] - pred[j]) * (truth[i] - truth[j])
        assert s != 0  # no ties in this example
        if s > 0:
            conc += 1
        else:
            disc += 1
    assert (conc, disc) == (8, 2)  # two swapped adjacent pairs
    expected_tau = (conc - disc) / (conc + disc)  # 0.6
    m = rank_metrics(pred, truth, ks=(2, 3), bootstrap=0)
    assert m["kendall_tau"] == pytest.approx(expected_tau)
    assert m["kendall_tau"] == pytest.approx(0.6)
    assert m["cpr"] == pytest.approx(conc / (conc + disc))
    # top-2 by truth: archs 4 and 3 (truth 5, 4); pred orders them 0.4 < 0.5 -> reversed
    assert m["top2_tau"] == pytest.approx(-1.0)
    # top-2 by pred {3, 4} == top-2 by truth {4, 3}
    assert m["precision@2"] == pytest.approx(1.0)
    # top-3 by pred {3, 4, 1}, by truth {4, 3, 2}: 2 of 3 shared
    assert m["precision@3"] == pytest.approx(2 / 3)
    # small n with default ks: top-k measures undefined
    m2 = rank_metrics(pred, truth, bootstrap=0)
    assert math.isnan(m2["top10_tau"]) and math.isnan(m2["precision@10"])


def test_cpr_pred_ties_count_half():
    truth = [1.0, 2.0, 3.0]
    pred = [0.0, 0.0, 1.0]
    # pairs: (0,1) tied in pred -> 0.5; (0,2) concordant; (1,2) concordant
    m = rank_metrics(pred, truth, bootstrap=0)
    assert m["cpr"] == pytest.approx(2.5 / 3)

    # all predictions tied: every pair counts half
    m = rank_metrics([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], bootstrap=0)
    assert m["cpr"] == pytest.approx(0.5)


def test_cpr_ignores_truth_ties():
    truth = [1.0, 1.0, 2.0]
    pred = [5.0, 0.0, 3.0]
    # pair (0,1) has equal truth -> ignored; (0,2) discordant; (1,2) concordant
    m = rank_metrics(pred, truth, bootstrap=0)
    assert m["cpr"] == pytest.approx(0.5)


def test_top_k_tau_uses_only_best_by_truth():
    n = 30
    truth = np.arange(n, dtype=float)
    pred = truth.copy()
    best = np.argsort(-truth)[:5]  # indices 29..25
    pred[best] = pred[best][::-1]  # reverse the order among the 5 best only
    m = rank_metrics(pred, truth, ks=(5, 10), bootstrap=0)
    assert m["kendall_tau"] > 0.9
    assert m["top5_tau"] == pytest.approx(-1.0)
    # the set of the top 5 is unchanged
    assert m["precision@5"] == pytest.approx(1.0)
    # top-10: 10 of the 45 pairs are discordant
    assert m["top10_tau"] == pytest.approx((35 - 10) / 45)


def test_top_k_tau_undefined_for_k_below_two():
    m = rank_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], ks=(1,), bootstrap=0)
    assert math.isnan(m["top1_tau"])
    assert m["precision@1"] == pytest.approx(1.0)


def test_matches_scipy():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=40)
    pred = truth + rng.normal(size=40)
    m = rank_metrics(pred, truth, bootstrap=0)
    assert m["kendall_tau"] == pytest.approx(stats.kendalltau(pred, truth).statistic)
    assert m["spearman"] == pytest.approx(stats.spearmanr(pred, truth).statistic)
    assert m["pearson"] == pytest.approx(stats.pearsonr(pred, truth).statistic)


def test_bootstrap_interval_and_reproducibility():
    rng = np.random.default_rng(1)
    n = 64
    truth = np.sort(rng.uniform(0.5, 0.9, size=n))
    pred = truth + rng.normal(scale=0.05, size=n)
    m = rank_metrics(pred, truth, bootstrap=1000, seed=7)
    assert m["kendall_tau_lo"] <= m["kendall_tau"] <= m["kendall_tau_hi"]
    assert m["spearman_lo"] <= m["spearman"] <= m["spearman_hi"]
    assert m["kendall_tau_lo"] < m["kendall_tau_hi"]  # noisy: a real interval
    assert -1.0 <= m["kendall_tau_lo"] and m["kendall_tau_hi"] <= 1.0

    again = rank_metrics(pred, truth, bootstrap=1000, seed=7)
    for key in ("kendall_tau_lo", "kendall_tau_hi", "spearman_lo", "spearman_hi"):
        assert again[key] == m[key]
    other = rank_metrics(pred, truth, bootstrap=1000, seed=8)
    assert (other["kendall_tau_lo"], other["kendall_tau_hi"]) != (
        m["kendall_tau_lo"],
        m["kendall_tau_hi"],
    )


def test_bootstrap_drops_degenerate_resamples():
    # with n=2 many resamples draw the same arch twice (constant -> NaN tau); those are dropped
    m = rank_metrics([1.0, 2.0], [1.0, 2.0], bootstrap=200, seed=0)
    assert m["kendall_tau_lo"] == pytest.approx(1.0)
    assert m["kendall_tau_hi"] == pytest.approx(1.0)


def test_align_averages_seeds_and_strips_keys():
    pred = {" a ": 0.1, "b": 0.2, "c": 0.3, "x": 9.0}
    truth = {"c": [0.7, 0.9], "a": 0.5, "b ": [0.6, 0.6, 0.9], "y": 0.1}
    archs, p, t = align(pred, truth)
    assert archs == ["c", "a", "b"]  # truth order
    np.testing.assert_allclose(p, [0.3, 0.1, 0.2])
    np.testing.assert_allclose(t, [0.8, 0.5, 0.7])


def test_align_errors_on_fewer_than_two_matches():
    with pytest.raises(ValueError, match="1"):
        align({"a": 1.0, "b": 2.0}, {"a": [0.5], "z": 0.3})
    with pytest.raises(ValueError, match="0"):
        align({"a": 1.0}, {"b": 1.0})


def test_noise_ceiling_identical_and_reversed():
    base = np.linspace(0.5, 0.9, 25)
    same = {f"arch{i}": [v, v] for i, v in enumerate(base)}
    nc = noise_ceiling(same)
    assert nc["kendall_tau"] == pytest.approx(1.0)
    assert nc["spearman"] == pytest.approx(1.0)
    assert nc["top10_tau"] == pytest.approx(1.0)
    assert nc["top20_tau"] == pytest.approx(1.0)
    assert nc["n"] == 25 and nc["seed_pairs"] == 1
    assert nc["seed_std"] == pytest.approx(0.0)

    rev = {f"arch{i}": [v, -v] for i, v in enumerate(base)}
    nc = noise_ceiling(rev)
    assert nc["kendall_tau"] == pytest.approx(-1.0)
    assert nc["spearman"] == pytest.approx(-1.0)
    assert nc["top10_tau"] == pytest.approx(-1.0)
    expected_std = np.mean([np.std([v, -v], ddof=1) for v in base])
    assert nc["seed_std"] == pytest.approx(expected_std)


def test_noise_ceiling_averages_seed_pairs_and_skips_single_seed():
    base = np.arange(12, dtype=float)
    per_seed = {f"a{i}": [v, v, -v] for i, v in enumerate(base)}
    per_seed["single"] = [100.0]  # only one seed: ignored
    nc = noise_ceiling(per_seed, ks=(5,))
    # pairs (0,1): +1, (0,2): -1, (1,2): -1 -> mean -1/3
    assert nc["seed_pairs"] == 3
    assert nc["n"] == 12
    assert nc["kendall_tau"] == pytest.approx(-1 / 3)
    assert nc["top5_tau"] == pytest.approx(-1 / 3)


def test_noise_ceiling_bootstrap_interval_resamples_architectures():
    """Each bootstrap round is the ceiling of the drawn architectures (duplicates as ties), incomplete rows
    included: checked round by round against noise_ceiling itself on the drawn table."""
    rng = np.random.default_rng(3)
    true = rng.normal(size=20)
    per_seed = {f"a{i}": list(true[i] + 0.7 * rng.normal(size=3)) for i in range(20)}
    per_seed["a3"] = per_seed["a3"][:2]  # seed 2 missing: only in pair (0, 1)
    per_seed["a7"] = per_seed["a7"][:2]
    nc = noise_ceiling(per_seed, bootstrap=200, seed=5)
    assert nc["kendall_tau_lo"] < nc["kendall_tau"] < nc["kendall_tau_hi"]
    assert noise_ceiling(per_seed)["kendall_tau"] == nc["kendall_tau"]  # the point estimate is unchanged
    assert "kendall_tau_lo" not in noise_ceiling(per_seed)

    from distilnas.evaluate.metrics import _ceiling_bootstrap

    rows = [np.asarray(v) for v in per_seed.values()]
    rounds = _ceiling_bootstrap(rows, 3, 4, seed=9)
    draws = np.random.default_rng(9).integers(0, len(rows), size=(4, len(rows)))
    for r, draw in zip(rounds, draws):
        # ties between duplicates: give each copy the same values under its own name
        drawn = {f"d{j}": rows[i] for j, i in enumerate(draw)}
        assert r == pytest.approx(noise_ceiling(drawn)["kendall_tau"])

    same = {f"a{i}": [v, v] for i, v in enumerate(np.linspace(0, 1, 15))}
    nc = noise_ceiling(same, bootstrap=50)
    assert nc["kendall_tau_lo"] == pytest.approx(1.0) and nc["kendall_tau_hi"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="bootstrap"):
        noise_ceiling(same, bootstrap=-1)


def test_noise_ceiling_needs_two_archs():
    with pytest.raises(ValueError):
        noise_ceiling({"a": [0.1, 0.2], "b": [0.3]})


def test_length_mismatch_and_too_few_raise():
    with pytest.raises(ValueError, match="equal length"):
        rank_metrics([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        rank_metrics([1.0], [1.0])


def test_constant_pred_gives_nan_without_raising():
    truth = np.arange(20, dtype=float)
    m = rank_metrics(np.full(20, 0.3), truth, bootstrap=100)
    assert math.isnan(m["kendall_tau"])
    assert math.isnan(m["spearman"])
    assert math.isnan(m["pearson"])
    assert math.isnan(m["top10_tau"])
    assert m["cpr"] == pytest.approx(0.5)
    assert math.isnan(m["kendall_tau_lo"]) and math.isnan(m["kendall_tau_hi"])


def test_summarize_seeds():
    s = summarize_seeds([1.0, 2.0, 3.0])
    assert s["mean"] == pytest.approx(2.0)
    assert s["std"] == pytest.approx(1.0)
    assert (s["min"], s["max"], s["n"]) == (1.0, 3.0, 3)
    one = summarize_seeds([0.7])
    assert one["std"] == 0.0 and one["n"] == 1 and one["mean"] == pytest.approx(0.7)


def test_format_table():
    m1 = {"n": 64, "kendall_tau": 0.5123, "kendall_tau_lo": 0.401, "kendall_tau_hi": 0.6099,
          "spearman": 0.7, "cpr": float("nan")}
    m2 = {"n": 8, "kendall_tau": -0.25, "spearman": 0.1, "cpr": 0.75}
    text = format_table([("supernet", m1), ("proxy", m2)], keys=["n", "kendall_tau", "spearman", "cpr"])
    lines = text.splitlines()
    assert len(lines) == 4
    assert "kendall_tau" in lines[0] and "cpr" in lines[0]
    assert "0.512 [0.401, 0.610]" in lines[2]
    assert " 64 " in lines[2] and "nan" in lines[2]
    assert "-0.250" in lines[3] and "0.750" in lines[3] and "[" not in lines[3]
    # aligned: every line but the rule is right-justified to the same width
    assert len({len(line) for line in lines}) == 1
    default = format_table([("x", rank_metrics(np.arange(30.0), np.arange(30.0), bootstrap=0))])
    assert "precision@10" in default.splitlines()[0]
    assert "1.000" in default.splitlines()[2]


def test_vectorised_bootstrap_statistics_match_scipy_with_ties():
    from distilnas.evaluate.metrics import _batched_kendall_tau_b, _batched_spearman

    rng = np.random.default_rng(5)
    base_p = rng.normal(size=15)
    base_t = base_p + rng.normal(size=15)
    idx = rng.integers(0, 15, size=(20, 15))  # resamples repeat archs -> ties
    xs, ys = base_p[idx], base_t[idx]
    taus = _batched_kendall_tau_b(xs, ys)
    rhos = _batched_spearman(xs, ys)
    for b in range(20):
        assert taus[b] == pytest.approx(stats.kendalltau(xs[b], ys[b]).statistic)
        assert rhos[b] == pytest.approx(stats.spearmanr(xs[b], ys[b]).statistic)


# -- seeds x architectures bootstrap (benchmarks/run_suite.py) ------------------------------------------------
def _noisy(truth, scale, seeds, rng):
    return truth + rng.normal(scale=scale, size=(seeds, truth.shape[0]))


def test_seed_arch_bootstrap_means_and_per_seed_taus():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=40)
    preds = {"a": _noisy(truth, 1.0, 4, rng), "b": _noisy(truth, 1.0, 4, rng)}
    out = seed_arch_bootstrap(preds, truth, baseline="a", resamples=300)
    for k, a in preds.items():
        taus = [stats.kendalltau(row, truth).statistic for row in a]
        assert out[k]["tau"] == pytest.approx(taus) and out[k]["mean"] == pytest.approx(np.mean(taus))
        lo, hi = out[k]["ci95"]
        assert lo < out[k]["mean"] < hi
    d = out["b"]["diff_vs_a"]
    assert d["mean"] == pytest.approx(out["b"]["mean"] - out["a"]["mean"]) and "diff_vs_a" not in out["a"]


def test_seed_arch_bootstrap_verdicts():
    """A clearly better predictor is 'better', an equally noisy one 'no evidence', a worse one 'worse'."""
    rng = np.random.default_rng(1)
    truth = rng.normal(size=64)
    preds = {"base": _noisy(truth, 1.0, 8, rng), "good": _noisy(truth, 0.2, 8, rng),
             "same": _noisy(truth, 1.0, 8, rng), "bad": _noisy(truth, 5.0, 8, rng)}
    out = seed_arch_bootstrap(preds, truth, baseline="base", pairs=[("same", "good")], resamples=500)
    assert out["good"]["diff_vs_base"]["verdict"] == "better"
    assert out["same"]["diff_vs_base"]["verdict"] == "no evidence"
    assert out["bad"]["diff_vs_base"]["verdict"] == "worse"
    assert out["same"]["diff_vs_good"]["verdict"] == "worse"


def test_seed_arch_bootstrap_interval_widens_with_seed_noise():
    """Seeds that disagree (a per-seed offset in quality) widen the interval beyond the architectures' share."""
    rng = np.random.default_rng(2)
    truth = rng.normal(size=64)
    steady = np.stack([truth + rng.normal(scale=1.0, size=64) for _ in range(6)])
    scales = [0.2, 3.0, 0.2, 3.0, 0.2, 3.0]
    shaky = np.stack([truth + rng.normal(scale=s, size=64) for s in scales])
    out = seed_arch_bootstrap({"steady": steady, "shaky": shaky}, truth, resamples=500)
    width = {k: v["ci95"][1] - v["ci95"][0] for k, v in out.items()}
    assert width["shaky"] > width["steady"]


def test_seed_arch_bootstrap_rejects_unpaired_shapes():
    with pytest.raises(ValueError, match="same S"):
        seed_arch_bootstrap({"a": np.zeros((3, 5)), "b": np.zeros((2, 5))}, np.arange(5.0))
    assert verdict(0.01, 0.2) == "better" and verdict(-0.2, -0.01) == "worse" and verdict(-0.1, 0.1) == "no evidence"


def test_seed_arch_bootstrap_needs_seeds_for_a_verdict():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=40)
    preds = {"base": _noisy(truth, 3.0, 1, rng), "good": _noisy(truth, 0.1, 1, rng)}
    out = seed_arch_bootstrap(preds, truth, baseline="base", resamples=200)
    assert out["good"]["diff_vs_base"]["verdict"] == "too few seeds"  # one seed: no seed spread to judge by


def test_difference_power_splits_seed_architecture_and_interaction_noise():
    rng = np.random.default_rng(4)
    n, S = 60, 8
    truth = rng.normal(size=n)
    a = np.stack([truth + rng.normal(scale=s, size=n) for s in rng.uniform(0.3, 2.0, size=S)])
    ref = np.stack([truth + rng.normal(scale=s, size=n) for s in rng.uniform(0.3, 2.0, size=S)])
    out = difference_power(a, ref, truth)
    per_seed = [stats.kendalltau(a[s], truth)[0] - stats.kendalltau(ref[s], truth)[0] for s in range(S)]
    assert out["diff"] == pytest.approx(np.mean(per_seed))
    assert out["se"] == pytest.approx(math.sqrt(out["se_seed"] ** 2 + out["se_arch"] ** 2 + out["se_inter"] ** 2))
    assert out["se_inter"] == pytest.approx(out["sd_inter"] / math.sqrt(S * n))
    # the three terms add up to the spread of the per-seed differences (each counted once): the variance of
    # the seeds' mean over these architectures is (sd_seed^2 + sd_inter^2 / n) / S
    assert (out["sd_seed"] ** 2 + out["sd_inter"] ** 2 / n) == pytest.approx(np.var(per_seed, ddof=1), rel=0.35)
    # seeds that agree have no seed or interaction term; the architecture term is all that is left
    same = difference_power(np.tile(a[0], (S, 1)), np.tile(ref[0], (S, 1)), truth)
    assert same["sd_seed"] == 0 and same["sd_inter"] == pytest.approx(0, abs=1e-9) and same["se_arch"] > 0
    # a constant prediction (tau undefined) drops its seed; fewer than 3 seeds is an error
    flat = a.copy()
    flat[0] = 1.0
    assert difference_power(flat, ref, truth)["seeds"] == S - 1
    with pytest.raises(ValueError, match="at least 3 seeds"):
        difference_power(a[:2], ref[:2], truth)
    with pytest.raises(ValueError, match="n = 60"):
        difference_power(a[:, :10], ref[:, :10], truth)


def _simulated_difference(rng, S, n):
    """One replication of a paired comparison: fresh architectures (truth and a feature that method a
    mis-ranks) and fresh seeds of both methods, each seed with its own noise level."""
    truth, feature = rng.normal(size=n), rng.normal(size=n)
    a = np.stack([truth + 0.6 * feature + rng.normal(scale=rng.lognormal(0, 0.5), size=n) for _ in range(S)])
    ref = np.stack([truth + rng.normal(scale=rng.lognormal(0.2, 0.5), size=n) for _ in range(S)])
    return a, ref, truth


def test_difference_power_projects_to_a_larger_design():
    """The standard error projected from small designs (8 seeds x 40 architectures) matches the spread of the
    difference over independent replications of a larger one (24 x 120) within sampling error."""
    rng = np.random.default_rng(7)
    small = [difference_power(*_simulated_difference(rng, 8, 40)) for _ in range(30)]
    comp = {k: np.mean([r[k] ** 2 for r in small]) for k in ("sd_seed", "sd_arch", "sd_inter")}
    projected = math.sqrt(comp["sd_seed"] / 24 + comp["sd_arch"] / 120 + comp["sd_inter"] / (24 * 120))
    diffs = []
    for _ in range(150):
        a, ref, truth = _simulated_difference(rng, 24, 120)
        diffs.append(np.mean([stats.kendalltau(a[s], truth)[0] - stats.kendalltau(ref[s], truth)[0]
                              for s in range(24)]))
    assert projected == pytest.approx(np.std(diffs, ddof=1), rel=0.15)  # counting the interaction twice: +27%


def test_detectable_difference_is_the_normal_test_mde():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert detectable_difference(0.1, 0.2, 8, 64) == pytest.approx(z * math.sqrt(0.01 / 8 + 0.04 / 64))
    assert detectable_difference(0.1, 0.2, 8, 64, 0.4) == pytest.approx(
        z * math.sqrt(0.01 / 8 + 0.04 / 64 + 0.16 / (8 * 64)))
    assert detectable_difference(0.1, 0.2, 16, 64) < detectable_difference(0.1, 0.2, 8, 64)
    assert detectable_difference(0.1, 0.2, 8, 128) < detectable_difference(0.1, 0.2, 8, 64)
    assert detectable_difference(0.1, 0.2, 8, 64, power=0.9) > detectable_difference(0.1, 0.2, 8, 64)
    with pytest.raises(ValueError, match=">= 1"):
        detectable_difference(0.1, 0.2, 0, 64)


def test_bootstraps_of_large_tables_take_the_per_round_path(monkeypatch):
    """Above the block bound the O(n^2) pair signs are not built (a 15,625-cell NB201 table would need GBs
    per round): scipy per round instead, with the same numbers."""
    from distilnas.evaluate import metrics

    rng = np.random.default_rng(0)
    true = rng.normal(size=30)
    per_seed = {f"a{i}": list(true[i] + rng.normal(size=3)) for i in range(30)}
    per_seed["a4"] = per_seed["a4"][:2]
    pred = true + rng.normal(size=30)
    small = (noise_ceiling(per_seed, bootstrap=50, seed=1), rank_metrics(pred, true, bootstrap=50, seed=1))
    monkeypatch.setattr(metrics, "_BOOTSTRAP_BLOCK_ELEMS", 100)  # 30 architectures: 435 pairs > 100
    large = (noise_ceiling(per_seed, bootstrap=50, seed=1), rank_metrics(pred, true, bootstrap=50, seed=1))
    for a, b in zip(small, large):
        for key in ("kendall_tau_lo", "kendall_tau_hi"):
            assert b[key] == pytest.approx(a[key])
    rounds = metrics._batched_kendall_tau_b(np.tile(pred, (2, 1)), np.vstack([true, np.ones(30)]))
    assert rounds[0] == pytest.approx(rank_metrics(pred, true, bootstrap=0)["kendall_tau"]) and np.isnan(rounds[1])
