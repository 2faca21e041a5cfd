"""Support sets: which problems post-training kept, gained and lost (DESIGN §6).

At a budget of n samples, a model *supports* a problem when at least one of its
samples is correct (c >= 1). Comparing a post-trained model with its base on the
same test problems at the same n:

- P (kept): both support it;  E (gained): only the post-trained model;  S (lost): only the base;
- the change in pass@1 with its paired standard error over problems;
- SRR = P/(P+S), NDR = E/(P+E), NSCR = (E-S)/(P+E+S);
- expansion rate = E / #problems, with a Wilson 95% interval: the "beyond support" number;
- the same rate over the problems whose exact base gold-trace mass is below a
  threshold (1e-6 by default), where a gain cannot be sharpening of a tail the
  base already sampled;
- the tilt fit: under pure reweighting (DESIGN §1) ``logit Q_post - logit Q_base``
  is one constant for every problem; we report its mean and the R² of that
  constant-shift model (add-½ smoothing keeps the logits finite).

Everything is computed from the per-problem JSONL counts that ``evaluate`` writes,
so no sampling is repeated.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import OodBenchError

TINY_GOLD_MASS = 1e-6
Z95 = 1.959963984540054


def load_counts(eval_dir: str | Path) -> pd.DataFrame:
    """Every per-problem record under ``eval_dir/samples`` as one DataFrame."""
    samples = Path(eval_dir) / "samples"
    files = sorted(samples.glob("*.jsonl")) if samples.is_dir() else []
    if not files:
        raise OodBenchError(f"no per-problem counts in {str(samples)!r}: run `ood-bench evaluate` first")
    rows = []
    for f in files:
        for i, line in enumerate(f.read_text().splitlines()):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise OodBenchError(f"{f} line {i + 1} is not valid JSON") from None
    cols = ["family", "version", "split", "uid", "n", "c", "gold_logprob"]
    return pd.DataFrame(rows)[cols]


def wilson_interval(successes: int, total: int) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sensible at 0 and at small n)."""
    if total == 0:
        return float("nan"), float("nan")
    p = successes / total
    denom = 1 + Z95**2 / total
    centre = (p + Z95**2 / (2 * total)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / total + Z95**2 / (4 * total**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _logit_q(c: np.ndarray, n: np.ndarray) -> np.ndarray:
    q = (c + 0.5) / (n + 1.0)
    return np.log(q) - np.log1p(-q)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def support_row(group: pd.DataFrame, tiny_logprob: float) -> dict:
    base_ok, post_ok = group["c_base"] >= 1, group["c_post"] >= 1
    P = int((base_ok & post_ok).sum())
    E = int((~base_ok & post_ok).sum())
    S = int((base_ok & ~post_ok).sum())
    N = len(group)
    lo, hi = wilson_interval(E, N)
    tiny = group["gold_logprob_base"] < tiny_logprob
    n_tiny, e_tiny = int(tiny.sum()), int((tiny & ~base_ok & post_ok).sum())
    lb, lp = _logit_q(group["c_base"].to_numpy(), group["n"].to_numpy()), \
        _logit_q(group["c_post"].to_numpy(), group["n"].to_numpy())
    shift = lp - lb
    delta = float(shift.mean())
    ss_tot = float(((lp - lp.mean()) ** 2).sum())
    # No spread in the post-trained logits (every problem 0/n, say): R² is undefined.
    r2 = 1.0 - float(((shift - delta) ** 2).sum()) / ss_tot if ss_tot > 1e-9 else float("nan")
    # Paired over problems: the noise of each problem's own difficulty cancels, the sampling noise stays.
    diff = (group["c_post"] - group["c_base"]) / group["n"]
    diff_se = float(diff.std(ddof=1) / math.sqrt(N)) if N > 1 else float("nan")
    return {
        "problems": N, "n": int(group["n"].iloc[0]),
        "pass@1_base": float((group["c_base"] / group["n"]).mean()),
        "pass@1_post": float((group["c_post"] / group["n"]).mean()),
        "delta": float(diff.mean()), "delta_stderr": diff_se,
        "P": P, "E": E, "S": S,
        "SRR": _ratio(P, P + S), "NDR": _ratio(E, P + E), "NSCR": _ratio(E - S, P + E + S),
        "expansion": E / N if N else float("nan"), "expansion_lo": lo, "expansion_hi": hi,
        "tiny_problems": n_tiny, "expansion_tiny": _ratio(e_tiny, n_tiny),
        "tilt_shift": delta, "tilt_r2": r2,
    }


def support_table(base: pd.DataFrame, post: pd.DataFrame, tiny_mass: float = TINY_GOLD_MASS) -> pd.DataFrame:
    """One row per (family, split) present in both evaluations."""
    if not 0 < tiny_mass < 1:
        raise OodBenchError(f"invalid value tiny_mass={tiny_mass}: must be in (0, 1)")
    keys = ["family", "version", "split", "uid"]
    merged = base.merge(post, on=keys, suffixes=("_base", "_post"))
    if merged.empty:
        raise OodBenchError("the two evaluations share no test problem (different families, splits or task versions)")
    bad = merged[merged["n_base"] != merged["n_post"]]
    if len(bad):
        r = bad.iloc[0]
        raise OodBenchError(f"support sets need the same budget n: {r['family']}/{r['split']} has n={r['n_base']} "
                            f"in the base evaluation and n={r['n_post']} in the other")
    merged = merged.rename(columns={"n_base": "n"})
    rows = []
    for (family, version, split), group in merged.groupby(["family", "version", "split"], sort=False):
        rows.append({"family": family, "version": int(version), "split": split,
                     **support_row(group, math.log(tiny_mass))})
    return pd.DataFrame(rows)


def compare_evals(base_dir: str | Path, post_dir: str | Path, tiny_mass: float = TINY_GOLD_MASS) -> pd.DataFrame:
    """The support table of two ``evaluate`` output folders (their per-problem counts)."""
    return support_table(load_counts(base_dir), load_counts(post_dir), tiny_mass)


SUPPORT_COLUMNS = ["family", "split", "pass@1_base", "pass@1_post", "delta", "delta_stderr", "P", "E", "S",
                   "SRR", "NSCR", "expansion", "expansion_hi", "tilt_shift", "tilt_r2"]


def format_support(df: pd.DataFrame) -> str:
    return df[SUPPORT_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.3f}")
