"""What the leaderboard's plots and page draw, read from a suite's records (a ``records.Records``, ``rec``).

The headline table pools seeds and families into one cell; a reader who wants to see what a cell is made of
needs the pieces: each seed's own change (``seed_rows``, also in ``leaderboard.json`` as ``per_seed``), each
family's own cell (``headline.family_cells``: the headline's statistic over one family's problems), and
each problem's exact gold-trace mass before and after (``problem_blob``, compact enough to embed in the page).
The plots' data frames (``plot_data``) are built from these; each plot's digest (``board_plots.digest``) is
taken over exactly the frames it draws. Nothing here imports ``suite_board`` or the modules it draws on
(``suite_board`` imports this module).
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from ..evaluation.examples import EXAMPLES, read_examples
from ..evaluation.expansion import LOGIT_CLIP, beyond_tilt, logit
from ..evaluation.metrics import pass_at_k_exact
from ..evaluation.support import Thresholds
from ..storage.run_records import run_wall_seconds
from ..tasks.base import AXES

OOD_SPLITS = [f"ood_{a}" for a in AXES]
HEADLINE_ROWS = ("grpo", "sft")  # the rows the paper's claims are about, drawn strong; "null" is drawn with them
NULL = "null"


def headline_rows(rec) -> list[str]:
    """The suite's headline rows: GRPO and the SFT control where it has them, else its first two rows."""
    rows = sorted({r["row"] for r in rec.runs.values() if r["kind"] == "post"})
    chosen = [r for r in HEADLINE_ROWS if r in rows]
    return chosen or rows[:2]


def _seed_frame(m: pd.DataFrame, keys: list[str], flagged: np.ndarray | None, th: Thresholds) -> pd.DataFrame:
    """A run's problems summed to one line per ``keys`` group (a seed's share of a cell)."""
    lq_b = m["gold_logprob_base"].to_numpy(float)
    frame = m.assign(
        trace_base=m["full_c_base"] / m["n"],
        trace_post=m["full_c_post"] / m["n"],
        answer_base=m["c_base"] / m["n"],
        answer_post=m["c_post"] / m["n"],
        outside=np.exp(lq_b) < th.outside,
        expanded=flagged if flagged is not None else np.zeros(len(m), bool),
    )
    out = frame.groupby(keys, sort=True).agg(
        problems=("uid", "size"),
        trace_base=("trace_base", "mean"),
        trace_post=("trace_post", "mean"),
        answer_base=("answer_base", "mean"),
        answer_post=("answer_post", "mean"),
        outside=("outside", "sum"),
        expanded=("expanded", "sum"),
    )
    out["d_trace"] = out["trace_post"] - out["trace_base"]
    out["d_answer"] = out["answer_post"] - out["answer_base"]
    if flagged is None:  # no tilt fitted: no count to give (as in the headline)
        out["expanded"] = np.nan
    return out.reset_index()


def seed_rows(rec, th: Thresholds, by_family: bool = False) -> pd.DataFrame:
    """One line per (run, evaluated split[, family]): that seed's trace pass@1 before and after and its change,
    its answer pass@1 change, its problems outside the base's support and those that expanded beyond its tilt.
    A headline cell's ``d_trace`` is the mean of its seeds' (the same problems in each seed); the null rows'
    seeds are each base against its own re-sampling. What belongs to the run rather than to a split (its
    compute, its tilt, whether it trained) is in ``run_rows``."""
    frames = []
    for name in sorted(rec.runs):
        r = rec.runs[name]
        m = rec.merged(name)
        tilt = rec.tilt(name, th)
        lq_b, lq_p = m["gold_logprob_base"].to_numpy(float), m["gold_logprob_post"].to_numpy(float)
        flagged = beyond_tilt(lq_b, lq_p, tilt, th.outside, th.solved) if tilt.fitted else None
        lines = _seed_frame(m, ["split", "family"] if by_family else ["split"], flagged, th)
        post = r["kind"] == "post"
        lines = lines.assign(
            row=r["row"] if post else NULL,
            trained_on=r["split"] if post else "-",
            exposure=r["exposure"],
            seed=r["seed"],
            run=name,
        )
        frames.append(lines)
    keys = ["row", "trained_on", "exposure", "split", *(["family"] if by_family else []), "seed"]
    values = ["run", "problems", "trace_base", "trace_post", "d_trace", "d_answer", "outside", "expanded"]
    out = pd.concat(frames, ignore_index=True)[keys + values]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def run_rows(rec, th: Thresholds) -> pd.DataFrame:
    """One line per run: its base, compute (as the headline's compute columns count it), fitted tilt and
    whether it trained; a base's line is its null (no compute, its tilt against its own re-sampling)."""
    rows = []
    for name in sorted(rec.runs):
        r = rec.runs[name]
        post = r["kind"] == "post"
        counters, tilt = r.get("counters") or {}, rec.tilt(name, th)
        rows.append(
            {
                "run": name,
                "base": r["base"] if post else name,
                "rollouts": float(counters.get("rollouts", 0)) if post else 0.0,
                "train_tokens": float(counters.get("train_tokens", 0)) if post else 0.0,
                "grad_steps": float(counters.get("grad_steps", 0)) if post else 0.0,
                "wall_s": run_wall_seconds(r.get("timings") or {}) if post else 0.0,
                "trained": rec.trend(name)["trained"] if post else None,
                "tilt_mean": tilt.mean,
                "tilt_bound": tilt.bound,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the plots' frames


def _gain(rec, head: pd.DataFrame, cells: pd.DataFrame, family_seeds: pd.DataFrame):
    rows = headline_rows(rec)
    frac = head.set_index(["exposure", "split"])["exposure_frac"].groupby(level=[0, 1]).first()
    ood = family_seeds[family_seeds["split"].isin(OOD_SPLITS)]
    on_axis_or_id = (ood["trained_on"] == "id") | (ood["trained_on"] == ood["split"])
    strong = (ood["row"].isin(rows) & on_axis_or_id) | (ood["row"] == NULL)
    seeds = ood[strong][["row", "trained_on", "exposure", "split", "family", "seed", "d_trace"]]
    # the other rows (faded): each cell's mean over seeds, trained on ID or on the panel's axis
    others = ood[~ood["row"].isin([*rows, NULL]) & on_axis_or_id]
    faded = others.groupby(["row", "trained_on", "exposure", "split", "family"], as_index=False)["d_trace"].mean()
    for df in (seeds, faded):
        df.insert(3, "exposure_frac", [float(frac.get((e, s), np.nan)) for e, s in zip(df["exposure"], df["split"])])
    return cells, seeds.reset_index(drop=True), faded


def _tilt(rec, th: Thresholds):
    """Each headline row's runs on the split they trained on: every problem's exact log-odds before and after
    (clipped where float32 log-probs carry no more), whether it expanded beyond the run's tilt, and each
    run's fitted tilt and bound."""
    points, tilts = [], []
    rows = headline_rows(rec)
    for name, r in sorted(rec.runs.items()):
        if r["kind"] != "post" or r["row"] not in rows:
            continue
        tilt = rec.tilt(name, th)
        m = rec.merged(name)
        m = m[m["split"] == r["split"]]
        lq_b, lq_p = m["gold_logprob_base"].to_numpy(float), m["gold_logprob_post"].to_numpy(float)
        flagged = beyond_tilt(lq_b, lq_p, tilt, th.outside, th.solved) if tilt.fitted else np.zeros(len(m), bool)
        key = {"row": r["row"], "split": r["split"], "exposure": r["exposure"], "seed": r["seed"]}
        points.append(
            pd.DataFrame({**key, "x": np.round(logit(lq_b), 3), "y": np.round(logit(lq_p), 3), "expanded": flagged})
        )
        tilts.append({**key, "fitted": tilt.fitted, "tilt_mean": tilt.mean, "tilt_bound": tilt.bound})
    columns = ["row", "split", "exposure", "seed", "x", "y", "expanded"]
    return (
        pd.concat(points, ignore_index=True) if points else pd.DataFrame(columns=columns),
        pd.DataFrame(tilts, columns=["row", "split", "exposure", "seed", "fitted", "tilt_mean", "tilt_bound"]),
    )


def _pass_at_k(rec) -> pd.DataFrame:
    """Unbiased trace pass@k (``full_c``) for k = 1, 2, 4, ..., n, averaged over problems and seeds: each base
    on every split, each headline row's runs on the split they trained on and, when trained on ID, on every
    split."""

    rows, strong = [], headline_rows(rec)
    for name, r in rec.runs.items():
        post = r["kind"] == "post"
        if post and r["row"] not in strong:
            continue
        for split, g in rec.counts[name].groupby("split"):
            if post and r["split"] not in ("id", split):
                continue
            n, k = int(g["n"].iloc[0]), 1
            while k <= n:
                value = float(np.mean([pass_at_k_exact(int(nn), int(c), k) for nn, c in zip(g["n"], g["full_c"])]))
                rows.append(
                    {
                        "model": r["row"] if post else "base",
                        "trained_on": r["split"] if post else "-",
                        "exposure": r["exposure"],
                        "split": split,
                        "k": k,
                        "value": value,
                    }
                )
                k *= 2
    columns = ["model", "trained_on", "exposure", "split", "k"]
    df = pd.DataFrame(rows, columns=[*columns, "value"])
    return df.groupby(columns, as_index=False)["value"].mean().round(6)


def _curves(rec) -> pd.DataFrame:
    """Every post-training run's logged curve (reward, KL to the reference, entropy by step); SFT logs none."""
    curves = []
    for name, r in sorted(rec.runs.items()):
        path = rec.root / "records" / name / "curves.csv"
        if r["kind"] == "post" and path.is_file() and path.stat().st_size:
            c = pd.read_csv(path)
            if len(c) and len(c.columns) > 1:
                curves.append(c.assign(row=r["row"], trained_on=r["split"], exposure=r["exposure"], seed=r["seed"]))
    return pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["row", "trained_on", "step"])


def plot_data(
    rec, head: pd.DataFrame, th: Thresholds, family_seeds: pd.DataFrame, family_cells: pd.DataFrame
) -> dict[str, tuple]:
    """Each plot's frames (digested into its PNG), by the keys of ``suite_board.PLOTS``: ``family_seeds`` from
    ``seed_rows(by_family=True)``, ``family_cells`` from ``headline.family_cells``."""
    cells, seeds, faded = _gain(rec, head, family_cells, family_seeds)
    # the exposure order of every plot: by exposure fraction, then name (e0, e2, e10, not e0, e10, e2)
    order = head.groupby("exposure")["exposure_frac"].max().fillna(0).reset_index()
    order = order.sort_values(["exposure_frac", "exposure"])["exposure"].tolist()
    exposures = pd.DataFrame({"exposure": order})
    return {
        "gain": (cells, seeds, faded),
        "tilt": (*_tilt(rec, th), exposures),
        "passk": (_pass_at_k(rec), exposures),
        "curves": (_curves(rec), exposures),
    }


# ----------------------------------------------------------------------------- the page's per-problem data

MISSING = 255  # a problem a post-trained run was not scored on (never, in a complete suite)
STEP = 0.25  # log-odds per code: 0.25 nats is finer than a small scatter can show


def _encode(values: np.ndarray) -> str:
    """Log-odds in [-LOGIT_CLIP, +LOGIT_CLIP] as one byte each (``STEP`` apart), base64: 1.3 bytes a problem."""
    codes = np.full(len(values), MISSING, np.uint8)
    ok = np.isfinite(values)
    codes[ok] = np.round((np.clip(values[ok], -LOGIT_CLIP, LOGIT_CLIP) + LOGIT_CLIP) / STEP).astype(np.uint8)
    return base64.b64encode(codes.tobytes()).decode()


def example_blob(rec) -> dict:
    """Each run's kept sample texts for the page's drill-down, by split: a few problems per family, the same
    problems for every run (``evaluation.examples``); a run recorded without them has none."""
    out: dict[str, dict[str, list]] = {}
    for name in sorted(rec.runs):
        for e in read_examples(rec.root / "records" / name / EXAMPLES):
            keep = {k: e[k] for k in ("family", "uid", "prompt", "gold", "sample", "answer_ok", "trace_ok")}
            out.setdefault(name, {}).setdefault(e["split"], []).append(keep)
    return out


def problem_blob(rec, th: Thresholds) -> dict:
    """Every run's problems for the page's scatter: per base and split, logit Q_base of its problems (sorted by
    family and id); per post-trained run and split, logit Q_post of the same problems in the same order, and
    the positions of those that expanded beyond the run's tilt. The null rows need none: a base's exact masses
    do not change when it is re-sampled."""
    bases, posts, expanded = {}, {}, {}
    order: dict[tuple[str, str], pd.DataFrame] = {}
    for name in rec.bases():
        bases[name] = {}
        counts = rec.counts[name]
        for split, g in counts.groupby("split", sort=True):
            g = g.sort_values(["family", "uid"])[["family", "uid", "gold_logprob"]].reset_index(drop=True)
            order[name, split] = g
            bases[name][split] = _encode(logit(g["gold_logprob"].to_numpy(float)))
    for name in rec.posts():
        r = rec.runs[name]
        tilt = rec.tilt(name, th)
        m = rec.merged(name)
        posts[name], expanded[name] = {}, {}
        for split, g in m.groupby("split", sort=True):
            if (r["base"], split) not in order:
                continue
            aligned = order[r["base"], split][["family", "uid"]].merge(
                g[["family", "uid", "gold_logprob_base", "gold_logprob_post"]], on=["family", "uid"], how="left"
            )
            lq_b, lq_p = aligned["gold_logprob_base"].to_numpy(float), aligned["gold_logprob_post"].to_numpy(float)
            posts[name][split] = _encode(logit(lq_p) if len(lq_p) else lq_p)
            if tilt.fitted:
                hit = beyond_tilt(lq_b, lq_p, tilt, th.outside, th.solved)  # a missing problem (NaN) is never flagged
                if hit.any():
                    expanded[name][split] = [int(i) for i in np.flatnonzero(hit)]
    return {"step": STEP, "clip": LOGIT_CLIP, "missing": MISSING, "bases": bases, "posts": posts, "expanded": expanded}
