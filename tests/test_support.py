"""Support sets (P/E/S), their ratios, the expansion interval and the tilt fit, against hand computations."""

import json
import math

import pandas as pd
import pytest

from ood_bench.cli import main
from ood_bench.errors import OodBenchError
from ood_bench.support import load_counts, support_table, wilson_interval


def frame(cs, n=4, gold=None, split="id"):
    gold = gold or [-1.0] * len(cs)
    return pd.DataFrame({"family": "string", "version": 1, "split": split, "uid": [f"u{i}" for i in range(len(cs))],
                         "n": n, "c": cs, "gold_logprob": gold})


def test_kept_gained_lost_and_ratios_by_hand():
    #            kept  kept  gained gained lost  never
    base = frame([1,    4,    0,     0,     2,    0], gold=[-1, -1, -30, -2, -1, -40])
    post = frame([3,    4,    1,     2,     0,    0])
    row = support_table(base, post).iloc[0]
    assert (row.P, row.E, row.S) == (2, 2, 1)
    assert row.SRR == pytest.approx(2 / 3)
    assert row.NDR == pytest.approx(2 / 4)
    assert row.NSCR == pytest.approx((2 - 1) / 5)
    assert row.expansion == pytest.approx(2 / 6)
    assert row.expansion_lo < 2 / 6 < row.expansion_hi
    # gold mass below 1e-6 (log < -13.8): problems 2 and 5; one of them was gained
    assert row.tiny_problems == 2 and row.expansion_tiny == pytest.approx(0.5)
    assert row["pass@1_base"] == pytest.approx((1 + 4 + 0 + 0 + 2 + 0) / 24)
    assert row["pass@1_post"] == pytest.approx((3 + 4 + 1 + 2 + 0 + 0) / 24)
    diffs = [2 / 4, 0, 1 / 4, 2 / 4, -2 / 4, 0]
    mean = sum(diffs) / 6
    assert row.delta == pytest.approx(mean)
    assert row.delta_stderr == pytest.approx(math.sqrt(sum((d - mean) ** 2 for d in diffs) / 5 / 6))


def test_pure_reweighting_is_a_constant_logit_shift():
    """Q* from the exponential tilt: the constant-shift model fits perfectly (R² = 1)."""
    n = 10**6
    qs = [0.05, 0.2, 0.5, 0.7, 0.9]
    beta = 0.5
    tilt = [q * math.exp(1 / beta) / (1 - q + q * math.exp(1 / beta)) for q in qs]
    base = frame([round(q * n) for q in qs], n=n)
    post = frame([round(q * n) for q in tilt], n=n)
    row = support_table(base, post).iloc[0]
    assert row.tilt_shift == pytest.approx(1 / beta, abs=1e-3)
    assert row.tilt_r2 == pytest.approx(1.0, abs=1e-6)
    noisy = frame([round(q * n) for q in reversed(tilt)], n=n)  # not a tilt of the base at all
    assert support_table(base, noisy).iloc[0].tilt_r2 < 0.5


def test_wilson_interval_is_sane_at_the_edges():
    lo, hi = wilson_interval(0, 100)
    assert lo == pytest.approx(0, abs=1e-12) and 0 < hi < 0.05
    lo, hi = wilson_interval(100, 100)
    assert hi == pytest.approx(1) and 0.95 < lo < 1
    lo, hi = wilson_interval(30, 100)
    assert lo < 0.3 < hi and hi - lo == pytest.approx(0.18, abs=0.01)


def test_mismatched_budgets_and_disjoint_problems_are_clear_errors():
    with pytest.raises(OodBenchError, match="same budget n"):
        support_table(frame([1, 2], n=4), frame([1, 2], n=8))
    with pytest.raises(OodBenchError, match="share no test problem"):
        support_table(frame([1], split="id"), frame([1], split="edge"))


def test_compare_command_reads_eval_folders_and_writes_support_json(tmp_path, capsys):
    for name, cs in (("base", [0, 2, 3]), ("post", [1, 0, 3])):
        d = tmp_path / name / "samples"
        d.mkdir(parents=True)
        recs = frame(cs).to_dict(orient="records")
        (d / "string__id.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "post")]) == 0
    out = capsys.readouterr().out
    assert "NSCR" in out
    def strict(token):
        raise ValueError(f"{token} is not JSON")

    # strict JSON: the undefined tiny-mass expansion (no tiny problems here) is null, not NaN
    rec = json.loads((tmp_path / "post" / "support.json").read_text(), parse_constant=strict)["results"][0]
    assert (rec["P"], rec["E"], rec["S"]) == (1, 1, 1)
    assert rec["expansion_tiny"] is None
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "nowhere")]) == 2
    assert "no per-problem counts" in capsys.readouterr().err
    assert load_counts(tmp_path / "base").shape[0] == 3
