"""A suite's leaderboard, rebuilt from its run records with pandas.

``leaderboards/<suite>/`` gets ``README.md`` (the headline tables), ``leaderboard.csv``
and ``leaderboard.json`` (the same rows with every metric, plus the per-family
support rows and the per-seed rows of every run), four PNG plots (``board_plots``)
and ``index.html`` (tables, filters, a drill-down per cell and plots on one
self-contained page: ``board_page``). Every number comes from the records' per-problem
counts and exact log-probabilities, read through their manifests; nothing is copied
from a summary. Each plot carries a digest of the data it draws and of the code that
draws it in its PNG metadata, so ``--check`` can tell a stale plot from a current one
without comparing pixels.

Intervals are 95% and cover pretraining seeds, problems and sampling together
(``board_stats``), with Benjamini-Hochberg q-values and minimum detectable effects;
expansion is counted beyond each run's own tilt (``expansion``); each run says
whether it trained (``did_train``), and the verdicts on the paper's claims are
generated from these numbers (``verdicts``). An expansion rate's interval is over
seeds (Student's t), never narrower than the Wilson interval of its pooled counts.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import OodBenchError
from ..evaluation import did_train
from ..evaluation.did_train import run_trend
from ..evaluation.expansion import Tilt, beyond_tilt, fit_tilt, threshold_expanded
from ..evaluation.support import Thresholds, load_counts, merge_records, support_table, wilson_interval
from ..storage.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..storage.numeric_text import same_up_to_rounding
from ..storage.run_records import RECORD, read_record, run_wall_seconds
from ..tasks.base import AXES
from . import board_data, verdicts
from .board_plots import DIGEST_KEY
from .board_stats import Q_LEVEL, mean_change, q_values, rate_change

README, CSV, JSON, HTML = "README.md", "leaderboard.csv", "leaderboard.json", "index.html"
PLOTS = {
    "gain": "gain_vs_exposure.png",
    "tilt": "q_post_vs_q_base.png",
    "passk": "pass_at_k.png",
    "curves": "training_curves.png",
}
OOD_SPLITS = [f"ood_{a}" for a in AXES]


# ----------------------------------------------------------------------------- reading


class Records:
    """Every run record of a suite folder, with its per-problem counts (read once, manifest-checked)."""

    def __init__(self, root: Path, allow_dirty: bool = False, expected: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.expected = expected or {}  # run name -> key, from the suite's grid when it is at hand
        folders = sorted(p.parent for p in (self.root / "records").glob(f"*/{RECORD}"))
        if not folders:
            raise OodBenchError(
                f"no run records under {str(self.root / 'records')!r}: run the suite first "
                f"(`ood-bench run {self.root.name}`)"
            )
        self.runs = {f.name: read_record(f) for f in folders}
        dirty = sorted(n for n, r in self.runs.items() if r.get("git_dirty"))
        if dirty and not allow_dirty:
            raise OodBenchError(
                f"{len(dirty)} record(s) were made from a modified checkout ({', '.join(dirty[:3])}"
                f"{', ...' if len(dirty) > 3 else ''}): commit and run again, or pass --allow-dirty"
            )
        self.dirty = dirty
        self.counts = {n: load_counts(self.root / "records" / n / "eval") for n in self.runs}
        self.null = {n: self._null(n) for n, r in self.runs.items() if r["kind"] == "base"}
        self.suite = next(iter(self.runs.values())).get("suite", self.root.name)
        self._tilts: dict = {}
        self._trends: dict = {}
        self._merged: dict = {}
        self._check_consistent()

    def _check_consistent(self) -> None:
        """Records of one suite, made by this version of the numbers, each post run from its base's record:
        nothing stale is mixed into a table."""
        from ..suite.suite import RESULTS_VERSION

        self.superseded = self._superseded(RESULTS_VERSION)
        for name, r in self.runs.items():
            if r.get("suite", self.suite) != self.suite:
                raise OodBenchError(f"record {name!r} belongs to suite {r.get('suite')!r}, not {self.suite!r}")
            if r["kind"] != "post":
                continue
            base = self.runs.get(r.get("base"))
            if base is None:
                raise OodBenchError(f"record {name!r} starts from base {r.get('base')!r}, which has no record here")
            wanted = (r.get("identity") or {}).get("base_key", base["key"])
            if wanted != base["key"]:
                raise OodBenchError(
                    f"record {name!r} was trained from another {r['base']!r} than the one recorded "
                    f"here (its base key differs): run the suite again to renew it"
                )

    def _superseded(self, current_version: int) -> dict | None:
        """None when every record is what this ood-bench would make. When *every* record has another key or
        results version (the suite file, a family's generator or the numbers changed since, and no run has
        been renewed yet), the board stands for those records as they are and says so:
        {"records", "results_versions", "task_versions"}. A board never mixes renewed and older records, so
        some of each is one line naming both."""

        def version(r):
            return r.get("results_version", current_version)

        old = sorted(
            n
            for n, r in self.runs.items()
            if (n in self.expected and self.expected[n] != r["key"]) or version(r) != current_version
        )
        if not old:
            return None
        new = sorted(set(self.runs) - set(old))
        versions = sorted({version(r) for r in self.runs.values()})
        if new or len(versions) > 1:
            raise OodBenchError(
                f"record {old[0]!r} is stale (the suite's {old[0]} has another key now, or another results "
                f"version) while {new[0] if new else 'others'!r} {'is' if new else 'are'} current: a board never "
                f"mixes the two; run the suite again to renew the {len(old)} stale record(s)"
            )
        tasks = sorted({f"{f} v{v}" for r in self.runs.values() for f, v in (r.get("task_versions") or {}).items()})
        return {"records": len(old), "results_versions": versions, "task_versions": tasks}

    def _null(self, name: str) -> pd.DataFrame:
        """A base's second evaluation (another sampling seed): without it the null rows have nothing to show."""
        folder = self.root / "records" / name / "null"
        if not (folder / "eval.json").is_file():
            raise OodBenchError(
                f"base {name!r} has no null evaluation ({str(folder)!r}): the null rows compare each base with a "
                f"second evaluation of itself; run the suite again for that base (`ood-bench run {self.root.name}`)"
            )
        return load_counts(folder)

    def tilt(self, name: str, th: Thresholds) -> Tilt:
        """A run's tilt over all its problems against its base (a base's: against its own re-sampling)."""
        key = (name, th)
        if key not in self._tilts:
            m = self.merged(name)
            lq_b = m["gold_logprob_base"].to_numpy(float)
            self._tilts[key] = fit_tilt(
                lq_b, m["gold_logprob_post"].to_numpy(float), th.outside, tested=int((np.exp(lq_b) < th.outside).sum())
            )
        return self._tilts[key]

    def merged(self, name: str) -> pd.DataFrame:
        """A run's problems beside its base's, every split (a base's: beside its own re-sampling); merged once."""
        if name not in self._merged:
            r = self.runs[name]
            base, post = (
                (self.counts[r["base"]], self.counts[name])
                if r["kind"] == "post"
                else (self.counts[name], self.null[name])
            )
            self._merged[name] = merge_records(base, post)
        return self._merged[name]

    def trend(self, name: str) -> dict:
        """Whether a post-training run trained: its reward trend (``did_train``)."""
        if name not in self._trends:
            self._trends[name] = run_trend(self.root / "records" / name)
        return self._trends[name]

    def posts(self) -> list[str]:
        return [n for n, r in self.runs.items() if r["kind"] == "post"]

    def bases(self) -> list[str]:
        return [n for n, r in self.runs.items() if r["kind"] == "base"]

    def exposure_label(self, name: str) -> str:
        """``e2 (2% per axis)``: the level's name and what it means, from its base's mixture."""
        base = self.runs[name] if self.runs[name]["kind"] == "base" else self.runs[self.runs[name]["base"]]
        exposure = {a: v for a, v in ((base["config"].get("mixture") or {}).get("exposure") or {}).items() if v}
        if not exposure:
            return f"{base['exposure']} (none)"
        if len(exposure) == len(AXES) and len(set(exposure.values())) == 1:
            return f"{base['exposure']} ({100 * next(iter(exposure.values())):g}% per axis)"
        return f"{base['exposure']} ({', '.join(f'{a} {100 * v:g}%' for a, v in exposure.items())})"

    def exposure_of(self, name: str, axis: str) -> float:
        base = self.runs[name] if self.runs[name]["kind"] == "base" else self.runs[self.runs[name]["base"]]
        return float(((base["config"].get("mixture") or {}).get("exposure") or {}).get(axis, 0.0))


# ----------------------------------------------------------------------------- statistics


def _seed_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and Student's t 95% interval over seeds (for expansion rates, which have no problem pairing)."""
    from scipy import stats

    v = np.asarray(values, float)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(v) - 1)) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def _paired(
    base: pd.DataFrame, post: pd.DataFrame, split: str, tilt: Tilt | None = None, th: Thresholds | None = None
) -> pd.DataFrame:
    """One split's problems, base and post side by side; ``tilt`` (the run's, over all its splits) marks the
    problems that expanded beyond it."""
    th = th or Thresholds()
    merged = merge_records(base[base["split"] == split], post[post["split"] == split])
    lq_b, lq_p = merged["gold_logprob_base"].to_numpy(float), merged["gold_logprob_post"].to_numpy(float)
    flagged = (
        beyond_tilt(lq_b, lq_p, tilt, th.outside, th.solved)
        if tilt is not None and tilt.fitted
        else np.zeros(len(merged), bool)
    )
    return merged.assign(
        q_base=np.exp(lq_b),
        q_post=np.exp(lq_p),
        d_trace=(merged["full_c_post"] - merged["full_c_base"]) / merged["n"],
        d_answer=(merged["c_post"] - merged["c_base"]) / merged["n"],
        expanded=flagged,
        expanded_threshold=threshold_expanded(lq_b, lq_p, th.outside, th.solved),
    )


def _aligned(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The seeds' paired problems in one order (the problems every seed has): rows of a seeds x problems matrix."""
    keys = ["family", "uid"]
    common = frames[0][keys]
    for f in frames[1:]:
        common = common.merge(f[keys], on=keys)
    common = common.sort_values(keys)
    return [common.merge(f, on=keys, how="left") for f in frames]


def _cell(pairs: list[tuple[str, pd.DataFrame, Tilt | None]], th: Thresholds, key: str = "") -> dict:
    """One (row, training split, exposure, evaluated split) cell over its seeds' paired problems: each change
    with an interval over seeds, problems and samples (``board_stats``), and the expansion beyond each run's
    tilt."""
    frames = _aligned([m for _, m, _ in pairs])
    per_seed = [
        {
            "outside": int((m["q_base"] < th.outside).sum()),
            "expanded": int(m["expanded"].sum()),
            "expanded_threshold": int(m["expanded_threshold"].sum()),
            "mass_base": float(m["q_base"].mean()),
            "mass_post": float(m["q_post"].mean()),
            "trace_base": float((m["full_c_base"] / m["n"]).mean()),
            "trace_post": float((m["full_c_post"] / m["n"]).mean()),
            "problems": len(m),
        }
        for m in frames
    ]
    k, problems = len(frames), len(frames[0])
    out = {
        "seeds": k,
        "problems": sum(s["problems"] for s in per_seed),
        "outside": sum(s["outside"] for s in per_seed),
        "expanded": sum(s["expanded"] for s in per_seed),
        "expanded_threshold": sum(s["expanded_threshold"] for s in per_seed),
        **{m: float(np.mean([s[m] for s in per_seed])) for m in ("mass_base", "mass_post", "trace_base", "trace_post")},
    }

    def stack(column: str) -> np.ndarray:
        return np.vstack([m[column].to_numpy(float) for m in frames])

    n = stack("n")
    trace = rate_change(stack("full_c_base"), stack("full_c_post"), n)
    out.update(trace.as_dict("d_trace"))
    out.update(rate_change(stack("c_base"), stack("c_post"), n).as_dict("d_answer"))
    out.update(mean_change(stack("q_post") - stack("q_base")).as_dict("d_mass"))
    if out["trace_base"] == 0 and out["trace_post"] == 0:
        # a floor: not one of the k*P*n samples of either model had a right trace; the smallest per-sample rate
        # that many samples rule out at 95% (the rule of three) is what this cell could have detected
        out["d_trace_mde"] = 3.0 / float(n.sum())
    if any(tilt is None or not tilt.fitted for _, _, tilt in pairs):
        out["expanded"] = float("nan")  # a run with no tilt to hold rises against: no count to give
    rates = [s["expanded"] / s["outside"] for s in per_seed if s["outside"]]
    if out["expanded"] != out["expanded"] or not out["outside"]:
        out.update(expansion=float("nan"), expansion_lo=float("nan"), expansion_hi=float("nan"))
    elif k >= 2 and len(rates) >= 2:
        # over seeds, and never narrower than the Wilson interval of the pooled counts: a rate that is 0 in
        # every seed still shows how large a rate that many problems could hide
        m, lo, hi = _seed_interval(rates)
        w_lo, w_hi = wilson_interval(out["expanded"], out["outside"])
        out.update(expansion=m, expansion_lo=max(0.0, min(lo, w_lo)), expansion_hi=min(1.0, max(hi, w_hi)))
    else:
        lo, hi = wilson_interval(out["expanded"], out["outside"])
        out.update(expansion=out["expanded"] / out["outside"], expansion_lo=lo, expansion_hi=hi)
    out["interval"] = trace.method if problems >= 2 else "one problem: no interval"
    return out


def _with_q_values(head: pd.DataFrame) -> pd.DataFrame:
    """Benjamini-Hochberg q-values of the trace pass@1 changes: one family of tests for the post-trained
    rows, one for the null rows (which calibrate, and claim nothing)."""
    head = head.copy()
    head["q"] = np.nan
    for is_null in (False, True):
        sel = (head["row"] == "null") == is_null
        head.loc[sel, "q"] = q_values(head.loc[sel, "d_trace_p"].to_numpy(float))
    head["mde"] = head["d_trace_mde"]
    head["significant"] = head["q"] < Q_LEVEL
    return head


def _eval_splits(rec: Records) -> list[str]:
    splits = []
    for df in rec.counts.values():
        splits += [s for s in df["split"].unique() if s not in splits]
    order = ["id", *OOD_SPLITS, "edge"]
    return sorted(splits, key=lambda s: order.index(s) if s in order else len(order))


def headline(rec: Records, th: Thresholds | None = None) -> pd.DataFrame:
    """One row per (algorithm row, training split, exposure, evaluated split), and the null rows
    (each base against its own re-sampling, row ``null``), with intervals and compute."""
    th = th or Thresholds()
    groups: dict[tuple, list[str]] = {}
    for name in rec.posts():
        r = rec.runs[name]
        groups.setdefault((r["row"], r.get("algorithm", ""), r["split"], r["exposure"]), []).append(name)
    rows = []
    for (row, algorithm, trained, exposure), names in sorted(groups.items()):
        compute = {
            "rollouts": float(np.mean([rec.runs[n]["counters"].get("rollouts", 0) for n in names])),
            "train_tokens": float(np.mean([rec.runs[n]["counters"].get("train_tokens", 0) for n in names])),
            "grad_steps": float(np.mean([rec.runs[n]["counters"].get("grad_steps", 0) for n in names])),
            "wall_s": float(np.mean([run_wall_seconds(rec.runs[n]["timings"]) for n in names])),
        }
        trends = [rec.trend(n)["trained"] for n in names]
        compute.update(runs_checked=sum(t is not None for t in trends), runs_trained=sum(t is True for t in trends))
        for split in _eval_splits(rec):
            pairs = [
                (
                    n,
                    _paired(rec.counts[rec.runs[n]["base"]], rec.counts[n], split, rec.tilt(n, th), th),
                    rec.tilt(n, th),
                )
                for n in names
            ]
            cell = _cell(pairs, th)
            rows.append(
                {
                    "row": row,
                    "algorithm": algorithm,
                    "trained_on": trained,
                    "exposure": exposure,
                    "exposure_label": rec.exposure_label(names[0]),
                    "split": split,
                    "exposure_frac": _axis_exposure(rec, names[0], split),
                    **cell,
                    **compute,
                }
            )
    by_exposure: dict[str, list[str]] = {}
    for name in rec.bases():
        by_exposure.setdefault(rec.runs[name]["exposure"], []).append(name)
    for exposure, names in sorted(by_exposure.items()):
        for split in _eval_splits(rec):
            pairs = [
                (n, _paired(rec.counts[n], rec.null[n], split, rec.tilt(n, th), th), rec.tilt(n, th)) for n in names
            ]
            rows.append(
                {
                    "row": "null",
                    "algorithm": "base re-sampled",
                    "trained_on": "-",
                    "exposure": exposure,
                    "exposure_label": rec.exposure_label(names[0]),
                    "split": split,
                    "exposure_frac": _axis_exposure(rec, names[0], split),
                    **_cell(pairs, th),
                    "rollouts": 0.0,
                    "train_tokens": 0.0,
                    "grad_steps": 0.0,
                    "wall_s": 0.0,
                    "runs_checked": 0,
                    "runs_trained": 0,
                }
            )
    return _with_q_values(pd.DataFrame(rows))


def _axis_exposure(rec: Records, name: str, split: str) -> float:
    axis = split.removeprefix("ood_")
    return rec.exposure_of(name, axis) if axis in AXES else float("nan")


def _family_groups(rec: Records, rows: list[str]) -> dict[tuple[str, str, str], list[str]]:
    """(row, trained on, exposure) -> its runs, one per seed; the null's are the bases."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for name, r in sorted(rec.runs.items()):
        if r["kind"] == "post" and r["row"] in rows:
            out.setdefault((r["row"], r["split"], r["exposure"]), []).append(name)
        elif r["kind"] == "base":
            out.setdefault(("null", "-", r["exposure"]), []).append(name)
    return out


def family_cells(rec: Records, head: pd.DataFrame, th: Thresholds, rows: list[str]) -> pd.DataFrame:
    """``rows``' cells on each OOD axis, one family at a time (the axis's panel of the gain plot): the change with
    its interval, made exactly as a headline cell is (``_cell``) but over one family's problems. Only the cells
    the plot draws: each row trained on the axis or on ID, and the null."""
    frac = head.set_index(["exposure", "split"])["exposure_frac"].groupby(level=[0, 1]).first()
    out = []
    for (row, trained, exposure), names in _family_groups(rec, rows).items():
        for split in [s for s in _eval_splits(rec) if s in OOD_SPLITS]:
            if trained not in ("-", "id", split):
                continue
            for family in sorted(set(rec.counts[names[0]]["family"])):
                pairs = []
                for n in names:
                    r = rec.runs[n]
                    base, post = (
                        (rec.counts[r["base"]], rec.counts[n]) if row != "null" else (rec.counts[n], rec.null[n])
                    )
                    pairs.append(
                        (
                            n,
                            _paired(
                                base[base["family"] == family],
                                post[post["family"] == family],
                                split,
                                rec.tilt(n, th),
                                th,
                            ),
                            rec.tilt(n, th),
                        )
                    )
                cell = _cell(pairs, th)
                out.append(
                    {
                        "row": row,
                        "trained_on": trained,
                        "exposure": exposure,
                        "exposure_frac": float(frac.get((exposure, split), np.nan)),
                        "split": split,
                        "family": family,
                        "d_trace": cell["d_trace"],
                        "d_trace_lo": cell["d_trace_lo"],
                        "d_trace_hi": cell["d_trace_hi"],
                    }
                )
    return pd.DataFrame(out)


def support_rows(rec: Records, th: Thresholds | None = None) -> pd.DataFrame:
    """Every metric of the support comparison, per post run and (family, split), against its base."""
    frames = []
    for name in rec.posts():
        r = rec.runs[name]
        beta = (r.get("algorithm_config") or {}).get("beta")
        table = support_table(
            rec.counts[r["base"]],
            rec.counts[name],
            th,
            float(beta) if isinstance(beta, (int, float)) and beta > 0 else None,
        )
        frames.append(
            table.assign(run=name, row=r["row"], trained_on=r["split"], exposure=r["exposure"], seed=r["seed"])
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ----------------------------------------------------------------------------- text


def _signed(v: float) -> str:
    return "n/a" if v != v else f"{v:+.3f}"


def _delta_cell(r) -> str:
    """The change with its interval and minimum detectable effect; bold where its q-value is under 0.05."""
    if r["trace_base"] == 0 and r["trace_post"] == 0:  # a floor, not a certainty: no interval to give
        return f"0 -> 0 (no trace right; mde {r['mde']:.3f})"
    if r["d_trace_lo"] != r["d_trace_lo"]:
        why = "one problem" if r["problems"] < 2 * r["seeds"] else "every sample alike in both models"
        return f"{_signed(r['d_trace'])} (no interval: {why})"
    text = f"{_signed(r['d_trace'])} [{_signed(r['d_trace_lo'])}, {_signed(r['d_trace_hi'])}]"
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


def _control_spec(rec: Records) -> tuple[str, str, list[str]]:
    """The suite file's ``positive_control`` (row, split, exposure levels; defaults: grpo on id, every level)."""
    from ..suite.suite import PositiveControl, read_suite_file

    try:
        given = read_suite_file(rec.suite).get("positive_control") or {}
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
        return "-" if lo != lo else f"[{_signed(lo)}, {_signed(hi)}]"

    shown = pd.DataFrame(
        {
            "exposure": control["exposure_label"],
            "seeds": control["seeds"],
            "reward at start": control["start"].map(lambda v: f"{v:.3f}"),
            "rise [95%]": [
                f"{_signed(r.rise)} {interval(r.low, r.high)}" + (" (over steps)" if r.seeds == 1 else "")
                for r in control.itertuples()
            ],
            "needed": control["needed"].map(lambda v: f"{v:.3f}"),
            "held-out pass@1 change [95%]": [
                f"{_signed(r.heldout_change)} {interval(r.heldout_lo, r.heldout_hi)}" for r in control.itertuples()
            ],
            "control": [
                "not judged (one seed)" if r.status == "one seed" else r.status + (f" ({r.reason})" if r.reason else "")
                for r in control.itertuples()
            ],
        }
    )
    return _markdown_table(shown)


def _control_text(rec: Records, control: pd.DataFrame) -> str:
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


def _markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def tables(rec: Records, head: pd.DataFrame) -> dict[str, pd.DataFrame]:
    splits = [s for s in _eval_splits(rec) if s != "edge"]
    ordered = pd.concat([head[head["row"] != "null"], head[head["row"] == "null"]])
    return {
        "gain": _wide(ordered, _delta_cell, splits, compute=True),
        "expansion": _wide(ordered[ordered["row"] != "null"], _expansion_cell, splits, compute=False),
    }


def _suite_text(rec: Records) -> dict:
    from ..suite.suite import read_suite_file

    try:
        data = read_suite_file(rec.suite)
    except OodBenchError:
        data = {}
    return {"description": data.get("description", ""), "left_out": data.get("left_out", "")}


CALIBRATION = "calibration"


def _calibration_counts(rec: Records) -> dict[str, dict[int, pd.DataFrame]]:
    """Each base's evaluations by sampling seed: the records' 0 (``eval/``) and 1 (``null/``), and the extra
    seeds of ``calibration/<base>/s<seed>/`` (``ood-bench calibrate``) where the suite folder has them."""
    out = {}
    for name in rec.bases():
        seeds = {0: rec.counts[name], 1: rec.null[name]}
        weights = _scored_weights(rec.root / "records" / name / "eval")
        for folder in sorted((rec.root / CALIBRATION / name).glob("s*")):
            if folder.name[1:].isdigit() and (folder / "eval.json").is_file():
                if _scored_weights(folder) != weights:  # a base pretrained again: its old nulls are another model's
                    raise OodBenchError(
                        f"calibration {str(folder)!r} scored other weights than the record of base {name!r}: "
                        f"run `ood-bench calibrate {rec.suite} --sampling-seeds ...` again (or remove it)"
                    )
                seeds[int(folder.name[1:])] = load_counts(folder)
        out[name] = seeds
    return out


def _scored_weights(folder: Path) -> str | None:
    """The sha256 of the checkpoint an evaluation folder scored (its ``eval.json``)."""
    return json.loads((folder / "eval.json").read_text()).get("checkpoint_sha256")


def calibration(rec: Records, th: Thresholds | None = None) -> pd.DataFrame:
    """The board's intervals on real nulls: each base against itself re-sampled, in disjoint pairs of sampling
    seeds (0-1, 2-3, 4-5, ...), so the null boards are independent; one cell per (pair, exposure, split), over
    the bases of that exposure, exactly as a headline cell is made. An interval that excludes 0 here is a
    false positive."""
    th = th or Thresholds()
    counts = _calibration_counts(rec)
    seeds = sorted(set.intersection(*(set(c) for c in counts.values()))) if counts else []
    rows = []
    for a, b in zip(seeds[0::2], seeds[1::2]):
        by_exposure: dict[str, list[str]] = {}
        for name in rec.bases():
            by_exposure.setdefault(rec.runs[name]["exposure"], []).append(name)
        for exposure, names in sorted(by_exposure.items()):
            for split in _eval_splits(rec):
                pairs = [(n, _paired(counts[n][a], counts[n][b], split, None, th), None) for n in names]
                cell = _cell(pairs, th)
                tested = cell["d_trace_lo"] == cell["d_trace_lo"]
                rows.append(
                    {
                        "seeds": f"{a}-{b}",
                        "exposure": exposure,
                        "split": split,
                        "bases": len(names),
                        "d_trace": cell["d_trace"],
                        "d_trace_lo": cell["d_trace_lo"],
                        "d_trace_hi": cell["d_trace_hi"],
                        "p": cell["d_trace_p"],
                        "tested": tested,
                        "false_positive": bool(tested and (cell["d_trace_lo"] > 0 or cell["d_trace_hi"] < 0)),
                    }
                )
    return pd.DataFrame(rows)


def _calibration_text(cal: pd.DataFrame) -> str:
    if cal.empty or not cal["tested"].any():
        return (
            "No calibration data in this suite folder: `ood-bench calibrate SUITE --sampling-seeds 2 3 4 5` "
            "re-samples each published base, and this section then reports how often the intervals exclude 0 "
            "on those nulls.\n"
        )
    tested, fp = int(cal["tested"].sum()), int(cal["false_positive"].sum())
    lo, hi = wilson_interval(fp, tested)
    pairs = ", ".join(sorted(set(cal["seeds"])))
    return (
        f"Each base against itself re-sampled, in disjoint pairs of sampling seeds ({pairs}; seeds 2 and up "
        f"from `calibration/`), scored exactly as a headline cell: **{fp} of {tested} null intervals exclude 0, "
        f"a false-positive rate of {fp / tested:.3f} [{lo:.3f}, {hi:.3f}]** (Wilson 95%), against the nominal "
        f"0.05. (Cells where no sample of either evaluation was right have no interval and are not counted.)\n"
    )


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


def _readme(rec: Records, head: pd.DataFrame, verdict_block: str, cal: pd.DataFrame, control: pd.DataFrame) -> str:
    t = tables(rec, head)
    info = _suite_text(rec)
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
    out.write(_control_text(rec, control) if not control.empty else "")
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
    out.write(_markdown_table(t["gain"]) + "\n\n")
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
    out.write(_markdown_table(t["expansion"]) + "\n\n")
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
    out.write("\n## Calibration on real nulls\n\n" + _calibration_text(cal))
    if info["left_out"]:
        out.write(f"\n**Left out of this suite, and why:** {info['left_out']}\n")
    return out.getvalue()


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _json(
    head: pd.DataFrame,
    support: pd.DataFrame,
    rec: Records,
    found: list,
    tilts: pd.DataFrame,
    cal: pd.DataFrame,
    per_seed: pd.DataFrame | None = None,
    control: pd.DataFrame | None = None,
) -> str:
    def clean(df):
        return json.loads(df.to_json(orient="records", double_precision=6)) if len(df) else []

    runs = {
        n: {
            **{
                k: r.get(k)
                for k in (
                    "kind",
                    "key",
                    "base",
                    "row",
                    "split",
                    "exposure",
                    "seed",
                    "algorithm",
                    "counters",
                    "timings",
                    "git_commit",
                    "git_dirty",
                    "results_version",
                )
            },
            "record_sha256": record_digest(rec.root / "records" / n),
        }
        for n, r in sorted(rec.runs.items())
    }
    return (
        json.dumps(
            {
                "suite": rec.suite,
                "headline": clean(head),
                "support": clean(support),
                "runs": runs,
                "verdicts": [v.as_dict() for v in found],
                "positive_control": clean(control) if control is not None else [],
                "tilts": clean(tilts),
                "calibration": clean(cal),
                # each headline cell's seeds, one line per (run, evaluated split): what the page's drill-down shows
                "per_seed": clean(per_seed) if per_seed is not None else [],
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


# ----------------------------------------------------------------------------- plots


def png_digest(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return (getattr(im, "text", None) or im.info).get(DIGEST_KEY)
    except Exception:  # a missing or damaged plot is simply stale
        return None


# ----------------------------------------------------------------------------- write and check


def render(
    root: Path, allow_dirty: bool = False, expected: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, tuple]]:
    """The text files (by name) and the plot data (by plot) of a suite folder's leaderboard."""
    rec = Records(root, allow_dirty, expected)
    th = Thresholds()
    head = headline(rec, th)
    support = support_rows(rec, th)
    expansions = verdicts.run_expansions(rec, th)
    control = positive_control(rec, head)
    status, why = control_status(control)
    withheld = f"the RL positive control failed ({why})" if status == "failed" else ""
    found = [] if withheld else verdicts.verdicts(rec, head, expansions)
    block = verdicts.markdown(rec.suite, found, withheld)
    cal = calibration(rec, th)
    readme = _readme(rec, head, block, cal, control)
    # what the plots and the page draw beyond the tables: each seed's values, each family's cells, each problem
    per_seed = board_data.seed_rows(rec, th)
    families = family_cells(rec, head, th, board_data.headline_rows(rec))
    data = board_data.plot_data(rec, head, th, board_data.seed_rows(rec, th, by_family=True), families)
    texts = {
        README: readme,
        CSV: _csv(head),
        JSON: _json(head, support, rec, found, expansions, cal, per_seed, control),
    }
    extra = {"rec": rec, "head": head, "data": data, "readme": readme, "verdicts": block, "per_seed": per_seed}
    return texts, {**extra, "runs": board_data.run_rows(rec, th), "problems": board_data.problem_blob(rec, th)}


def _page(extra: dict, pngs: dict[str, bytes]) -> str:
    from . import board_page

    rec = extra["rec"]
    return board_page.page(
        rec,
        extra["head"],
        extra["per_seed"],
        extra["runs"],
        extra["problems"],
        pngs,
        extra["readme"],
        splits=[s for s in _eval_splits(rec) if s != "edge"],
        info=_suite_text(rec),
        files=PLOTS,
    )


def write(root: Path, allow_dirty: bool = False, expected: dict[str, str] | None = None) -> Path:
    root = Path(root)
    texts, extra = render(root, allow_dirty, expected)
    from . import board_plots

    pngs = {name: board_plots.png(name, extra["data"][name]) for name in PLOTS}
    for name, data in pngs.items():
        atomic_write_bytes(root / PLOTS[name], data)
    for name, text in texts.items():
        atomic_write_text(root / name, text)
    atomic_write_text(root / HTML, _page(extra, pngs))
    quoting = _quoting_readme(root, extra["rec"].suite)
    if quoting is not None:  # the project README quotes the block verbatim: renew the quote with the board
        text = quoting.read_text()
        atomic_write_text(quoting, text.replace(verdicts.block_in(text, extra["rec"].suite), extra["verdicts"]))
    atomic_write_json(
        root / RENDERED,
        {"inputs": _inputs_digest(root, allow_dirty, expected), "outputs": _outputs_digest(root, extra["rec"].suite)},
    )
    return root / README


RENDERED = "rendered.json"  # what the board was last rendered from, and what that gave: --check's fast path


def _inputs_digest(root: Path, allow_dirty: bool, expected: dict[str, str] | None) -> str:
    """sha256 of everything a board is made from: every file under ``records/`` and ``calibration/``, the
    code of this package (a change to how records are read re-renders), and the check's own arguments."""
    h = hashlib.sha256(json.dumps([allow_dirty, sorted((expected or {}).items())]).encode())
    for folder in (root / "records", root / CALIBRATION, Path(__file__).parents[1]):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(f"{path.relative_to(folder).as_posix()}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _outputs_digest(root: Path, suite: str) -> dict[str, str | None]:
    """sha256 of each published file of the board (and of the verdict block a README quotes)."""
    out = {}
    for name in (README, CSV, JSON, HTML, *PLOTS.values()):
        path = root / name
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    quoting = _quoting_readme(root, suite)
    if quoting is not None:
        out["quoted verdicts"] = hashlib.sha256(verdicts.block_in(quoting.read_text(), suite).encode()).hexdigest()
    return out


def _unchanged_since_rendered(root: Path, allow_dirty: bool, expected: dict[str, str] | None) -> bool:
    """True when the inputs are the ones the board was rendered from and no published file changed since:
    then nothing can be stale, and the check needs no rendering."""
    try:
        made = json.loads((root / RENDERED).read_text())
        suite = json.loads((root / JSON).read_text())["suite"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return made.get("inputs") == _inputs_digest(root, allow_dirty, expected) and made.get("outputs") == _outputs_digest(
        root, suite
    )


def stale(root: Path, allow_dirty: bool = False, expected: dict[str, str] | None = None) -> list[Path]:
    """Files of the leaderboard that differ from what the records give (missing ones included). Fast when
    neither the inputs nor any published file changed since the board was rendered; else renders again and
    compares, number by number at ``numeric_text``'s tolerance."""
    root = Path(root)
    if _unchanged_since_rendered(root, allow_dirty, expected):
        return []
    texts, extra = render(root, allow_dirty, expected)
    out = [
        root / name
        for name, text in texts.items()
        if not (root / name).is_file() or not same_up_to_rounding((root / name).read_text(errors="replace"), text)
    ]
    from .board_plots import digest

    for name, file in PLOTS.items():
        if png_digest(root / file) != digest(extra["data"][name]):
            out.append(root / file)
    from .board_page import same_page

    page = root / HTML
    if not page.is_file() or not same_page(page.read_text(errors="replace"), _page(extra, {n: b"" for n in PLOTS})):
        out.append(page)
    quoting = _quoting_readme(root, rec_suite := extra["rec"].suite)
    if quoting is not None and not same_up_to_rounding(
        verdicts.block_in(quoting.read_text(), rec_suite) or "", extra["verdicts"]
    ):
        out.append(quoting)
    return out


def _quoting_readme(root: Path, suite: str) -> Path | None:
    """The project README beside ``leaderboards/``, when it quotes this suite's verdict block."""
    readme = Path(root).resolve().parent.parent / README
    if readme.is_file() and verdicts.block_in(readme.read_text(errors="replace"), suite) is not None:
        return readme
    return None


def record_digest(folder: Path) -> str:
    """sha256 of a run's ``record.json`` (its per-problem files are covered by their own manifests)."""
    return hashlib.sha256((Path(folder) / RECORD).read_bytes()).hexdigest()


def changed_records(root: Path) -> list[str]:
    """Runs whose ``record.json`` differs from the one the committed leaderboard was made from (an edit,
    or a run made again): named, so a reviewer looks at those records, not only at the tables."""
    try:
        made_from = json.loads((Path(root) / JSON).read_text()).get("runs", {})
    except (OSError, ValueError, AttributeError):
        return []
    out = []
    for name, entry in made_from.items():
        folder = Path(root) / "records" / name
        old = entry.get("record_sha256") if isinstance(entry, dict) else None
        if old and (folder / RECORD).is_file() and record_digest(folder) != old:
            out.append(name)
    return out


def is_suite_folder(root: Path) -> bool:
    return any(Path(root).glob(f"records/*/{RECORD}"))


def expected_keys(name: str, root: Path) -> dict[str, str]:
    """Run name -> key of an embedded suite's grid, when ``name`` is one and ``root`` is its folder."""
    from ..suite.suite import SUITE_DIR, expand, load_suite

    if Path(root).name != name or not (SUITE_DIR / f"{name}.yaml").is_file():
        return {}
    return {s.name: s.key for s in expand(load_suite(name))}
