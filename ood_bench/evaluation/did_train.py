"""Did a post-training run train? A run that did not cannot expand or gain, so a board must say so.

A run logs its own objective per gradient step in ``curves.csv``: the mean training reward for RL, the
gold traces' negative log-likelihood for SFT (the algorithm's ``objective``, named with its direction in
the run's ``record.json``; records made before that carry only ``reward``). The run counts as
**trained** when that objective moved the right way over the run: the least-squares slope on step points
that way, one-sided p < ``ALPHA`` (``scipy.stats.linregress``). Beside the verdict stands the size of the
move: the mean over the last tenth of the steps minus the mean over the first tenth (at least
``MIN_TENTH`` steps each), with a 95% Welch interval over those steps. A run with no objective on its curve,
or fewer than ``MIN_STEPS`` steps, cannot be checked: ``trained`` is None, and boards say it was taken as
trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
MIN_STEPS = 4
MIN_TENTH = 3  # steps in each end's mean, however short the run


def _unknown(column: str, direction: str) -> dict:
    nan = float("nan")
    return {
        "trained": None,
        "objective": column,
        "direction": direction,
        "slope": nan,
        "p": nan,
        "change": nan,
        "change_low": nan,
        "change_high": nan,
        # the names boards and verdicts read since before the objective was general
        "reward_slope": nan,
        "reward_p": nan,
    }


def objective_trend(curve: pd.DataFrame, column: str = "reward", direction: str = "max") -> dict:
    """``trained`` (True, False or None); the objective's slope per step and its one-sided p-value; and
    ``change`` (last tenth's mean minus first tenth's, in the objective's own units: a fall for "min")
    with its 95% interval ``change_low``, ``change_high``."""
    out = _unknown(column, direction)
    if column not in curve.columns or "step" not in curve.columns:
        return out
    curve = curve[["step", column]].dropna()
    if len(curve) < MIN_STEPS or curve["step"].nunique() < 2:
        return out
    x, y = curve["step"].to_numpy(float), curve[column].to_numpy(float)
    fit = stats.linregress(x, y)
    toward = fit.slope if direction == "max" else -fit.slope
    p = fit.pvalue / 2 if toward > 0 else 1 - fit.pvalue / 2
    if p != p:  # a flat curve (every step the same): no move
        p = 1.0
    tenth = max(MIN_TENTH, len(y) // 10)
    first, last = y[:tenth], y[-tenth:]
    change = float(last.mean() - first.mean())
    if np.ptp(np.concatenate([first, last])) == 0:
        low = high = change
    else:
        ci = stats.ttest_ind(last, first, equal_var=False).confidence_interval(0.95)
        low, high = float(ci.low), float(ci.high)
    out.update(trained=bool(p < ALPHA), slope=float(fit.slope), p=float(p), change=change)
    out.update(change_low=low, change_high=high, reward_slope=float(fit.slope), reward_p=float(p))
    return out


def reward_trend(curve: pd.DataFrame) -> dict:
    """The trend of an RL run's mean training reward (``objective_trend`` on ``reward``)."""
    return objective_trend(curve, "reward", "max")


def run_trend(folder: Path) -> dict:
    """The objective trend of a run record folder: its ``curves.csv``, read by the objective its
    ``record.json`` names (the training reward for records that name none)."""
    folder = Path(folder)
    column, direction = "reward", "max"
    record = folder / "record.json"
    if record.is_file():
        objective = json.loads(record.read_text()).get("objective") or {}
        if objective.get("name"):
            column, direction = "objective", objective.get("direction", "max")
    path = folder / "curves.csv"
    if not path.is_file() or not path.stat().st_size:
        return objective_trend(pd.DataFrame(), column, direction)
    return objective_trend(pd.read_csv(path), column, direction)
