"""A run that did not train is said to have not trained: by the reward trend, on the board, in the verdicts."""

import json

import numpy as np
import pandas as pd

from ood_bench.board import suite_board
from ood_bench.evaluation.did_train import objective_trend, reward_trend, run_trend

from .test_suite import golden_records


def curve(rewards):
    return pd.DataFrame({"step": np.arange(len(rewards)), "reward": rewards})


def test_a_rising_reward_trained_a_flat_one_did_not_and_no_curve_cannot_tell():
    rng = np.random.default_rng(0)
    assert reward_trend(curve(0.3 + 0.01 * np.arange(20) + rng.normal(0, 0.02, 20)))["trained"] is True
    assert reward_trend(curve(0.3 + rng.normal(0, 0.02, 20)))["trained"] is False
    assert reward_trend(curve([0.5] * 20))["trained"] is False  # lr 1e-12: nothing moves
    assert reward_trend(pd.DataFrame({"step": range(20)}))["trained"] is None  # SFT logs no reward
    assert reward_trend(curve([0.1, 0.9]))["trained"] is None  # too few steps to tell


def test_the_change_has_an_interval_and_sft_is_judged_by_a_falling_nll(tmp_path):
    rng = np.random.default_rng(1)
    rising = reward_trend(curve(0.3 + 0.01 * np.arange(40) + rng.normal(0, 0.02, 40)))
    assert 0.3 < rising["change"] < 0.45 and 0 < rising["change_low"] < rising["change"] < rising["change_high"]
    flat = reward_trend(curve(0.3 + rng.normal(0, 0.02, 40)))
    assert flat["change_low"] < 0 < flat["change_high"]
    nll = pd.DataFrame({"step": np.arange(30), "objective": 2.0 - 0.03 * np.arange(30) + rng.normal(0, 0.01, 30)})
    assert objective_trend(nll, "objective", "min")["trained"] is True
    assert objective_trend(nll, "objective", "max")["trained"] is False  # a falling reward is no training
    # a run folder names its objective in record.json; without it, the reward is read
    nll.to_csv(tmp_path / "curves.csv", index=False)
    assert run_trend(tmp_path)["trained"] is None
    (tmp_path / "record.json").write_text(json.dumps({"objective": {"name": "loss", "direction": "min"}}))
    trend = run_trend(tmp_path)
    assert trend["trained"] is True and trend["change"] < 0 and trend["change_high"] < 0


def test_cells_of_runs_that_did_not_train_read_so_and_their_verdict_is_inconclusive(tmp_path):
    golden_records(tmp_path, {"grpo": 12.0})  # GRPO "expands" on ood_depth, yet there its reward never moved
    for folder in (tmp_path / "records").glob("grpo-ood_depth-*"):
        curve([0.4] * 10).assign(kl_ref=0.0).to_csv(folder / "curves.csv", index=False)
    texts, _ = suite_board.render(tmp_path)
    readme = texts["README.md"]
    grpo_lines = [ln for ln in readme.splitlines() if ln.startswith("| grpo | ood_depth")]
    assert grpo_lines and all("did not train (0 of 3 runs)" in ln for ln in grpo_lines[-2:])
    found = {v["claim"]: v for v in json.loads(texts["leaderboard.json"])["verdicts"]}
    exposure = found["OOD gains come only where pretraining exposure is non-zero"]
    assert exposure["verdict"] == "inconclusive" and "trained in 0 of 6" in exposure["numbers"]
    tilts = json.loads(texts["leaderboard.json"])["tilts"]
    assert {t["trained"] for t in tilts if t["run"].startswith("grpo-ood_depth")} == {False}

    # where GRPO trained nowhere (lr 1e-12), the positive control fails and the board publishes no verdict
    for folder in (tmp_path / "records").glob("grpo-id-*"):
        curve([0.4] * 10).assign(kl_ref=0.0).to_csv(folder / "curves.csv", index=False)
    texts, _ = suite_board.render(tmp_path)
    assert json.loads(texts["leaderboard.json"])["verdicts"] == []
    assert "**No verdicts on the `golden` board:** the RL positive control failed" in texts["README.md"]
