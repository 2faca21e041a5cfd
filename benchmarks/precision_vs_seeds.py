"""Does pretraining in bf16-mixed move a base further than a different pretraining seed does?

    python benchmarks/precision_vs_seeds.py

The quick suite's committed bases were pretrained in bf16-mixed (its precision is auto, which is bf16-mixed
on a CPU with native bf16, for speed); the standard suite pretrains the same recipe, exposures and data in
fp32 at seeds 0, 1 and 2, and its seed-0 bases see exactly the batches quick's do. So per exposure,
family and split this prints the exact trace mass (a teacher-forced number, with no sampling noise) of the
bf16 base, of the fp32 base of the same seed, and of the fp32 bases of the other two seeds; then, pooled,
how far bf16 moved the seed-0 base against how far a change of seed moves it. Reads only committed records.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent / "leaderboards"


def base_metrics(suite: str, run: str, precision: str) -> pd.DataFrame:
    record = json.loads((ROOT / suite / "records" / run / "record.json").read_text())
    got = str(record["config"]["trainer"]["precision"])
    if got != precision:  # never compare fp32 with fp32 by mistake
        raise SystemExit(f"{suite}/{run} was pretrained in {got}, not {precision}")
    return pd.DataFrame(record["metrics"])[["family", "split", "trace_mass"]]


def table() -> pd.DataFrame:
    rows = []
    for exposure in ("e0", "e2"):
        bf16 = base_metrics("quick", f"base-{exposure}-s0", "bf16-mixed").rename(columns={"trace_mass": "bf16 s0"})
        t = bf16
        for seed in (0, 1, 2):
            fp32 = base_metrics("standard", f"base-{exposure}-s{seed}", "32-true")
            t = t.merge(fp32.rename(columns={"trace_mass": f"fp32 s{seed}"}), on=["family", "split"])
        rows.append(t.assign(exposure=exposure))
    t = pd.concat(rows)
    t["bf16 - fp32 (s0)"] = t["bf16 s0"] - t["fp32 s0"]
    t["seed 1 - seed 0"] = t["fp32 s1"] - t["fp32 s0"]
    t["seed 2 - seed 0"] = t["fp32 s2"] - t["fp32 s0"]
    return t[
        [
            "exposure",
            "family",
            "split",
            "fp32 s0",
            "bf16 s0",
            "fp32 s1",
            "fp32 s2",
            "bf16 - fp32 (s0)",
            "seed 1 - seed 0",
            "seed 2 - seed 0",
        ]
    ]


def main() -> int:
    t = table()
    print(t.to_string(index=False, float_format=lambda v: f"{v:+.3f}" if abs(v) < 1 else f"{v:.3f}"))
    by_precision = t["bf16 - fp32 (s0)"].abs()
    by_seed = pd.concat([t["seed 1 - seed 0"], t["seed 2 - seed 0"]]).abs()
    print(
        f"\nmean |change| of the exact trace mass over {len(t)} family x split x exposure cells:"
        f"\n  bf16-mixed instead of fp32, same seed:  {by_precision.mean():.4f} (largest {by_precision.max():.4f})"
        f"\n  another pretraining seed, both fp32:    {by_seed.mean():.4f} (largest {by_seed.max():.4f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
