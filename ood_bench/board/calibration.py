"""Calibration on real nulls: each base against itself re-sampled, in disjoint pairs of sampling seeds (the
records' ``eval/`` and ``null/``, and the extra seeds ``ood-bench calibrate`` writes under ``calibration/``),
scored exactly as a headline cell; the table of those null cells and the README paragraph giving the
false-positive rate of the intervals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import OodBenchError
from ..evaluation.support import Thresholds, load_counts, wilson_interval
from .headline import cell_stats, paired
from .records import Records, eval_splits

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
            for split in eval_splits(rec):
                pairs = [(n, paired(counts[n][a], counts[n][b], split, None, th), None) for n in names]
                cell = cell_stats(pairs, th)
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


def calibration_text(cal: pd.DataFrame) -> str:
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
