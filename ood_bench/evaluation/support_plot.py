"""The support picture of one comparison: Q_post against Q_base on log-odds axes.

One panel per (family, split). Pure reweighting puts every problem on a line
parallel to the identity (shifted by the tilt); expansion shows as points that
start left of the *outside* threshold and end above the *solved* one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .support import TILT_BINS, TILT_CEILING, Thresholds, logit_from_logprob, merge_records


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def plot_support(
    base: pd.DataFrame,
    post: pd.DataFrame,
    table: pd.DataFrame,
    path: str | Path,
    thresholds: Thresholds | None = None,
    title: str = "",
) -> Path:
    """Draw the comparison into ``path`` (PNG, written atomically)."""
    # late: it loads matplotlib, which importing this module does not
    import matplotlib

    matplotlib.use("Agg")
    # late: it loads matplotlib, which importing this module does not
    import matplotlib.pyplot as plt

    th = thresholds or Thresholds()
    merged = merge_records(base, post)
    groups = list(merged.groupby(["family", "split"], sort=False))
    cols = min(3, len(groups))
    rows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    for ax, ((family, split), g) in zip(axes.flat, groups):
        # the plot shows problems far outside the support where they are (log-odds of -100 and below)
        x = logit_from_logprob(g["gold_logprob_base"].to_numpy(float), clip=1e3)
        y = logit_from_logprob(g["gold_logprob_post"].to_numpy(float), clip=1e3)
        row = table[(table["family"] == family) & (table["split"] == split)].iloc[0]
        lo, hi = min(x.min(), y.min()) - 1, max(x.max(), y.max()) + 1
        grid = np.linspace(lo, hi, 50)
        ax.scatter(x, y, s=6, alpha=0.45, color="tab:blue", label="problems")
        ax.plot(grid, grid, color="0.4", lw=1, label="identity (no change)")
        if np.isfinite(row["shift_slope"]):
            fit_x = np.linspace(max(lo, _logit(th.outside)), min(hi, _logit(TILT_CEILING)), 50)
            xm = x[(x >= _logit(th.outside)) & (x <= _logit(TILT_CEILING))].mean()
            ax.plot(
                fit_x,
                fit_x + row["shift_mean"] + row["shift_slope"] * (fit_x - xm),
                color="tab:orange",
                lw=1.5,
                label="fitted shift (mean + slope)",
            )
            ax.text(
                0.03,
                0.97,
                f"shift {row['shift_mean']:+.2f} (s.d. {row['shift_sd']:.2f})\n"
                f"slope {row['shift_slope']:+.2f} ± {row['shift_slope_se']:.2f}",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
            )
            q = np.exp(g["gold_logprob_base"].to_numpy(float))
            centres, means = [], []
            for b_lo, b_hi in zip(TILT_BINS[:-1], TILT_BINS[1:]):
                sel = (q > b_lo) & (q <= b_hi)
                if sel.sum() >= 3:
                    centres.append(x[sel].mean())
                    means.append(x[sel].mean() + (y[sel] - x[sel]).mean())
            ax.plot(centres, means, "s", color="tab:orange", ms=6, label="binned mean shift")
        if np.isfinite(row["shift_predicted"]):
            ax.plot(
                grid,
                grid + row["shift_predicted"],
                "--",
                color="tab:green",
                label=f"predicted tilt (+1/beta = {row['shift_predicted']:+.1f})",
            )
        ax.axvline(_logit(th.outside), color="tab:red", ls=":", lw=1, label=f"outside: Q_base < {th.outside:g}")
        ax.axvline(_logit(th.inside), color="tab:purple", ls=":", lw=1, label=f"inside: Q_base >= {th.inside:g}")
        ax.axhline(_logit(th.solved), color="tab:red", ls="--", lw=0.8, label=f"solved: Q_post >= {th.solved:g}")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_title(
            f"{family} / {split}: expanded {int(row['expanded'])} of {int(row['outside'])} outside", fontsize=9
        )
        ax.set_xlabel("logit Q_base (exact)")
        ax.set_ylabel("logit Q_post (exact)")
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08 + 0.02 * rows, 1, 0.97))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
    return path
