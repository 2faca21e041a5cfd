"""Expansion is counted against the run's own tilt: a reweighting, however strong, never reads as expansion,
and a real acquisition of support does."""

from pathlib import Path

import numpy as np
import pytest

from ood_bench.evaluation.expansion import MIN_FIT, Tilt, beyond_tilt, fit_tilt, tilted
from ood_bench.evaluation.support import load_counts, support_table

STANDARD = Path(__file__).resolve().parents[1] / "leaderboards" / "standard" / "records"


@pytest.fixture(scope="module")
def base():
    return load_counts(STANDARD / "base-e0-s0" / "eval")


@pytest.mark.parametrize("c", [0, 2, 4, 8, 9, 10, 12, 16, 20])
def test_a_pure_tilt_of_a_real_base_expands_nothing(base, c):
    post = base.assign(gold_logprob=tilted(base["gold_logprob"].to_numpy(float), c))
    table = support_table(base, post)
    assert table["expanded"].sum() == 0, c
    if c >= 12:  # the old fixed-threshold count fired on this pure reweighting
        assert table["expanded_threshold"].sum() >= 20


def test_a_real_acquisition_of_support_is_found():
    """The exposure-10% base against the exposure-0 base of the same seed: pretraining on ood_depth gave
    the first what the second never had."""
    table = support_table(load_counts(STANDARD / "base-e0-s0" / "eval"), load_counts(STANDARD / "base-e10-s0" / "eval"))
    depth = table[table["split"] == "ood_depth"]
    assert depth["outside"].sum() == 200
    assert depth["expanded"].sum() >= 150


def test_a_tilt_needs_problems_to_fit_and_then_counts_nothing():
    lq_base = np.log([1e-9, 0.5])
    tilt = fit_tilt(lq_base, np.log([0.5, 0.6]))
    assert tilt.problems < MIN_FIT and not tilt.fitted
    table = support_table(*(load_counts_frame(q) for q in ([1e-9, 0.5], [0.5, 0.6])))
    assert np.isnan(table["expanded"].iloc[0])  # undefined, never a reassuring 0
    assert table["expanded_threshold"].iloc[0] == 1


def test_a_rise_beyond_every_inside_shift_is_flagged():
    rng = np.random.default_rng(0)
    lq_base = np.log(np.r_[rng.uniform(0.05, 0.9, 50), 1e-12])
    lq_post = tilted(lq_base, 1.0 + np.r_[rng.normal(0, 0.2, 50), 0.0])
    lq_post[-1] = np.log(0.3)  # the outside problem rose ~27 nats; the inside ones about 1
    tilt = fit_tilt(lq_base, lq_post, tested=1)
    assert isinstance(tilt, Tilt) and 0.5 < tilt.mean < 1.5 and tilt.bound < 5
    assert beyond_tilt(lq_base, lq_post, tilt).tolist() == [False] * 50 + [True]


def load_counts_frame(q):
    import pandas as pd

    return pd.DataFrame(
        {
            "family": "string",
            "version": 1,
            "split": "ood_depth",
            "uid": [f"u{i}" for i in range(len(q))],
            "n": 4,
            "c": 0,
            "trace_c": 0,
            "full_c": 0,
            "gold_logprob": np.log(q),
        }
    )
