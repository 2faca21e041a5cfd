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
        "first": nan,  # the objective's mean over the first and the last tenth of the steps
        "last": nan,
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
    out.update(first=float(first.mean()), last=float(last.mean()))
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


# The RL positive control: on training prompts the base neither always fails nor always solves, the
# algorithm's training reward must rise by a margin that matters, over every pretraining seed, and carry to
# held-out prompts of the same split. Without it a board cannot tell "did not expand" from "did nothing".
REWARD_BAND = (0.1, 0.9)  # the base's training reward must start inside it: room to rise and to fall
MIN_RISE = 0.10  # ... or a third of the distance from the start to 1, whichever is smaller


def positive_control(runs: list[dict], heldout_change: float) -> dict:
    """Judge the RL positive control over ``runs`` (one per pretraining seed: the ``objective_trend`` of
    each run's training reward) and the change of held-out pass@1 on the training split.

    ``status`` is ``passed`` when the start lies in ``REWARD_BAND``, the mean rise is at least
    min(``MIN_RISE``, (1 - start) / 3), its 95% t-interval over seeds excludes 0 and held-out pass@1 rose;
    ``failed`` when any of these does not hold; ``one seed`` when only one run exists (its interval is then
    over its own steps, which says nothing of another pretraining seed, so it is not judged)."""
    changes = np.array([r["change"] for r in runs], float)
    starts = np.array([r["first"] for r in runs], float)
    k = len(runs)
    nan = float("nan")
    out = {"seeds": k, "start": nan, "needed": nan, "rise": nan, "low": nan, "high": nan, "interval": ""}
    out.update(heldout_change=float(heldout_change), status="failed", reason="")
    if k == 0 or np.isnan(changes).any():
        out["reason"] = "no run of the control row logged its training reward"
        return out
    start, rise = float(starts.mean()), float(changes.mean())
    out.update(start=start, rise=rise, needed=min(MIN_RISE, (1.0 - start) / 3))
    if k == 1:
        out.update(low=float(runs[0]["change_low"]), high=float(runs[0]["change_high"]))
        out.update(interval="over the run's steps", status="one seed")
        out["reason"] = "one pretraining seed: the rise has no interval over seeds"
        return out
    spread = float(changes.std(ddof=1))
    if spread > 0:
        low, high = stats.t.interval(0.95, k - 1, loc=rise, scale=spread / k**0.5)
    else:
        low = high = rise
    out.update(low=float(low), high=float(high), interval=f"t over {k} seeds")
    reasons = []
    if not REWARD_BAND[0] <= start <= REWARD_BAND[1]:
        reasons.append(f"the base's reward {start:.3f} is outside [{REWARD_BAND[0]:g}, {REWARD_BAND[1]:g}]")
    if rise < out["needed"]:
        reasons.append(f"a rise of {rise:+.3f} is under the {out['needed']:.3f} needed")
    if not low > 0:
        reasons.append("its interval reaches 0")
    if not heldout_change > 0:
        reasons.append(f"held-out pass@1 did not rise ({heldout_change:+.3f})")
    out.update(status="failed" if reasons else "passed", reason="; ".join(reasons))
    return out


def control_sentence(pc: dict) -> str:
    """The positive control's verdict as one paragraph of a README, with its rule."""
    lo, hi = REWARD_BAND
    head = {"passed": "Passed", "failed": "Failed", "one seed": "Not judged"}[pc["status"]]
    if pc["reason"] == "no run of the control row logged its training reward":
        return f"**{head}:** {pc['reason']}."
    return (
        f"**{head}.** Over {pc['seeds']} pretraining seed(s) the training reward rose by {pc['rise']:+.3f} "
        f"(95% interval {pc['interval']}: [{pc['low']:+.3f}, {pc['high']:+.3f}]) from {pc['start']:.3f} over "
        f"the first tenth of the steps; held-out pass@1 on the training split moved {pc['heldout_change']:+.3f}."
        + (f" ({pc['reason']}.)" if pc["reason"] else "")
        + f" *Rule:* the base's reward starts in [{lo:g}, {hi:g}], the mean rise (last tenth of the steps "
        f"minus the first) is at least {MIN_RISE:g} or a third of the distance to 1 if smaller (here "
        f"{pc['needed']:.3f}), its t-interval over two or more pretraining seeds excludes 0, and held-out "
        "pass@1 rises."
    )
