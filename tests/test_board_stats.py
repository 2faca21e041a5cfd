"""The board's intervals are calibrated: simulated boards with a known truth, nulls, the sampling floor,
q-values, and verdicts that follow a planted effect."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from ood_bench.board import board_stats, suite_board
from ood_bench.evaluation.support import Thresholds


def _counts(p: np.ndarray, uniforms: np.ndarray, lq: np.ndarray) -> pd.DataFrame:
    c = (uniforms < p[:, None]).sum(axis=1)
    return pd.DataFrame(
        {
            "family": "string",
            "version": 1,
            "split": "id",
            "uid": [f"u{i:03d}" for i in range(len(p))],
            "n": uniforms.shape[1],
            "c": c,
            "trace_c": c,
            "full_c": c,
            "gold_logprob": lq,
        }
    )


def simulated_cell(rng, truth_effect: float, seeds: int = 3, problems: int = 100, n: int = 8) -> dict:
    """One board cell from the real code path (``_paired`` then ``_cell``): problems shared by the seeds, a
    base per seed, a post-trained model whose logit effect varies by seed and problem, both sampled with the
    same random numbers per sample (as the suite samples a model and its base)."""
    logit_base = rng.normal(-0.5, 2.5, problems)
    problem_effect = rng.normal(0, 0.3, problems)
    pairs = []
    for s in range(seeds):
        base_shift, effect = rng.normal(0, 0.5), rng.normal(truth_effect, 0.3)
        pb = expit(logit_base + base_shift)
        pp = expit(logit_base + base_shift + effect + problem_effect + rng.normal(0, 0.3, problems))
        u = rng.random((problems, n))
        base, post = _counts(pb, u, np.log(pb)), _counts(pp, u, np.log(pp))
        pairs.append((f"s{s}", suite_board._paired(base, post, "id"), None))
    return suite_board._cell(pairs, Thresholds())


def true_change(effect: float) -> float:
    """E[p_post - p_base] over the simulation's populations of seeds and problems (Monte Carlo, 2M draws)."""
    r = np.random.default_rng(123)
    m = 2_000_000
    base = r.normal(-0.5, 2.5, m) + r.normal(0, 0.5, m)
    post = base + r.normal(effect, 0.3, m) + r.normal(0, 0.3, m) + r.normal(0, 0.3, m)
    return float((expit(post) - expit(base)).mean())


def test_95_percent_intervals_cover_the_truth_on_at_least_93_percent_of_500_simulated_boards():
    rng = np.random.default_rng(2026)
    truth = true_change(0.3)
    covered = [c["d_trace_lo"] <= truth <= c["d_trace_hi"] for c in (simulated_cell(rng, 0.3) for _ in range(500))]
    assert np.mean(covered) >= 0.93, np.mean(covered)


def test_on_nulls_the_intervals_exclude_0_at_most_5_percent_plus_monte_carlo_error():
    rng = np.random.default_rng(7)
    cells = [simulated_cell(rng, 0.0) for _ in range(300)]
    truth = true_change(0.0)  # 0 up to the population's own asymmetry
    false_positive = np.mean([not (c["d_trace_lo"] <= truth <= c["d_trace_hi"]) for c in cells])
    assert false_positive <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)


def test_an_interval_is_never_narrower_than_the_sampling_noise_alone():
    rng = np.random.default_rng(1)
    for _ in range(50):
        c_base = rng.binomial(8, 0.4, (3, 60))
        c_post = c_base.copy()  # seeds and problems that agree perfectly: only the floor is left
        c_post[:, :5] += 1
        est = board_stats.rate_change(c_base, c_post, np.full(c_base.shape, 8))
        pb, pp = c_base / 8, c_post / 8
        sampling_se = np.sqrt(((pb * (1 - pb) + pp * (1 - pp)) / 7).sum()) / c_base.size
        assert est.hi - est.mean >= 1.96 * sampling_se - 1e-12
        assert est.method == board_stats.FLOORED


def test_one_seed_says_sampling_only_and_many_seeds_say_what_they_cover():
    rng = np.random.default_rng(3)
    one = simulated_cell(rng, 0.2, seeds=1)
    three = simulated_cell(rng, 0.2, seeds=3)
    assert one["interval"] == board_stats.SAMPLING_ONLY
    assert three["interval"] in (board_stats.CROSSED, board_stats.FLOORED)
    assert np.isfinite(three["d_trace_mde"]) and three["d_trace_mde"] > 0


def test_a_cell_with_no_variation_prints_no_interval_and_no_p_value():
    est = board_stats.rate_change(np.zeros((3, 40)), np.zeros((3, 40)), np.full((3, 40), 8))
    assert np.isnan(est.lo) and np.isnan(est.p) and est.mean == 0
    assert np.isnan(board_stats.mean_change(np.ones((1, 1))).lo)  # one problem


def test_q_values_are_benjamini_hochberg_and_leave_missing_tests_out():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
    q = board_stats.q_values(p)
    assert np.isnan(q[2])
    assert q[[0, 1, 3, 4]] == pytest.approx(stats.false_discovery_control([0.01, 0.04, 0.03, 0.5]))
    assert q[0] == pytest.approx(0.04) and q[4] == pytest.approx(0.5)


def test_the_minimum_detectable_effect_is_the_change_detected_with_80_percent_power():
    d = np.random.default_rng(0).normal(0, 1, (3, 200))
    est = board_stats.mean_change(d)
    assert est.mde == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * est.se)
