"""Verdicts on the seed paper's claims, generated from a board's numbers by stated rules.

Each verdict is ``supported``, ``contradicted`` or ``inconclusive``, and carries the rule that gave it and
the numbers the rule read, so a reader can check it and no sentence says more than the data. The
rules read the corrected statistics of ``board_stats`` (Benjamini-Hochberg q-values, minimum detectable
effects) and the expansion beyond each run's own tilt (``expansion``).

The claims ("Can GRPO Help LLMs Transcend Their Pretraining Origin?"):

1. GRPO is a conservative reweighting, bounded by the base's support.
2. OOD gains come only where pretraining exposure is non-zero.
3. ID gains shrink as the base saturates.
4. How the other algorithms compare: each other row held to claim 1's rule (SFT on gold traces, the
   control, is expected to leave the support).

A board with a single pretraining seed gives no verdict: its intervals cover sampling only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..evaluation.did_train import ALPHA as TREND_ALPHA
from ..evaluation.did_train import run_trend
from ..evaluation.expansion import ALPHA, beyond_tilt
from ..evaluation.support import Thresholds
from .board_stats import Q_LEVEL

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
CONTROL = "sft"  # the row that trains on gold traces: the detector's positive control
TRAINING_NOTE = (
    "A run counts as trained when its own objective moved the right way over its steps (the least-squares "
    f"slope on step, one-sided p < {TREND_ALPHA:g}): the training reward for RL, the gold traces' NLL for "
    "SFT; an SFT record made before the objective was logged cannot be checked and is taken as trained. "
    "A claim that rests on runs that did not train reads inconclusive: a run that did nothing can "
    "neither expand nor gain."
)
MIN_TRAINED = 0.5  # the share of a row's runs that must have trained before its verdict reads anything


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str
    rule: str
    numbers: str

    def as_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- what the rules read


def run_expansions(rec, th: Thresholds) -> pd.DataFrame:
    """Per post-trained run: problems outside its base's support (every split) and how many rose beyond the
    run's own tilt."""
    rows = []
    for name in rec.posts():
        r = rec.runs[name]
        tilt = rec.tilt(name, th)
        m = rec.merged(name)
        lq_b, lq_p = m["gold_logprob_base"].to_numpy(float), m["gold_logprob_post"].to_numpy(float)
        flagged = int(beyond_tilt(lq_b, lq_p, tilt, th.outside, th.solved).sum()) if tilt.fitted else None
        rows.append(
            {
                "run": name,
                "row": r["row"],
                "trained_on": r["split"],
                "exposure": r["exposure"],
                "seed": r["seed"],
                **run_trend(rec.root / "records" / name),
                "outside": int((np.exp(lq_b) < th.outside).sum()),
                "flagged": flagged,
                "tilt_mean": tilt.mean,
                "tilt_sd": tilt.sd,
                "tilt_bound": tilt.bound,
                "tilt_problems": tilt.problems,
            }
        )
    return pd.DataFrame(rows)


def _allowed(runs: int) -> int:
    """Runs that may flag a problem under pure reweighting, at 95%: each flags with probability <= ALPHA."""
    return int(stats.binom.ppf(0.95, runs, ALPHA)) if runs else 0


def _flag_counts(exp: pd.DataFrame, row: str) -> tuple[int, int, int, int]:
    """(runs tested, runs that flagged, problems flagged, problems outside) of one row."""
    sel = exp[(exp["row"] == row) & (exp["outside"] > 0)]
    fitted = sel[sel["flagged"].notna()]
    return len(fitted), int((fitted["flagged"] > 0).sum()), int(fitted["flagged"].sum()), int(fitted["outside"].sum())


# ----------------------------------------------------------------------------- the rules

RULE_SUPPORT = (
    f"each run's outside problems (Q_base < 1e-6) are held against the run's own tilt, which flags a "
    f"run under pure reweighting with probability <= {ALPHA:g}. Contradicted: more runs flag than the "
    f"95th percentile of Binomial(runs, {ALPHA:g}). Supported: no more than that, and the same detector "
    f"flags more SFT runs than that percentile (it can see expansion here). Otherwise inconclusive."
)


def _untrained(exp: pd.DataFrame, row: str, split: str | None = None) -> str | None:
    """Why a row's verdict cannot be read, when too few of its runs trained (None when enough did)."""
    sel = exp[exp["row"] == row]
    if split == "ood":
        sel = sel[sel["trained_on"].str.startswith("ood_")]
    elif split is not None:
        sel = sel[sel["trained_on"] == split]
    checked = sel[sel["trained"].notna()]
    if not len(checked):
        return None
    trained = int(checked["trained"].astype(bool).sum())
    if trained >= MIN_TRAINED * len(checked):
        return None
    return f"{row} trained in {trained} of {len(checked)} runs"


def _gated(verdict: Verdict, why: str | None) -> Verdict:
    if why is None:
        return verdict
    return Verdict(
        verdict.claim,
        INCONCLUSIVE,
        verdict.rule + f" Read only when at least {MIN_TRAINED:.0%} of the runs it rests on trained.",
        f"{why}; {verdict.numbers}",
    )


def _within_support(exp: pd.DataFrame, row: str, claim: str) -> Verdict:
    runs, flagged_runs, problems, outside = _flag_counts(exp, row)
    c_runs, c_flagged, c_problems, c_outside = _flag_counts(exp, CONTROL)
    numbers = (
        f"{row}: {flagged_runs} of {runs} runs flagged (allowed {_allowed(runs)}), {problems} of {outside} "
        f"outside problems; control {CONTROL}: {c_flagged} of {c_runs} runs (allowed {_allowed(c_runs)}), "
        f"{c_problems} of {c_outside} problems"
    )
    if runs == 0:
        verdict = INCONCLUSIVE
    elif flagged_runs > _allowed(runs):
        verdict = CONTRADICTED
    elif c_runs and c_flagged > _allowed(c_runs):
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Verdict(claim, verdict, RULE_SUPPORT, numbers)


RULE_EXPOSURE = (
    "GRPO trained on an OOD axis, scored on that axis. Contradicted: a cell at exposure 0 gains with "
    f"q < {Q_LEVEL:g}. Supported: none does, a cell at exposure > 0 gains with q < {Q_LEVEL:g}, and "
    "every exposure-0 cell's minimum detectable effect is at most the smallest such gain. Otherwise "
    "inconclusive."
)


def _exposure(head: pd.DataFrame) -> Verdict:
    claim = "OOD gains come only where pretraining exposure is non-zero"
    cells = head[(head["row"] == "grpo") & (head["trained_on"] == head["split"]) & head["split"].str.startswith("ood_")]
    zero, some = cells[cells["exposure_frac"] == 0], cells[cells["exposure_frac"] > 0]
    gains0 = zero[(zero["q"] < Q_LEVEL) & (zero["d_trace"] > 0)]
    gains = some[(some["q"] < Q_LEVEL) & (some["d_trace"] > 0)]
    worst_mde = float(zero["mde"].max()) if len(zero) else float("nan")
    numbers = (
        f"exposure 0: {len(gains0)} of {len(zero)} cells gain (largest mde {worst_mde:.3f}); exposure > 0: "
        f"{len(gains)} of {len(some)} cells gain" + (f" (smallest {gains['d_trace'].min():+.3f})" if len(gains) else "")
    )
    if not len(cells):
        verdict = INCONCLUSIVE
    elif len(gains0):
        verdict = CONTRADICTED
    elif len(gains) and worst_mde <= float(gains["d_trace"].min()):
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Verdict(claim, verdict, RULE_EXPOSURE, numbers)


RULE_SATURATION = (
    "per GRPO run trained on ID: its ID trace pass@1 change against its base's ID trace pass@1, a "
    "least-squares slope with a 95% t interval (runs - 2 df). Supported: the slope is negative and "
    "its interval excludes 0. Contradicted: positive and excludes 0. Otherwise inconclusive."
)


def _saturation(rec, head: pd.DataFrame) -> Verdict:
    claim = "ID gains shrink as the base saturates"
    points = []
    for name in rec.posts():
        r = rec.runs[name]
        if r["row"] != "grpo" or r["split"] != "id":
            continue
        m = rec.merged(name)
        m = m[m["split"] == "id"]
        points.append(((m["full_c_base"] / m["n"]).mean(), ((m["full_c_post"] - m["full_c_base"]) / m["n"]).mean()))
    if len(points) < 3 or len({round(x, 6) for x, _ in points}) < 2:
        return Verdict(claim, INCONCLUSIVE, RULE_SATURATION, f"{len(points)} runs: too few for a slope")
    x, y = np.array(points).T
    fit = stats.linregress(x, y)
    half = float(stats.t.ppf(0.975, len(x) - 2)) * fit.stderr
    lo, hi = fit.slope - half, fit.slope + half
    numbers = (
        f"{len(x)} runs, bases' ID trace pass@1 {x.min():.2f}-{x.max():.2f}; slope {fit.slope:+.3f} "
        f"[{lo:+.3f}, {hi:+.3f}]"
    )
    verdict = SUPPORTED if hi < 0 else CONTRADICTED if lo > 0 else INCONCLUSIVE
    return Verdict(claim, verdict, RULE_SATURATION, numbers)


def _others(exp: pd.DataFrame, head: pd.DataFrame) -> list[Verdict]:
    out = []
    for row in sorted(set(exp["row"]) - {"grpo"}):
        own = head[(head["row"] == row) & (head["trained_on"] == head["split"])]
        moves = (
            f"; on the split it trained on, {int(((own['q'] < Q_LEVEL) & (own['d_trace'] > 0)).sum())} of "
            f"{len(own)} cells gain and {int(((own['q'] < Q_LEVEL) & (own['d_trace'] < 0)).sum())} lose "
            f"(q < {Q_LEVEL:g})"
        )
        if row == CONTROL:
            runs, flagged, problems, outside = _flag_counts(exp, row)
            verdict = SUPPORTED if runs and flagged > _allowed(runs) else INCONCLUSIVE
            out.append(
                Verdict(
                    "SFT on gold traces (the control) leaves the base's support",
                    verdict,
                    "supported when more SFT runs flag expansion beyond their tilt than the 95th "
                    f"percentile of Binomial(runs, {ALPHA:g}) allows; otherwise inconclusive.",
                    f"{flagged} of {runs} runs flagged (allowed {_allowed(runs)}), {problems} of "
                    f"{outside} outside problems" + moves,
                )
            )
            continue
        v = _gated(_within_support(exp, row, f"{row} stays within the base's support, like GRPO"), _untrained(exp, row))
        out.append(Verdict(v.claim, v.verdict, v.rule, v.numbers + moves))
    return out


def verdicts(rec, head: pd.DataFrame, exp: pd.DataFrame) -> list[Verdict]:
    """Every claim's verdict on one board; ``exp`` is its ``run_expansions``."""
    if int(head["seeds"].max()) < 2:
        note = "one pretraining seed, so its intervals cover sampling only"
        claims = [
            "GRPO is a conservative reweighting, bounded by the base's support",
            "OOD gains come only where pretraining exposure is non-zero",
            "ID gains shrink as the base saturates",
        ]
        return [Verdict(c, INCONCLUSIVE, "a verdict needs two or more pretraining seeds", note) for c in claims]
    if exp.empty:
        return []
    return [
        _gated(
            _within_support(exp, "grpo", "GRPO is a conservative reweighting, bounded by the base's support"),
            _untrained(exp, "grpo"),
        ),
        _gated(_exposure(head), _untrained(exp, "grpo", "ood")),
        _gated(_saturation(rec, head), _untrained(exp, "grpo", "id")),
        *_others(exp, head),
    ]


def markdown(suite: str, found: list[Verdict], withheld: str = "") -> str:
    """The verdict block, between markers that ``--check`` finds in any README quoting it; with
    ``withheld`` (why), it says that the board publishes no verdict, and why."""
    start = f"<!-- verdicts:{suite}:start (generated by `ood-bench leaderboard {suite}`; do not edit) -->"
    if withheld:
        return f"{start}\n**No verdicts on the `{suite}` board:** {withheld}.\n<!-- verdicts:{suite}:end -->\n"
    lines = [start, f"Verdicts on the `{suite}` board, generated by the rule beside each. {TRAINING_NOTE}", ""]
    for v in found:
        lines.append(f"- **{v.claim}: {v.verdict}.** {v.numbers}. *Rule:* {v.rule}")
    lines.append(f"<!-- verdicts:{suite}:end -->")
    return "\n".join(lines) + "\n"


def block_in(text: str, suite: str) -> str | None:
    """The verdict block of ``suite`` quoted in a text, or None."""
    start, end = f"<!-- verdicts:{suite}:start", f"<!-- verdicts:{suite}:end -->"
    i = text.find(start)
    j = text.find(end, i)
    return text[i : j + len(end)] + "\n" if i >= 0 and j >= 0 else None
