"""The board's numbers: each headline cell (row, training split, exposure, evaluated split) made from its seeds'
paired problems, a change with its interval over seeds, problems and sampling (``board_stats``) and the
expansion beyond each run's tilt; the null rows (each base against its own re-sampling); Benjamini-Hochberg
q-values and minimum detectable effects; the same cell one family at a time for the gain plot
(``family_cells``); and every support metric per post run, family and split (``support_rows``). An expansion
rate's interval is over seeds (Student's t), never narrower than the Wilson interval of its pooled counts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..evaluation.expansion import Tilt, beyond_tilt, threshold_expanded
from ..evaluation.support import Thresholds, merge_records, support_table, wilson_interval
from ..storage.run_records import run_wall_seconds
from ..tasks.base import AXES
from .board_stats import Q_LEVEL, mean_change, q_values, rate_change
from .records import OOD_SPLITS, Records, eval_splits


def _seed_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and Student's t 95% interval over seeds (for expansion rates, which have no problem pairing)."""

    v = np.asarray(values, float)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(v) - 1)) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def paired(
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


def cell_stats(pairs: list[tuple[str, pd.DataFrame, Tilt | None]], th: Thresholds, key: str = "") -> dict:
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
        for split in eval_splits(rec):
            pairs = [
                (
                    n,
                    paired(rec.counts[rec.runs[n]["base"]], rec.counts[n], split, rec.tilt(n, th), th),
                    rec.tilt(n, th),
                )
                for n in names
            ]
            cell = cell_stats(pairs, th)
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
        for split in eval_splits(rec):
            pairs = [
                (n, paired(rec.counts[n], rec.null[n], split, rec.tilt(n, th), th), rec.tilt(n, th)) for n in names
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
                    **cell_stats(pairs, th),
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
    its interval, made exactly as a headline cell is (``cell_stats``) but over one family's problems. Only the cells
    the plot draws: each row trained on the axis or on ID, and the null."""
    frac = head.set_index(["exposure", "split"])["exposure_frac"].groupby(level=[0, 1]).first()
    out = []
    for (row, trained, exposure), names in _family_groups(rec, rows).items():
        for split in [s for s in eval_splits(rec) if s in OOD_SPLITS]:
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
                            paired(
                                base[base["family"] == family],
                                post[post["family"] == family],
                                split,
                                rec.tilt(n, th),
                                th,
                            ),
                            rec.tilt(n, th),
                        )
                    )
                cell = cell_stats(pairs, th)
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
