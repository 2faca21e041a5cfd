"""Did a post-training run train? A run that did not cannot expand or gain, so a board must say so.

An RL run logs its mean training reward per gradient step (``curves.csv``). It counts as **trained** when
that reward rose over the run: the least-squares slope of reward on step is positive, one-sided
p < ``ALPHA`` (``scipy.stats.linregress``). A run whose curve has no reward (SFT logs none) or fewer than
``MIN_STEPS`` steps cannot be checked: ``trained`` is None, and boards say it was taken as trained.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy import stats

ALPHA = 0.05
MIN_STEPS = 4


def reward_trend(curve: pd.DataFrame) -> dict:
    """``trained`` (True, False or None), the reward's slope per step and its one-sided p-value."""
    out = {"trained": None, "reward_slope": float("nan"), "reward_p": float("nan")}
    if "reward" not in curve.columns or "step" not in curve.columns:
        return out
    curve = curve[["step", "reward"]].dropna()
    if len(curve) < MIN_STEPS or curve["step"].nunique() < 2:
        return out
    fit = stats.linregress(curve["step"].to_numpy(float), curve["reward"].to_numpy(float))
    p = fit.pvalue / 2 if fit.slope > 0 else 1 - fit.pvalue / 2
    if p != p:  # a flat curve (every step's reward the same): no rise
        p = 1.0
    return {"trained": bool(p < ALPHA), "reward_slope": float(fit.slope), "reward_p": float(p)}


def run_trend(folder: Path) -> dict:
    """The reward trend of a run record folder (its ``curves.csv``)."""
    path = Path(folder) / "curves.csv"
    if not path.is_file() or not path.stat().st_size:
        return reward_trend(pd.DataFrame())
    return reward_trend(pd.read_csv(path))
