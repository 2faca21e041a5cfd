"""Support on exact trace mass, against hand computations and calibrated on real quick-base records.

Calibration (each test can fail):
- null: the quick base against a second evaluation of itself (another sampling
  seed) shows no expansion and no problem that significantly moved;
- pure reweighting: a synthetic post-trained record whose every log-odds is the
  base's plus a constant c (|c| up to 4 nats) shows no expansion, a flat slope,
  and gives back c;
- a real reweighting with a curved pattern (GRPO on ID) is told apart from a
  constant tilt by the binned shift, where the linear slope alone misses it.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ood_bench.cli import main
from ood_bench.errors import OodBenchError
from ood_bench.evaluation.support import (
    Thresholds,
    compare_evals,
    load_counts,
    logit_from_logprob,
    sampled_null,
    support_table,
    tilt_bins,
    wilson_interval,
)

from .conftest import write_eval_folder

RECORDS = Path(__file__).resolve().parent.parent / "leaderboards" / "records"
QUICK = RECORDS / "quick"


def frame(cs, n=4, gold=None, trace=None, split="id"):
    gold = [-1.0] * len(cs) if gold is None else gold
    return pd.DataFrame(
        {
            "family": "string",
            "version": 1,
            "split": split,
            "uid": [f"u{i}" for i in range(len(cs))],
            "n": n,
            "c": cs,
            "trace_c": cs if trace is None else trace,
            "gold_logprob": gold,
        }
    )


def logprob_of(q):
    return [math.log(v) for v in q]


def test_support_classes_and_expansion_by_hand():
    #   Q_base:  outside outside outside fringe  inside inside
    q_base = [1e-9, 1e-8, 1e-7, 1e-3, 0.3, 0.9]
    q_post = [0.2, 1e-3, 0.05, 0.5, 0.6, 0.9]  # past the thresholds: problems 0 and 2 (>= 1e-2); 1 reached 1e-3
    row = support_table(frame([0] * 6, gold=logprob_of(q_base)), frame([0] * 6, gold=logprob_of(q_post))).iloc[0]
    assert (row.outside, row.fringe, row.inside, row.expanded_threshold) == (3, 1, 2, 2)
    # but three inside shifts of 6.9, 0.9 and 0 nats leave a tilt wide enough for rises of 13 and 19 nats
    assert row.expanded == 0 and row.tilt_bound > 19.3
    assert row.expansion == 0 and (row.expansion_lo, row.expansion_hi) == pytest.approx(wilson_interval(0, 3))
    assert row.mass_base == pytest.approx(np.mean(q_base)) and row.mass_post == pytest.approx(np.mean(q_post))
    # thresholds are knobs: with outside at 5e-9 only problem 0 is outside
    row = support_table(
        frame([0] * 6, gold=logprob_of(q_base)), frame([0] * 6, gold=logprob_of(q_post)), Thresholds(outside=5e-9)
    ).iloc[0]
    assert (row.outside, row.expanded_threshold, row.expanded) == (1, 1, 0)


def test_tilt_statistics_by_hand():
    q_base = np.array([0.05, 0.2, 0.5, 0.7, 0.9])
    lb = np.log(q_base) - np.log1p(-q_base)
    for shift in ([1.0] * 5, [0.0] * 5, [-2.0, -1.0, 0.0, 1.0, 2.0]):
        q_post = 1 / (1 + np.exp(-(lb + np.array(shift))))
        row = support_table(frame([0] * 5, gold=list(np.log(q_base))), frame([0] * 5, gold=list(np.log(q_post)))).iloc[
            0
        ]
        assert row.shift_mean == pytest.approx(np.mean(shift), abs=1e-9)
        assert row.shift_sd == pytest.approx(np.std(shift, ddof=1), abs=1e-9)
        x = lb - lb.mean()
        slope = (x * (np.array(shift) - np.mean(shift))).sum() / (x**2).sum()
        assert row.shift_slope == pytest.approx(slope, abs=1e-9)
    # no change and a constant tilt both have zero slope and zero spread: the old R² told them apart wrongly
    assert row.shift_slope > 0.5  # the last one is a tilt that grows with Q_base
    beta_row = support_table(
        frame([0] * 5, gold=list(np.log(q_base))), frame([0] * 5, gold=list(np.log(q_base))), beta=0.25
    ).iloc[0]
    assert beta_row.shift_predicted == pytest.approx(4.0) and beta_row.shift_mean == 0


def test_sampled_sets_and_their_exact_null_by_hand():
    q = [0.5, 0.5, 1e-9, 0.9]
    base = frame([2, 0, 0, 2], n=2, gold=logprob_of(q), trace=[1, 0, 0, 2])
    post = frame([2, 2, 0, 0], n=2, gold=logprob_of(q), trace=[1, 1, 0, 0])
    row = support_table(base, post).iloc[0]
    assert (row.P, row.E, row.S) == (1, 1, 1)
    # re-sampling the base at n = 2 misses a problem with probability (1 - Q)^2
    miss = [(1 - v) ** 2 for v in q]
    assert row.P_null == pytest.approx((1 - miss[0]) + (1 - miss[3]))
    assert row.E_null == pytest.approx((1 - miss[1]) + (1 - miss[2]))
    assert row.S_null == pytest.approx(miss[0] + miss[3])
    assert sampled_null(np.array([0]), np.array([0.0]), np.array([8]))["E_null"] == 0


def test_a_null_that_can_only_gain_gives_no_ratio_instead_of_one_by_construction():
    """A base that solves nothing (Q_base ~ 1e-12) and a post that solves two problems: the observed NSCR is
    1 (two gained, none kept or lost), and the null expects about 1e-11 problems gained. Its ratios
    E_null / (P_null + E_null + S_null) would be 1.0 by construction, reading as "re-sampling alone
    expands as much": the null has no ratio there, only its counts."""
    q = [1e-12] * 4
    base = frame([0, 0, 0, 0], n=8, gold=logprob_of(q))
    post = frame([3, 1, 0, 0], n=8, gold=logprob_of([0.4, 0.1, 1e-12, 1e-12]))
    row = support_table(base, post).iloc[0]
    assert (row.P, row.E, row.S, row.NSCR) == (0, 2, 0, 1.0)
    assert 0 < row.E_null < 1e-9
    assert math.isnan(row.NSCR_null) and math.isnan(row.NDR_null) and math.isnan(row.SRR_null)
    # a base that solved one problem, at Q = 0.2: the null keeps it with probability 1 - 0.8^8 and gains
    # almost nothing, so its NDR is ~0 (re-sampling does not expand), a number and not NaN
    one = frame([2, 0, 0, 0], n=8, gold=logprob_of([0.2, 1e-12, 1e-12, 1e-12]))
    row = support_table(one, post).iloc[0]
    assert row.P_null == pytest.approx(1 - 0.8**8) and row.NDR_null == pytest.approx(0.0, abs=1e-9)
    assert row.SRR_null == pytest.approx(1 - 0.8**8) and not math.isnan(row.NSCR_null)


def test_answer_level_moves_need_a_significant_exact_test():
    n = 64
    base = frame([0] * 40 + [32] * 10, n=n)
    post = frame([0] * 40 + [32] * 9 + [64], n=n)  # one problem from 32/64 to 64/64
    row = support_table(base, post).iloc[0]
    assert (row.moved_up, row.moved_down) == (1, 0)
    post = frame([0] * 40 + [32] * 9 + [36], n=n)  # a change well inside sampling noise
    assert support_table(base, post).iloc[0].moved_up == 0


def test_wilson_interval_is_sane_at_the_edges():
    lo, hi = wilson_interval(0, 100)
    assert lo == 0.0 and 0 < hi < 0.05
    assert wilson_interval(0, 200)[0] == 0.0 and wilson_interval(200, 200)[1] == 1.0
    lo, hi = wilson_interval(100, 100)
    assert hi == pytest.approx(1) and 0.95 < lo < 1
    lo, hi = wilson_interval(30, 100)
    assert lo < 0.3 < hi and hi - lo == pytest.approx(0.18, abs=0.01)
    assert math.isnan(wilson_interval(0, 0)[0])


def test_logit_from_logprob_is_stable_at_both_ends():
    assert logit_from_logprob(np.array([math.log(0.5)]))[0] == pytest.approx(0.0, abs=1e-12)
    assert logit_from_logprob(np.array([-200.0]))[0] == -30.0  # clipped, finite
    assert logit_from_logprob(np.array([-1e-9]))[0] == pytest.approx(-math.log(1e-9), rel=1e-6)
    assert logit_from_logprob(np.array([0.0]))[0] == 30.0


def test_mismatched_budgets_disjoint_problems_and_bad_thresholds_are_clear_errors():
    with pytest.raises(OodBenchError, match="same budget n"):
        support_table(frame([1, 2], n=4), frame([1, 2], n=8))
    with pytest.raises(OodBenchError, match="share no test problem"):
        support_table(frame([1], split="id"), frame([1], split="edge"))
    with pytest.raises(OodBenchError, match="outside=0.1 is above inside"):
        support_table(frame([1]), frame([1]), Thresholds(outside=0.1, inside=0.01))


# --- calibration on the real quick base's records -------------------------------------------------

MEASURE = RECORDS / "measure"  # the quick base (string v2, graph v4) and runs from it, committed records
BASE = MEASURE / "base-eval"  # every split, 100 problems x 16 samples, sampling seed 0
RESAMPLE = MEASURE / "base-eval-seed1"  # the same evaluation with sampling seed 1


def _shifted(base: pd.DataFrame, c: float) -> pd.DataFrame:
    """A synthetic post-trained record: every problem's exact log-odds moved by c (pure reweighting)."""
    lb = logit_from_logprob(base["gold_logprob"].to_numpy(float))
    post = base.copy()
    post["gold_logprob"] = -np.logaddexp(0.0, -(lb + c))  # log sigmoid
    rng = np.random.default_rng(0)
    post["trace_c"] = rng.binomial(post["n"], np.exp(post["gold_logprob"]))
    post["c"] = np.maximum(post["c"], post["trace_c"])
    return post


@pytest.mark.parametrize("c", [-4.0, -2.0, 2.0, 4.0])
def test_pure_reweighting_of_the_real_base_is_not_expansion_and_gives_back_its_shift(c):
    base = load_counts(BASE)
    table = support_table(base, _shifted(base, c))
    assert table["outside"].sum() > 100  # the OOD splits put many problems outside the support
    assert (table["expanded"] == 0).all()
    measured = table[table["tilt_problems"] >= 10]
    assert len(measured) >= 4
    # problems at |log-odds| 30 (clipped) or Q_base > 0.999 (float32 noise) are left out: the shift is exact
    assert np.allclose(measured["shift_mean"], c, atol=1e-3)
    assert np.allclose(measured["shift_slope"], 0, atol=1e-3)
    assert np.allclose(measured["shift_sd"], 0, atol=1e-3)


def test_the_real_base_against_a_resample_of_itself_shows_nothing():
    table = compare_evals(BASE, RESAMPLE)
    assert (table["expanded"] == 0).all() and (table["shift_mean"].fillna(0) == 0).all()
    assert (table["moved_up"] + table["moved_down"]).sum() == 0
    # the observed gains and losses of a resample agree with their exact null
    total_e, total_null = table["E"].sum(), table["E_null"].sum()
    assert abs(total_e - total_null) < 3 * math.sqrt(total_null) + 2
    total_s, s_null = table["S"].sum(), table["S_null"].sum()
    assert abs(total_s - s_null) < 3 * math.sqrt(s_null) + 2


def test_positive_control_sft_on_ood_depth_gold_traces_is_expansion():
    """SFT on ood_depth's gold training traces from the quick base: the metric must see expansion there."""
    table = compare_evals(MEASURE / "base-n64", MEASURE / "sft-ood_depth-n64").set_index(["family", "split"])
    for family in ("string", "graph"):
        row = table.loc[(family, "ood_depth")]
        assert row.outside >= 150 and row.expanded > 0 and row.expansion_lo > 0, family
    # and GRPO on the same prompts, with no correct sample to learn from, expands nothing
    grpo = compare_evals(MEASURE / "base-n64", MEASURE / "grpo-ood_depth-n64").set_index(["family", "split"])
    assert grpo.xs("ood_depth", level="split")["expanded"].sum() == 0


def test_binned_shift_sees_the_curved_pattern_a_linear_slope_misses():
    """GRPO on graph ID (committed v3 records): slope about 0, yet binned shifts from about -2 to +1."""
    base, post = QUICK / "base-id500", QUICK / "grpo-id-s0-id500"
    row = compare_evals(base, post).set_index("family").loc["graph"]
    assert abs(row.shift_slope) < 3 * row.shift_slope_se + 0.05
    bins = tilt_bins(load_counts(base), load_counts(post))
    graph = bins[(bins.family == "graph") & (bins.problems >= 20)]
    assert graph["shift_mean"].max() - graph["shift_mean"].min() > 2.0


def test_compare_command_writes_support_json_and_plot(tmp_path, capsys):
    for name, cs, gold, seed in (
        ("base", [0, 2, 3, 1, 2], [-30.0, -1.0, -0.5, -2.0, -0.7], 0),
        ("post", [1, 0, 3, 1, 2], [-1.0, -1.1, -0.4, -2.1, -0.6], 0),
        ("base-seed1", [0, 2, 2, 1, 2], [-30.0, -1.0, -0.5, -2.0, -0.7], 1),
    ):
        write_eval_folder(tmp_path / name, {"string__id": frame(cs, gold=gold).to_dict(orient="records")}, seed=seed)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert (
        main(["compare", str(tmp_path / "base"), str(tmp_path / "post"), "--null", str(tmp_path / "base-seed1")]) == 0
    )
    out = capsys.readouterr().out
    assert "E_null" in out and "expanded" in out and "observed null" in out
    # a comparison only reads: both evaluation folders are byte for byte what they were, nothing added
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before

    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "post"), "--out", str(tmp_path / "cmp")]) == 0
    capsys.readouterr()

    def strict(token):
        raise ValueError(f"{token} is not JSON")

    saved = json.loads((tmp_path / "cmp" / "support.json").read_text(), parse_constant=strict)
    rec = saved["results"][0]
    # the outside problem rose 29 nats where the four inside ones moved by at most 0.2: beyond the tilt
    assert (rec["outside"], rec["expanded"], rec["expanded_threshold"]) == (1, 1, 1)
    assert saved["thresholds"]["outside"] == 1e-6
    assert (tmp_path / "cmp" / "support.png").stat().st_size > 10_000
    assert {p: p.read_bytes() for p in (tmp_path / "post").rglob("*") if p.is_file()} == {
        p: b for p, b in before.items() if (tmp_path / "post") in p.parents
    }
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "nowhere")]) == 2
    assert "holds no eval.json" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "post"), "--outside", "2"]) == 2
    assert "outside=2.0" in capsys.readouterr().err
