"""The board as text: the headline tables in their wide form (a change with its interval and mde per evaluated
split, the expansion counts), the suite file's description, the lines a superseded board opens with, the
terminal's view after a run (``headline_text``), and the suite folder's ``README.md`` (``readme_text``), which
places the positive control, the verdicts, the tables, the plots and the calibration in one document.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ..errors import OodBenchError
from ..suite import suite as suites  # called through the module, so a stand-in is used
from .board_stats import Q_LEVEL
from .calibration import calibration_text
from .control import control_text
from .headline import headline
from .markdown import markdown_table, signed
from .records import Records, eval_splits


def _delta_cell(r) -> str:
    """The change with its interval and minimum detectable effect; bold where its q-value is under 0.05."""
    if r["trace_base"] == 0 and r["trace_post"] == 0:  # a floor, not a certainty: no interval to give
        return f"0 -> 0 (no trace right; mde {r['mde']:.3f})"
    if r["d_trace_lo"] != r["d_trace_lo"]:
        why = "one problem" if r["problems"] < 2 * r["seeds"] else "every sample alike in both models"
        return f"{signed(r['d_trace'])} (no interval: {why})"
    text = f"{signed(r['d_trace'])} [{signed(r['d_trace_lo'])}, {signed(r['d_trace_hi'])}]"
    return f"{'**' + text + '**' if r['q'] < Q_LEVEL else text} mde {r['mde']:.3f}"


def _did_not_train(r) -> bool:
    return r["runs_checked"] > 0 and r["runs_trained"] == 0


def _expansion_cell(r) -> str:
    if not r["outside"]:
        return "- (none outside)"
    if _did_not_train(r):  # nothing moved because nothing trained: not evidence of "no expansion"
        return (
            f"did not train ({r['runs_trained']} of {r['runs_checked']} runs); {r['expanded_threshold']} past "
            f"the fixed thresholds"
        )
    threshold = f"; {r['expanded_threshold']} past the fixed thresholds"
    if r["expanded"] != r["expanded"]:
        return f"n/a of {r['outside']} (no tilt fitted: under 3 problems inside the support){threshold}"
    return (
        f"{int(r['expanded'])} of {r['outside']}, rate {r['expansion']:.3f} [{r['expansion_lo']:.3f}, "
        f"{r['expansion_hi']:.3f}]{threshold}"
    )


def _wide(df: pd.DataFrame, cell, splits: list[str], compute: bool) -> pd.DataFrame:
    out = []
    for (row, trained, _), g in df.groupby(["row", "trained_on", "exposure"], sort=False):
        line = {
            "algorithm": g["algorithm"].iloc[0] if row == "null" else row,
            "trained on": trained,
            "exposure": g["exposure_label"].iloc[0],
        }
        for split in splits:
            hit = g[g["split"] == split]
            line[split] = cell(hit.iloc[0]) if len(hit) else ""
        if compute:
            first = g.iloc[0]
            line.update(
                {
                    "trained": (
                        f"{first['runs_trained']} of {first['runs_checked']}" if first["runs_checked"] else "-"
                    ),
                    "rollouts": f"{first['rollouts']:,.0f}",
                    "train tokens": f"{first['train_tokens']:,.0f}",
                    "wall": f"{first['wall_s'] / 60:.1f} min",
                }
            )
        out.append(line)
    return pd.DataFrame(out)


def tables(rec: Records, head: pd.DataFrame) -> dict[str, pd.DataFrame]:
    splits = [s for s in eval_splits(rec) if s != "edge"]
    ordered = pd.concat([head[head["row"] != "null"], head[head["row"] == "null"]])
    return {
        "gain": _wide(ordered, _delta_cell, splits, compute=True),
        "expansion": _wide(ordered[ordered["row"] != "null"], _expansion_cell, splits, compute=False),
    }


def suite_text(rec: Records) -> dict:
    try:
        data = suites.read_suite_file(rec.suite)
    except OodBenchError:
        data = {}
    info = {"description": data.get("description", ""), "left_out": data.get("left_out", "")}
    if rec.superseded:  # the file describes the runs it would make now, not the records these tables stand for
        info = {
            k: f"(the suite file now, not these records: {v[0].lower()}{v[1:]})" if v else v for k, v in info.items()
        }
    return info


def headline_text(root: Path, allow_dirty: bool = True, expected: dict[str, str] | None = None) -> str:
    """The two headline tables as the terminal shows them after a run."""
    rec = Records(root, allow_dirty, expected)
    t = tables(rec, headline(rec))
    return (
        (superseded_line(rec).replace("**", "") + "\n\n" if rec.superseded else "")
        + "Change in trace pass@1 (every step and the answer right) after post-training, 95% interval, "
        "next to the base re-sampled (null):\n"
        + t["gain"].to_string(index=False)
        + "\n\nExpanded beyond the base's support (Q_base < 1e-6 -> Q_post >= 1e-2), 95% interval:\n"
        + t["expansion"].to_string(index=False)
    )


def superseded_line(rec: Records) -> str:
    """What a board whose every record predates the current code says first."""
    sup = rec.superseded
    return (
        f"**Superseded records.** This ood-bench would make other runs than all {sup['records']} records here "
        f"(results version {', '.join(map(str, sup['results_versions']))}; tasks {', '.join(sup['task_versions'])}): "
        f"the suite file, a family's generator or the results version changed since they were made. The tables "
        f"stand for these records as they are; `ood-bench run {rec.suite}` renews them (docs/results.md)."
    )


def readme_text(rec: Records, head: pd.DataFrame, verdict_block: str, cal: pd.DataFrame, control: pd.DataFrame) -> str:
    t = tables(rec, head)
    info = suite_text(rec)
    commits = sorted({r.get("git_commit", "?")[:10] for r in rec.runs.values()})
    seeds = sorted({r["seed"] for r in rec.runs.values()})
    out = io.StringIO()
    out.write(f"# Leaderboard: the {rec.suite} suite\n\n")
    if info["description"]:
        out.write(f"{info['description']}.\n\n")
    out.write(
        f"Regenerated by `ood-bench leaderboard {rec.suite}` from the {len(rec.runs)} run records in "
        f"`records/` ({len(rec.bases())} bases, {len(rec.posts())} post-training runs; pretraining seeds "
        f"{', '.join(map(str, seeds))}; code {', '.join(commits)}); `ood-bench leaderboard {rec.suite} "
        f"--check` fails when a table or plot here is stale. `index.html` shows the same on one page.\n\n"
    )
    if rec.dirty:
        out.write(f"**{len(rec.dirty)} record(s) come from a checkout with uncommitted code changes.**\n\n")
    if rec.superseded:
        out.write(superseded_line(rec) + "\n\n")
    out.write(control_text(rec, control) if not control.empty else "")
    out.write(verdict_block + "\n")
    out.write(
        "## Change in trace pass@1 after post-training\n\n"
        "Each cell: the mean change over the evaluated split's problems of the sampled trace pass@1 (a "
        "sample counts when every step and the answer are right), post-trained model minus its own base, "
        "over every pretraining seed, with its 95% interval and its minimum detectable effect (`mde`: the "
        'change this cell would detect at 5% with 80% power, so a wide cell reads "cannot tell", not "no '
        'effect"); both families are pooled (`leaderboard.json` has each family apart). **Bold**: the '
        f"Benjamini-Hochberg q-value over the board's {int(head['q'][head['row'] != 'null'].notna().sum())} "
        "tests is under 0.05 (`q` in the csv and json). `0 -> 0` marks a split where no sample of either "
        "model had a right trace: a floor, with no interval; its mde is the rate that many samples rule out. "
        "The `null` rows compare each base with a second evaluation of itself (another sampling seed): the "
        "change sampling alone produces (their q-values form a family of their own). Compute is per run: "
        "rollouts generated, training tokens, wall time (training and evaluation; a run resumed after an "
        "interruption counts the training of every session up to its last checkpoint); rows are matched in "
        "gradient steps, so their tokens differ (SFT trains on gold traces only; RL rows also generate).\n\n"
    )
    out.write(markdown_table(t["gain"]) + "\n\n")
    out.write(
        "## Expansion beyond the base's support\n\n"
        "Problems outside the base's support (exact trace mass Q_base < 1e-6) that the post-trained model "
        "solves (Q_post >= 1e-2) *and* whose log-odds rose beyond what the run's own tilt gave the problems "
        "inside the support (a reweighting, however strong, cannot do that; the tilt is fitted per run over "
        "all its splits, `tilts` in `leaderboard.json`): how many of how many outside (over all seeds), the "
        "rate (the mean over seeds), and its 95% interval. After the `;`, the old fixed-threshold count "
        "(outside, then solved, whatever the tilt), a secondary number that a strong tilt alone inflates. "
        "Exact masses carry no sampling noise, so the base-vs-base null of these counts is 0 by "
        "construction.\n\n"
    )
    out.write(markdown_table(t["expansion"]) + "\n\n")
    out.write(
        "![OOD gain against exposure](gain_vs_exposure.png)\n\n"
        "*Change in trace pass@1 on each OOD axis against the base's pretraining exposure to it, one panel per "
        "axis and family: GRPO and the SFT control trained on the axis (solid) and on ID (dashed), with 95% "
        "intervals and each seed behind them; the base-vs-base null in grey; the other rows faded.*\n\n"
        "![Q_post against Q_base](q_post_vs_q_base.png) ![pass@k](pass_at_k.png) "
        "![training curves](training_curves.png)\n\n"
    )
    interval = sorted(set(head["interval"]))
    out.write(
        f"**How the intervals are made.** Each change is modelled as seed effect + problem effect + sampling "
        f"noise (two-way crossed random effects over the same problems at every seed); the variance of its "
        f"mean comes from the two-way ANOVA mean squares (the balanced two-way clustered variance of Cameron, "
        f'Gelbach and Miller 2011, the clustering recommended for evals by Miller 2024, "Adding Error Bars to '
        f"Evals\"), never below the binomial sampling variance alone, with Student's t on seeds - 1 degrees "
        f"of freedom; with one seed it covers problems and sampling only. q-values: Benjamini and Hochberg "
        f"(1995). The method was checked on simulated boards with known truth and on each base re-sampled "
        f"against itself (`tests/test_board_stats.py`). Intervals on this board: {'; '.join(interval)}. "
        "Thresholds: outside 1e-6, solved 1e-2. `leaderboard.csv` and `leaderboard.json` hold every number "
        "here with its interval bounds, standard error, degrees of freedom, p, q and mde, the exact trace "
        "mass change (`d_mass`) and the answer pass@1 change (`d_answer`); `leaderboard.json` adds the "
        "verdicts, each run's fitted tilt, and every support metric per run, family and split.\n"
    )
    out.write("\n## Calibration on real nulls\n\n" + calibration_text(cal))
    if info["left_out"]:
        out.write(f"\n**Left out of this suite, and why:** {info['left_out']}\n")
    return out.getvalue()
