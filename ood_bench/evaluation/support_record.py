"""The support record of one comparison: ``support.json`` and ``support.png`` beside the post-trained evaluation.

``support.json`` names the base evaluation it was computed against, the thresholds, the table of
``support.support_table`` and the tilt binned by Q_base; the leaderboard recomputes the table from
the per-problem records and uses the file only to find the base.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..storage.atomic import atomic_write_json
from .support import Thresholds, load_counts, tilt_bins
from .support_plot import plot_support

SUPPORT_RECORD, SUPPORT_PLOT = "support.json", "support.png"


def write_support_record(
    table: pd.DataFrame,
    base_eval: Path,
    post_eval: Path,
    thresholds: Thresholds | None = None,
    out_dir: Path | None = None,
) -> tuple[Path, Path]:
    """Write ``support.json`` and ``support.png`` into ``out_dir`` (default ``post_eval``); returns their paths."""
    th = thresholds or Thresholds()
    base, post = load_counts(base_eval), load_counts(post_eval)
    out_dir = Path(out_dir) if out_dir is not None else Path(post_eval)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = out_dir / SUPPORT_RECORD
    atomic_write_json(
        record,
        {
            "base_eval": str(base_eval),
            "eval": str(post_eval),
            "thresholds": asdict(th),
            "results": table.to_dict(orient="records"),
            "tilt_bins": tilt_bins(base, post).to_dict(orient="records"),
        },
    )
    plot = plot_support(base, post, table, out_dir / SUPPORT_PLOT, th, title=f"{post_eval} against {base_eval}")
    return record, plot
