"""The RL positive control: which row and split the suite file names as the control, whether that row trained
at each exposure level (its reward rise over pretraining seeds and the held-out change of answer pass@1), the
board's status (a failed control withholds every verdict), and the README section that shows it.
"""

from __future__ import annotations

import pandas as pd

from ..errors import OodBenchError
from ..evaluation import did_train
from ..suite import suite as suites  # called through the module, so a stand-in is used
from ..suite.suite import PositiveControl
from ..tasks.base import AXES
from .markdown import markdown_table, signed
from .records import Records


def _control_spec(rec: Records) -> tuple[str, str, list[str]]:
    """The suite file's ``positive_control`` (row, split, exposure levels; defaults: grpo on id, every level)."""

    try:
        given = suites.read_suite_file(rec.suite).get("positive_control") or {}
    except OodBenchError:
        given = {}
    default = PositiveControl()
    return given.get("row", default.row), given.get("split", default.split), list(given.get("exposures") or [])


def positive_control(rec: Records, head: pd.DataFrame) -> pd.DataFrame:
    """The RL positive control per exposure level (``did_train.positive_control``): the training-reward rise
    of the control row's runs on the control split, one per pretraining seed, and the held-out change of
    answer pass@1 on that split (the headline cell's ``d_answer``, its interval over seeds and sampling)."""
    ctl_row, ctl_split, levels = _control_spec(rec)
    first_base = {}
    for n in rec.bases():
        first_base.setdefault(rec.runs[n]["exposure"], n)
    rows = []
    for level in sorted(first_base, key=lambda e: (sum(rec.exposure_of(first_base[e], a) for a in AXES), e)):
        if levels and level not in levels:
            continue
        names = [
            n
            for n in rec.posts()
            if rec.runs[n].get("row") == ctl_row
            and rec.runs[n].get("split") == ctl_split
            and rec.runs[n]["exposure"] == level
        ]
        if not names:
            continue
        cell = head[
            (head["row"] == ctl_row)
            & (head["trained_on"] == ctl_split)
            & (head["exposure"] == level)
            & (head["split"] == ctl_split)
        ]
        held = float(cell["d_answer"].iloc[0]) if len(cell) else float("nan")
        pc = did_train.positive_control([rec.trend(n) for n in sorted(names)], held)
        pc.update(
            exposure=level,
            exposure_label=rec.exposure_label(names[0]),
            heldout_lo=float(cell["d_answer_lo"].iloc[0]) if len(cell) else float("nan"),
            heldout_hi=float(cell["d_answer_hi"].iloc[0]) if len(cell) else float("nan"),
        )
        rows.append(pc)
    return pd.DataFrame(rows)


def control_status(control: pd.DataFrame) -> tuple[str, str]:
    """The board's control: ``passed`` when every exposure level it names passed; else the first reason."""
    if control.empty:
        return "failed", "no run of the suite's positive_control row and split to serve as the control"
    for r in control.itertuples():
        if r.status != "passed":
            return r.status, f"{r.exposure_label}: {r.reason}"
    return "passed", ""


def _control_table(control: pd.DataFrame) -> str:
    def interval(lo, hi) -> str:
        return "-" if lo != lo else f"[{signed(lo)}, {signed(hi)}]"

    shown = pd.DataFrame(
        {
            "exposure": control["exposure_label"],
            "seeds": control["seeds"],
            "reward at start": control["start"].map(lambda v: f"{v:.3f}"),
            "rise [95%]": [
                f"{signed(r.rise)} {interval(r.low, r.high)}" + (" (over steps)" if r.seeds == 1 else "")
                for r in control.itertuples()
            ],
            "needed": control["needed"].map(lambda v: f"{v:.3f}"),
            "held-out pass@1 change [95%]": [
                f"{signed(r.heldout_change)} {interval(r.heldout_lo, r.heldout_hi)}" for r in control.itertuples()
            ],
            "control": [
                "not judged (one seed)" if r.status == "one seed" else r.status + (f" ({r.reason})" if r.reason else "")
                for r in control.itertuples()
            ],
        }
    )
    return markdown_table(shown)


def control_text(rec: Records, control: pd.DataFrame) -> str:
    ctl_row, ctl_split, _ = _control_spec(rec)
    lo, hi = did_train.REWARD_BAND
    status, why = control_status(control)
    head = {
        "passed": f"**Passed**: `{ctl_row}` trains on these bases, so a cell where it did not expand says something.",
        "failed": f"**Failed** ({why}): this board publishes no verdict.",
        "one seed": "**Not judged**: one pretraining seed gives no interval over seeds (each run's interval "
        "below is over its own steps).",
    }[status]
    return (
        f"## Positive control: does `{ctl_row}` train here?\n\n"
        f"Before any cell can read '{ctl_row} did not expand the support', {ctl_row} must have trained. The "
        f"suite file names the control before anything runs (`positive_control`: row `{ctl_row}`, split "
        f"`{ctl_split}`). "
        f"Each `{ctl_row}` run on {ctl_split} prompts logs its mean training reward per step; its rise is the mean over the last "
        "tenth of the steps minus the first tenth, averaged over pretraining seeds with a t-interval over them, "
        f"and the held-out change is the answer pass@1 on the board's own {ctl_split} problems (post minus base, the "
        f"interval over seeds and sampling). *Rule:* the reward starts in [{lo:g}, {hi:g}], rises by at least "
        f"{did_train.MIN_RISE:g} (or a third of the distance to 1 if smaller) with an interval above 0 over two or "
        f"more seeds, and held-out pass@1 rises; every exposure level must pass. {head}\n\n"
        + _control_table(control)
        + "\n\n"
    )
