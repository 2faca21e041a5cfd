"""The leaderboard's four plots, each answering one question, drawn with matplotlib from ``board_data``'s frames.

- ``gain_vs_exposure.png``: does post-training gain on an OOD axis, and does that depend on how much of the
  axis the base saw in pretraining? One panel per axis and family; the headline rows (GRPO, the SFT control,
  the base-vs-base null) strong, every seed behind its mean and interval, the other rows faded.
- ``training_curves.png``: did each run train? One panel per row and training split; reward, KL and
  entropy stacked on one step axis.
- ``pass_at_k.png``: does post-training lift pass@1 only, or pass@k for large k too (reweighting sharpens
  pass@1 and can lower pass@k)? One panel per split and exposure.
- ``q_post_vs_q_base.png``: is the change a tilt of the base? Every problem's exact log-odds before and after,
  with each run's fitted tilt (``expansion``) and the bound a problem must rise beyond to count as expansion.

Every legend sits outside the panels (a figure legend placed by the constrained layout), so no legend can hide
data; the colours are Okabe and Ito's colour-blind-safe set. ``tests/test_board_plots.py`` checks the legends
of the published figures against every artist they draw.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image, PngImagePlugin

from ..evaluation.expansion import LOGIT_CLIP
from ..evaluation.support import Thresholds
from ..palette import BLACK, BLUE, GREEN, ORANGE, PURPLE, SKY, VERMILLION, YELLOW
from .board_data import NULL, OOD_SPLITS

ROW_COLOURS = {"grpo": VERMILLION, "sft": BLUE, NULL: "#6E6E6E"}
SPARE_ROW_COLOURS = [PURPLE, GREEN, ORANGE, SKY]  # headline rows of a suite without grpo or sft
EXPOSURE_COLOURS = [ORANGE, SKY, GREEN, PURPLE, YELLOW, BLACK]  # in order of exposure
FADED = "#BBBBBB"
SMOOTHING = 5  # steps: the training curves' rolling mean (centred), stated on the plot
DPI = 90
DIGEST_KEY = "ood-bench-data-sha256"  # the PNG text chunk that holds what the plot draws (``digest``)


def _row_colour(row: str, rows: list[str]) -> str:
    return ROW_COLOURS.get(row) or SPARE_ROW_COLOURS[rows.index(row) % len(SPARE_ROW_COLOURS)]


def _exposure_colours(order: list[str]) -> dict[str, str]:
    return {e: EXPOSURE_COLOURS[i % len(EXPOSURE_COLOURS)] for i, e in enumerate(order)}


def _splits(present, with_id: bool) -> list[str]:
    """The splits in board order (ID first, then the axes); a split named elsewhere goes last."""
    order = (["id"] if with_id else []) + OOD_SPLITS
    present = set(present)
    return [s for s in order if s in present] + sorted(s for s in present if s not in order and (with_id or s != "id"))


def _outside_legend(fig, handles, columns: int = 4) -> None:
    """One legend for the figure, below every panel (the constrained layout makes room for it there), so it
    covers neither data nor the title above."""
    fig.legend(handles=handles, loc="outside lower center", ncols=min(columns, len(handles)), fontsize=8, frameon=False)


# ----------------------------------------------------------------------------- gain against exposure


def draw_gain(plt, cells: pd.DataFrame, seeds: pd.DataFrame, faded: pd.DataFrame):
    splits = _splits(cells["split"], with_id=False) if len(cells) else OOD_SPLITS[:1]
    families = sorted(set(cells["family"])) if len(cells) else ["all"]
    rows = [r for r in dict.fromkeys(cells["row"]) if r != NULL] if len(cells) else []
    series = [(row, kind) for row in rows for kind in ("axis", "id")] + [(NULL, "-")]
    fig, axes = plt.subplots(
        len(families),
        len(splits),
        figsize=(2.9 * len(splits) + 2.9, 2.6 * len(families) + 0.9),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    # the y-range comes from the headline rows (their intervals and seeds): a faded row may leave it
    strong = np.concatenate(
        [cells[c].to_numpy(float) for c in ("d_trace", "d_trace_lo", "d_trace_hi")] + [seeds["d_trace"].to_numpy(float)]
    )
    strong = strong[np.isfinite(strong)]
    lo, hi = (float(strong.min()), float(strong.max())) if len(strong) else (-0.1, 0.1)
    pad = max(0.08 * (hi - lo), 0.01)
    for i, family in enumerate(families):
        for j, split in enumerate(splits):
            ax = axes[i][j]
            here = cells[(cells["split"] == split) & (cells["family"] == family)]
            levels = here[["exposure", "exposure_frac"]].drop_duplicates().sort_values(["exposure_frac", "exposure"])
            x = {e: k for k, e in enumerate(levels["exposure"])}
            ax.axhline(0, color="0.45", linewidth=0.8, zorder=0)
            # side by side within an exposure, the series this panel has (a row not trained on the axis has none)
            present = [
                (row, kind)
                for row, kind in series
                if ((here["row"] == row) & (here["trained_on"] == (split if kind == "axis" else kind))).any()
            ]
            offsets = dict(zip(present, np.linspace(-0.27, 0.27, len(present)) if len(present) > 1 else [0.0]))
            for _, g in faded[(faded["split"] == split) & (faded["family"] == family)].groupby(["row", "trained_on"]):
                g = g[g["exposure"].isin(x)].sort_values("exposure_frac")
                ax.plot([x[e] for e in g["exposure"]], g["d_trace"], color=FADED, linewidth=0.9, zorder=1)
            for row, kind in series:
                trained = split if kind == "axis" else kind
                colour = _row_colour(row, rows) if row != NULL else ROW_COLOURS[NULL]
                c = here[(here["row"] == row) & (here["trained_on"] == trained)]
                c = c[c["exposure"].isin(x)].sort_values("exposure_frac")
                if (row, kind) not in offsets or c.empty:
                    continue
                s = seeds[
                    (seeds["row"] == row)
                    & (seeds["trained_on"] == trained)
                    & (seeds["split"] == split)
                    & (seeds["family"] == family)
                    & seeds["exposure"].isin(x)
                ]
                ranks = {seed: k for k, seed in enumerate(sorted(set(s["seed"])))}
                spread = 0.03 * (np.array([ranks[v] for v in s["seed"]]) - (len(ranks) - 1) / 2)
                ax.scatter(
                    np.array([x[e] for e in s["exposure"]]) + offsets[row, kind] + spread,
                    s["d_trace"],
                    s=11,
                    color=colour,
                    alpha=0.35,
                    linewidths=0,
                    zorder=2,
                )
                xs = np.array([x[e] for e in c["exposure"]]) + offsets[row, kind]
                mean = c["d_trace"].to_numpy(float)
                err = np.vstack([mean - c["d_trace_lo"].to_numpy(float), c["d_trace_hi"].to_numpy(float) - mean])
                ax.errorbar(
                    xs,
                    mean,
                    yerr=np.nan_to_num(err),  # a floor (no sample right in either model) has no interval
                    color=colour,
                    marker="D" if row == NULL else "o",
                    markersize=4.5,
                    markerfacecolor="white" if kind == "id" else colour,
                    linestyle="none" if row == NULL else ("--" if kind == "id" else "-"),
                    linewidth=1.3,
                    capsize=2.5,
                    zorder=3,
                )
            ax.set_xticks(list(x.values()), [f"{100 * f:g}%" for f in levels["exposure_frac"]])
            ax.set_xlim(-0.5, max(len(x), 1) - 0.5)
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_title(f"{split} ({family})", fontsize=9)
            ax.tick_params(labelsize=8)
            if i == len(families) - 1:
                ax.set_xlabel("pretraining exposure to this axis", fontsize=8)
            if j == 0:
                ax.set_ylabel("change in trace pass@1", fontsize=8)
    handles = []
    for row in rows:
        colour = _row_colour(row, rows)
        handles += [
            Line2D([], [], color=colour, marker="o", markersize=4.5, label=f"{row}, trained on this axis"),
            Line2D(
                [],
                [],
                color=colour,
                marker="o",
                markersize=4.5,
                markerfacecolor="white",
                linestyle="--",
                label=f"{row}, trained on ID",
            ),
        ]
    handles += [
        Line2D(
            [],
            [],
            color=ROW_COLOURS[NULL],
            marker="D",
            markersize=4.5,
            linestyle="none",
            label="null: base vs itself re-sampled",
        ),
        Line2D(
            [],
            [],
            color="0.3",
            marker="|",
            markersize=9,
            linestyle="none",
            label="95% interval (seeds, problems, samples)",
        ),
        Line2D(
            [], [], color="0.3", marker="o", markersize=3.5, alpha=0.35, linestyle="none", label="one pretraining seed"
        ),
    ]
    if len(faded):
        handles.append(Line2D([], [], color=FADED, linewidth=0.9, label="other rows (mean; may leave the range)"))
    _outside_legend(fig, handles, columns=4)
    fig.suptitle("Change in trace pass@1 on each OOD axis against the base's pretraining exposure to it", fontsize=10)
    return fig


# ----------------------------------------------------------------------------- Q_post against Q_base


def draw_tilt(plt, points: pd.DataFrame, tilts: pd.DataFrame, exposures: pd.DataFrame):
    th = Thresholds()
    order = list(exposures["exposure"])
    colours = _exposure_colours(order)
    rows = list(dict.fromkeys(tilts["row"])) if len(tilts) else []
    rows = sorted(rows, key=lambda r: (r not in ROW_COLOURS, r))
    splits = _splits(points["split"], with_id=True) if len(points) else ["id"]
    fig, axes = plt.subplots(
        max(len(rows), 1),
        len(splits),
        figsize=(2.8 * len(splits) + 3.2, 2.8 * max(len(rows), 1) + 0.7),
        squeeze=False,
        layout="constrained",
    )
    out_x, solved_y = math.log(th.outside / (1 - th.outside)), math.log(th.solved / (1 - th.solved))
    lo = -LOGIT_CLIP - 1
    top = float(np.nanmax(points[["x", "y"]].to_numpy(float))) if len(points) else 10.0
    hi = min(LOGIT_CLIP + 1, max(12.0, math.ceil(top) + 1))
    for i, row in enumerate(rows or ["-"]):
        for j, split in enumerate(splits):
            ax = axes[i][j]
            p = points[(points["row"] == row) & (points["split"] == split)]
            t = tilts[(tilts["row"] == row) & (tilts["split"] == split)]
            if p.empty:
                ax.set_axis_off()
                ax.set_title(f"{row} on {split}: no run", fontsize=9)
                continue
            ax.fill_between([lo, out_x], solved_y, hi, color=PURPLE, alpha=0.08, linewidth=0, zorder=0)
            for exposure in order:
                q = p[p["exposure"] == exposure]
                ax.scatter(q["x"], q["y"], s=4, color=colours[exposure], alpha=0.35, linewidths=0, zorder=2)
            flagged = p[p["expanded"].astype(bool)]
            ax.scatter(flagged["x"], flagged["y"], s=26, facecolors="none", edgecolors=BLACK, linewidths=0.8, zorder=4)
            ax.plot([lo, hi], [lo, hi], color="0.55", linewidth=0.8, zorder=1)
            fitted = t[t["fitted"].astype(bool)]
            for exposure in order:
                shift = fitted.loc[fitted["exposure"] == exposure, "tilt_mean"].mean()
                if shift == shift:
                    ax.plot([lo, hi], [lo + shift, hi + shift], color=colours[exposure], linewidth=1.4, zorder=3)
            bound = fitted["tilt_bound"][np.isfinite(fitted["tilt_bound"])].median()
            if bound == bound:
                ax.plot([lo, hi], [lo + bound, hi + bound], color=BLACK, linestyle="--", linewidth=1, zorder=3)
            ax.axvline(out_x, color="0.4", linestyle=":", linewidth=0.8, zorder=1)
            ax.axhline(solved_y, color="0.4", linestyle=":", linewidth=0.8, zorder=1)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_title(f"{row} on {split}: {len(flagged)} of {int((p['x'] < out_x).sum())} expanded", fontsize=9)
            ax.tick_params(labelsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel("logit Q_base (exact)", fontsize=8)
            if j == 0:
                ax.set_ylabel("logit Q_post (exact)", fontsize=8)
    handles = [
        Line2D([], [], color=colours[e], marker="o", markersize=4, linestyle="none", label=f"problem, exposure {e}")
        for e in order
    ] + [
        Line2D(
            [],
            [],
            color=BLACK,
            marker="o",
            markerfacecolor="none",
            markersize=6,
            linestyle="none",
            label="expanded beyond its run's tilt",
        ),
        Line2D([], [], color="0.55", linewidth=0.8, label="identity (no change)"),
        Line2D([], [], color="0.3", linewidth=1.4, label="fitted tilt, mean over seeds\n(colour: exposure)"),
        Line2D(
            [], [], color=BLACK, linestyle="--", linewidth=1, label="tilt bound (median run):\nexpansion rises above it"
        ),
        Line2D(
            [],
            [],
            color="0.4",
            linestyle=":",
            linewidth=0.8,
            label=f"Q_base = {th.outside:g} (outside left),\nQ_post = {th.solved:g} (solved above)",
        ),
        Patch(color=PURPLE, alpha=0.15, label="outside, then solved"),
    ]
    _outside_legend(fig, handles, columns=3)
    fig.suptitle(
        f"Each problem's exact gold-trace log-odds, on the split its run trained on (clipped at ±{LOGIT_CLIP:g})",
        fontsize=10,
    )
    return fig


# ----------------------------------------------------------------------------- pass@k


def draw_passk(plt, passk: pd.DataFrame, exposures: pd.DataFrame):
    order = [e for e in exposures["exposure"] if e in set(passk["exposure"])] or ["-"]
    splits = _splits(passk["split"], with_id=True) if len(passk) else ["id"]
    rows = [m for m in dict.fromkeys(passk["model"]) if m != "base"]
    rows = sorted(rows, key=lambda r: (r not in ROW_COLOURS, r))
    fig, axes = plt.subplots(
        len(order),
        len(splits),
        figsize=(2.5 * len(splits) + 2.9, 2.2 * len(order) + 0.8),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    ks = sorted(set(passk["k"])) or [1]
    for i, exposure in enumerate(order):
        for j, split in enumerate(splits):
            ax = axes[i][j]
            here = passk[(passk["exposure"] == exposure) & (passk["split"] == split)]
            lines = [("base", "-", BLACK, "-")] + [
                (row, trained, _row_colour(row, rows), "-" if trained == split else "--")
                for row in rows
                for trained in dict.fromkeys([split, "id"])
            ]
            for model, trained, colour, style in lines:
                g = here[(here["model"] == model) & (here["trained_on"] == trained)].sort_values("k")
                if len(g):
                    ax.plot(
                        g["k"],
                        g["value"],
                        color=colour,
                        linestyle=style,
                        marker="o",
                        markersize=3,
                        markerfacecolor="white" if style == "--" else colour,
                        linewidth=1.2,
                    )
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.minorticks_off()
            ax.set_ylim(0, 1)
            ax.set_title(f"{split}, exposure {exposure}", fontsize=9)
            ax.tick_params(labelsize=8)
            if i == len(order) - 1:
                ax.set_xlabel("k (samples)", fontsize=8)
            if j == 0:
                ax.set_ylabel("trace pass@k", fontsize=8)
    handles = [Line2D([], [], color=BLACK, marker="o", markersize=3, label="base")]
    for row in rows:
        colour = _row_colour(row, rows)
        handles += [
            Line2D([], [], color=colour, marker="o", markersize=3, label=f"{row}, trained on this split"),
            Line2D(
                [],
                [],
                color=colour,
                marker="o",
                markersize=3,
                markerfacecolor="white",
                linestyle="--",
                label=f"{row}, trained on ID",
            ),
        ]
    _outside_legend(fig, handles)
    fig.suptitle("Trace pass@k (unbiased, mean over problems and seeds): base against each headline row", fontsize=10)
    return fig


# ----------------------------------------------------------------------------- training curves

METRICS = {"reward": "reward", "kl_ref": "KL to ref (symlog)", "entropy": "entropy"}


def draw_curves(plt, curve: pd.DataFrame, exposures: pd.DataFrame):
    metrics = [m for m in METRICS if m in curve.columns and curve[m].notna().any()]
    groups = list(curve.groupby(["row", "trained_on"], sort=True)) if metrics else []
    groups.sort(key=lambda item: (item[0][0] not in ROW_COLOURS, item[0][0], item[0][1] != "id", item[0][1]))
    order = list(exposures["exposure"])
    colours = _exposure_colours(order)
    cols = max(1, min(4, len(groups)))
    rows = max(1, math.ceil(len(groups) / cols))
    fig = plt.figure(figsize=(3.2 * cols + 2.4, 0.3 + rows * (0.6 + 1.15 * max(len(metrics), 1))), layout="constrained")
    if not groups:
        fig.text(0.5, 0.5, "no post-training run logged a curve", ha="center")
        return fig
    grid = fig.add_gridspec(rows * len(metrics), cols)
    for g, ((row, trained), runs) in enumerate(groups):
        r, c = divmod(g, cols)
        first = None
        for m, metric in enumerate(metrics):
            ax = fig.add_subplot(grid[r * len(metrics) + m, c], sharex=first)
            first = first or ax
            for exposure, e in runs.groupby("exposure"):
                # each seed smoothed on its own steps, then the mean and range over seeds at each step
                by_seed = e.pivot_table(index="step", columns="seed", values=metric, aggfunc="mean").sort_index()
                wide = by_seed.rolling(SMOOTHING, center=True, min_periods=1).mean()
                colour = colours.get(exposure, BLACK)
                ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color=colour, alpha=0.2, linewidth=0)
                ax.plot(wide.index, wide.mean(axis=1), color=colour, linewidth=1.2)
            if metric == "kl_ref":
                ax.set_yscale("symlog", linthresh=1e-3)
            ax.tick_params(labelsize=7)
            ax.set_ylabel(METRICS[metric], fontsize=7)
            if m == 0:
                ax.set_title(f"{row} trained on {trained}", fontsize=9)
            if m < len(metrics) - 1:
                ax.tick_params(labelbottom=False)
            else:
                ax.set_xlabel("step", fontsize=7)
    handles = [Line2D([], [], color=colours[e], linewidth=1.2, label=f"exposure {e}") for e in order] + [
        Patch(color="0.5", alpha=0.3, label="range over pretraining seeds")
    ]
    _outside_legend(fig, handles)
    fig.suptitle(
        f"Training curves: mean over pretraining seeds, rolling mean over {SMOOTHING} steps (SFT logs none)",
        fontsize=10,
    )
    return fig


DRAW = {"gain": draw_gain, "tilt": draw_tilt, "passk": draw_passk, "curves": draw_curves}


def figure(name: str, data: tuple):
    """The named plot's matplotlib figure (for the PNG, and for the tests that read its layout)."""

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # late: only after matplotlib.use("Agg") has picked the headless backend

    with warnings.catch_warnings():  # many panels: the layout may warn that a margin is tight, which changes nothing
        warnings.simplefilter("ignore", UserWarning)
        fig = DRAW[name](plt, *data)
        fig.canvas.draw()
    return fig


def frames_digest(*frames: pd.DataFrame) -> str:
    """What a plot draws, to four significant digits: more than a plot can show, and few enough that the
    last-bit noise of another machine's arithmetic (see ``numeric_text``) leaves it alone."""
    h = hashlib.sha256()
    for df in frames:
        h.update(df.reset_index(drop=True).to_csv(index=False, float_format="%.4g", lineterminator="\n").encode())
    return h.hexdigest()


def digest(data: tuple) -> str:
    """What a plot draws (the digest of its frames) and how: with the text of this module, so a plot drawn by an
    older version of the drawing code reads stale as well (its newlines normalised: a checkout's line endings
    draw nothing)."""
    code = Path(__file__).read_text(encoding="utf-8").replace("\r\n", "\n")
    return hashlib.sha256(f"{frames_digest(*data)}\0{code}".encode()).hexdigest()


def png(name: str, data: tuple) -> bytes:
    """The named plot as a PNG carrying the digest of the data it draws (``--check`` compares digests).

    Stored with a palette of 256 colours (Pillow's median cut, no dithering): a plot has few colours beyond
    its antialiasing, and the file is a third of the RGBA one, in the folder and in the page that embeds it."""

    import matplotlib.pyplot as plt  # late: figure() picks the headless backend before pyplot loads

    fig = figure(name, data)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    with Image.open(buf) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    info = PngImagePlugin.PngInfo()
    info.add_text(DIGEST_KEY, digest(data))
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True, pnginfo=info)
    return out.getvalue()
