"""Support: did post-training reach problems outside the base model's support?

The primary measure is the **exact trace mass** ``Q(x) = p_model(gold completion | prompt)``
that ``evaluate`` computes in one teacher-forced pass (``gold_logprob``): the
gold trace, its answer line and the end of text. The families here have one
correct trace per problem, so Q is exactly the probability that a sample is
fully correct (every step and the answer); it carries no sampling noise, and
two evaluations of one model give the same Q whatever their sampling seeds.
(A model that writes right traces and then miscopies the answer has a sampled
trace pass@1 above Q; the quick base does not.)

Exact view (primary), per (family, split), with the thresholds of ``Thresholds``:

- support classes by ``Q_base``: *outside* the base's effective support
  (``Q_base < outside``), *inside* (``Q_base >= inside``) and the *fringe* between;
- **expansion**: outside problems that the post-trained model solves at a
  non-trivial exact rate (``Q_post >= solved``) *and* that rose beyond what the
  run's own tilt gives the problems inside the support (``expansion``: a
  reweighting cannot produce it, however strong): the count, the rate over the
  outside set and its Wilson 95% interval over problems; the fixed-threshold
  count (outside, then solved, whatever the tilt) is kept as
  ``expanded_threshold``, a secondary column;
- the **tilt**: pure reweighting (an exponential tilt of the base by a verifier
  reward) moves every problem's log-odds by one constant, ``logit Q* = logit Q +
  1/beta``. On the problems whose log-odds are measurable (``outside <= Q_base
  <= TILT_CEILING``) we report the mean shift ``logit Q_post - logit Q_base``, its
  spread (s.d.; exact masses carry no noise, so spread is real), the least-squares
  slope of the shift against ``logit Q_base`` with its standard error (0 for a
  pure tilt), the shift binned by ``Q_base`` (a slope alone misses curved
  patterns), and where beta > 0 the predicted shift ``1/beta``.

Sampled view, at budget n (what a user with n samples per problem would see):

- on fully correct samples (``full_c``: trace and answer), P (kept: one among
  the n samples of both models), E (gained), S (lost), SRR = P/(P+S), NDR = E/(P+E),
  NSCR = (E-S)/(P+E+S), each next to its **null**: the same comparison of the
  base's counts against a fresh re-sampling of the base, whose expectation is
  exact because Q_base is (a re-sample misses a problem with probability
  ``(1 - Q_base)^n``); where the base's samples solved no problem, the null's
  ratios are NaN (a re-sample could only gain, so they would be 1 by
  construction) and E against E_null speaks instead;
- at the answer level (secondary: it counts lucky guesses), the pass@1 change
  with its paired standard error, and which problems **moved**: Fisher's exact
  test of ``c_post`` against ``c_base`` per problem, with the Benjamini-Hochberg
  correction at false discovery rate ``fdr`` (under no change at all it also
  bounds the chance of reporting any move by ``fdr``).

Everything is computed from the per-problem JSONL records that ``evaluate``
writes, so no sampling is repeated.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import OodBenchError
from ..storage.eval_records import read_eval_folder
from .expansion import LOGIT_CLIP, TILT_CEILING, Tilt, beyond_tilt, fit_tilt, threshold_expanded  # noqa: F401
from .expansion import logit as logit_from_logprob

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Thresholds:
    """Where support begins and ends, in exact trace mass Q.

    - ``outside`` (1e-6): a problem this rare needs about a million samples to show
      one correct trace, 40 times the rollouts of a whole default GRPO run
      (100 steps x 32 prompts x 8) and far more than any one problem receives;
      sharpening cannot find what it never samples.
    - ``inside`` (1e-2): one sample in a hundred is right, which an evaluation at
      n = 64-256 sees.
    - ``solved`` (1e-2): the post-trained rate that counts as solving.
    A constant tilt of more than 9.2 nats lifts a problem from below ``outside``
    to ``solved``, so these thresholds alone cannot tell expansion from a strong
    reweighting: ``expansion`` holds each rise against the run's own tilt.
    """

    outside: float = 1e-6
    inside: float = 1e-2
    solved: float = 1e-2
    fdr: float = 0.05

    def validate(self) -> None:
        for k, v in asdict(self).items():
            if not 0 < v < 1:
                raise OodBenchError(f"invalid value {k}={v}: must be in (0, 1)")
        if self.outside > self.inside:
            raise OodBenchError(f"invalid thresholds: outside={self.outside} is above inside={self.inside}")


# Q_base bins of the binned tilt: from the edge of support to saturation.
TILT_BINS = (1e-6, 0.01, 0.2, 0.5, 0.8, 0.99, 1.0)
RECORD_COLUMNS = ["family", "version", "split", "uid", "n", "c", "trace_c", "full_c", "gold_logprob"]


def load_counts(eval_dir: str | Path) -> pd.DataFrame:
    """Every per-problem record of an evaluation folder as one DataFrame, checked against its manifest
    and for well-formed rows (each bad case is one ``OodBenchError`` line)."""
    return _counts(*read_eval_folder(eval_dir), eval_dir)


def _counts(record: dict, files: list[Path], eval_dir) -> pd.DataFrame:
    """The per-problem records of ``files``, an evaluation folder already checked against its manifest."""
    rows, tables = [], []
    for f in files:
        if f.suffix == ".csv":  # a compact table of a committed suite record
            try:
                tables.append(pd.read_csv(f, dtype={"uid": str, "family": str, "split": str}))
            except (ValueError, pd.errors.ParserError) as exc:
                raise OodBenchError(f"{f} is not a readable per-problem table ({exc})") from None
            if tables[-1].empty:
                raise OodBenchError(f"{str(f)!r} holds no per-problem records")
            continue
        lines = f.read_text().splitlines()
        if not lines:
            raise OodBenchError(f"{str(f)!r} holds no per-problem records")
        for i, line in enumerate(lines):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise OodBenchError(f"{f} line {i + 1} is not valid JSON") from None
            if not isinstance(row, dict):
                raise OodBenchError(f"{f} line {i + 1} is not a JSON object")
            rows.append(row)
    df = _with_full_counts(
        pd.concat([pd.DataFrame(rows), *tables], ignore_index=True) if tables else pd.DataFrame(rows)
    )
    missing = [c for c in RECORD_COLUMNS if c not in df.columns]
    if missing:
        raise OodBenchError(f"per-problem records in {str(Path(eval_dir) / 'samples')!r} lack {', '.join(missing)}")
    df = df[RECORD_COLUMNS].copy()
    try:
        _check_counts(df, eval_dir)
    except (OverflowError, TypeError, ValueError) as exc:
        raise OodBenchError(
            f"per-problem records in {str(eval_dir)!r} hold a value that is not a count or a "
            f"log-probability ({type(exc).__name__}: {exc})"
        ) from None
    return df


def _check_counts(df: pd.DataFrame, eval_dir) -> None:
    """Counts are integers with 0 <= c <= n and n >= 1; gold log-probabilities are numbers <= 0."""

    def bad(column: str, why: str, mask) -> None:
        if mask.any():
            value = df.loc[mask, column].iloc[0]
            value = value.item() if hasattr(value, "item") else value  # numpy scalars print as plain numbers
            raise OodBenchError(f"per-problem records in {str(eval_dir)!r}: {column}={value!r} {why}")

    for col in ("n", "c", "trace_c", "full_c"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad(
            col,
            "is not a whole number",
            values.isna() | (values != values.round()) | df[col].map(lambda v: isinstance(v, bool)),
        )
    n = df["n"].astype(float)
    bad("n", "must be at least 1", n < 1)
    for col in ("c", "trace_c", "full_c"):
        bad(col, "is outside 0..n", (df[col].astype(float) < 0) | (df[col].astype(float) > n))
    lp = pd.to_numeric(df["gold_logprob"], errors="coerce")
    bad("gold_logprob", "is not a log-probability (a number <= 0)", lp.isna() | (lp > 0))
    for col in ("n", "c", "trace_c", "full_c"):
        df[col] = df[col].astype(int)
    df["gold_logprob"] = lp.astype(float)


def _with_full_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Records made before fully-correct counts were kept: the trace count stands in for ``full_c``."""
    if "full_c" not in df.columns and "trace_c" in df.columns:
        df = df.assign(full_c=df["trace_c"])
    return df


def wilson_interval(successes: int, total: int) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sensible at 0 and at small n)."""
    if total == 0:
        return float("nan"), float("nan")
    p = successes / total
    denom = 1 + Z95**2 / total
    centre = (p + Z95**2 / (2 * total)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / total + Z95**2 / (4 * total**2)) / denom
    # at 0 (or all) successes the bound is exactly 0 (or 1); rounding would leave 1e-18
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == total else min(1.0, centre + half)
    return lo, hi


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def null_ratios(null: dict, solved_by_base: int) -> dict:
    """SRR, NDR and NSCR of the null's expected counts.

    Where the base's own samples solved no problem, a re-sample can keep or lose nothing, only gain: its
    NDR and NSCR are 1 by construction, however little it expects to gain (1e-16 problems, say, for a base
    whose Q is ~0 everywhere), and printed beside a post-trained model's 1 they would read as "re-sampling
    alone does as well". There the null has no ratio to offer (NaN); E against E_null tells the story.
    """
    P, E, S = null["P_null"], null["E_null"], null["S_null"]
    if solved_by_base == 0:
        return {"SRR_null": float("nan"), "NDR_null": float("nan"), "NSCR_null": float("nan")}
    return {"SRR_null": _ratio(P, P + S), "NDR_null": _ratio(E, P + E), "NSCR_null": _ratio(E - S, P + E + S)}


def sampled_null(c_base: np.ndarray, q_base: np.ndarray, n: np.ndarray) -> dict:
    """Expected P/E/S of the base's sampled trace counts against a fresh re-sampling of the base.

    Exact, with no prior: a re-sample of the base at budget n misses a problem
    with probability ``(1 - Q_base)^n``, and Q_base is known exactly.
    """
    zero = np.exp(n * np.log1p(-np.minimum(q_base, 1 - 1e-15)))
    ok = c_base >= 1
    return {
        "P_null": float((ok * (1 - zero)).sum()),
        "E_null": float((~ok * (1 - zero)).sum()),
        "S_null": float((ok * zero).sum()),
    }


@cache
def _fisher_p(c_base: int, c_post: int, n: int) -> float:
    """Fisher's exact p-value of c_base of n against c_post of n. A board asks it of every problem of every run
    (144,000 times on standard), but with n samples a problem there are at most (n + 1)^2 tables: each is
    computed once."""
    return float(stats.fisher_exact([[c_base, n - c_base], [c_post, n - c_post]])[1])


def moved_problems(c_base: np.ndarray, c_post: np.ndarray, n: np.ndarray, fdr: float) -> tuple[int, int]:
    """Problems whose count moved up / down: Fisher's exact test, Benjamini-Hochberg at ``fdr``."""
    if len(c_base) == 0:
        return 0, 0
    p = np.array([_fisher_p(int(cb), int(cp), int(nn)) for cb, cp, nn in zip(c_base, c_post, n)])
    significant = stats.false_discovery_control(p) <= fdr
    return int((significant & (c_post > c_base)).sum()), int((significant & (c_post < c_base)).sum())


def tilt_fit(logit_base: np.ndarray, logit_post: np.ndarray) -> dict:
    """Mean shift, its spread, and the least-squares slope of shift on logit Q_base (with s.e.)."""
    shift = logit_post - logit_base
    m = len(shift)
    out = {
        "tilt_problems": m,
        "shift_mean": float("nan"),
        "shift_sd": float("nan"),
        "shift_slope": float("nan"),
        "shift_slope_se": float("nan"),
    }
    if m == 0:
        return out
    out["shift_mean"] = float(shift.mean())
    if m < 3 or np.ptp(logit_base) < 1e-9:
        return out
    out["shift_sd"] = float(shift.std(ddof=1))
    x = logit_base - logit_base.mean()
    slope = float((x * (shift - shift.mean())).sum() / (x**2).sum())
    resid = shift - shift.mean() - slope * x
    out["shift_slope"] = slope
    out["shift_slope_se"] = float(math.sqrt((resid**2).sum() / (m - 2) / (x**2).sum()))
    return out


def binned_shift(q_base: np.ndarray, shift: np.ndarray) -> list[dict]:
    """Mean shift per Q_base bin: a pure tilt is flat across bins."""
    out = []
    for lo, hi in zip(TILT_BINS[:-1], TILT_BINS[1:]):
        sel = (q_base > lo) & (q_base <= hi)
        out.append(
            {
                "q_lo": lo,
                "q_hi": hi,
                "problems": int(sel.sum()),
                "shift_mean": float(shift[sel].mean()) if sel.any() else float("nan"),
            }
        )
    return out


def support_row(group: pd.DataFrame, th: Thresholds, beta: float | None = None, tilt: Tilt | None = None) -> dict:
    """All support numbers of one (family, split): ``group`` holds merged base/post records; ``tilt`` is the
    run's tilt over all its problems (``expansion.fit_tilt``), fitted on this group alone when not given."""
    N = len(group)
    n = group["n"].to_numpy()
    lq_b, lq_p = group["gold_logprob_base"].to_numpy(float), group["gold_logprob_post"].to_numpy(float)
    q_b, q_p = np.exp(lq_b), np.exp(lq_p)
    outside = q_b < th.outside
    inside = q_b >= th.inside
    n_out = int(outside.sum())
    tilt = tilt or fit_tilt(lq_b, lq_p, th.outside, tested=n_out)
    if tilt.fitted:
        n_exp = int(beyond_tilt(lq_b, lq_p, tilt, th.outside, th.solved).sum())
        lo, hi = wilson_interval(n_exp, n_out)
    else:  # no tilt to hold the rises against: expansion cannot be told from reweighting
        n_exp, lo, hi = float("nan"), float("nan"), float("nan")
    n_threshold = int(threshold_expanded(lq_b, lq_p, th.outside, th.solved).sum())

    measurable = (q_b >= th.outside) & (q_b <= TILT_CEILING)
    lb, lp = logit_from_logprob(lq_b[measurable]), logit_from_logprob(lq_p[measurable])
    shift = tilt_fit(lb, lp)

    # Sampled counts of fully correct samples (trace and answer: the event Q is the probability of),
    # next to their exact null
    t_b, t_p = group["full_c_base"].to_numpy(), group["full_c_post"].to_numpy()
    base_ok, post_ok = t_b >= 1, t_p >= 1
    P, E, S = int((base_ok & post_ok).sum()), int((~base_ok & post_ok).sum()), int((base_ok & ~post_ok).sum())
    null = sampled_null(t_b, q_b, n)
    # Answer level (secondary: counts lucky guesses)
    c_b, c_p = group["c_base"].to_numpy(), group["c_post"].to_numpy()
    up, down = moved_problems(c_b, c_p, n, th.fdr)
    diff = (c_p - c_b) / n
    return {
        "problems": N,
        "n": int(n[0]),
        # exact view
        "mass_base": float(q_b.mean()),
        "mass_post": float(q_p.mean()),
        "outside": n_out,
        "fringe": int((~outside & ~inside).sum()),
        "inside": int(inside.sum()),
        "expanded": n_exp,
        "expansion": _ratio(n_exp, n_out),
        "expansion_lo": lo,
        "expansion_hi": hi,
        "expanded_threshold": n_threshold,
        **tilt.as_dict(),
        **shift,
        "shift_predicted": (1.0 / beta) if beta else float("nan"),
        # sampled view
        "pass@1_base": float((c_b / n).mean()),
        "pass@1_post": float((c_p / n).mean()),
        "delta": float(diff.mean()),
        "delta_stderr": float(diff.std(ddof=1) / math.sqrt(N)) if N > 1 else float("nan"),
        "P": P,
        "E": E,
        "S": S,
        **null,
        "SRR": _ratio(P, P + S),
        "NDR": _ratio(E, P + E),
        "NSCR": _ratio(E - S, P + E + S),
        **null_ratios(null, solved_by_base=int(base_ok.sum())),
        "moved_up": up,
        "moved_down": down,
    }


def merge_records(base: pd.DataFrame, post: pd.DataFrame) -> pd.DataFrame:
    keys = ["family", "version", "split", "uid"]
    merged = _with_full_counts(base).merge(_with_full_counts(post), on=keys, suffixes=("_base", "_post"))
    if merged.empty:
        raise OodBenchError("the two evaluations share no test problem (different families, splits or task versions)")
    bad = merged[merged["n_base"] != merged["n_post"]]
    if len(bad):
        r = bad.iloc[0]
        raise OodBenchError(
            f"support sets need the same budget n: {r['family']}/{r['split']} has n={r['n_base']} "
            f"in the base evaluation and n={r['n_post']} in the other"
        )
    return merged.rename(columns={"n_base": "n"})


def run_tilt(merged: pd.DataFrame, th: Thresholds) -> Tilt:
    """The tilt of one comparison over every problem it shares with its base (all splits and families)."""
    lq_b, lq_p = merged["gold_logprob_base"].to_numpy(float), merged["gold_logprob_post"].to_numpy(float)
    return fit_tilt(lq_b, lq_p, th.outside, tested=int((np.exp(lq_b) < th.outside).sum()))


def support_table(
    base: pd.DataFrame, post: pd.DataFrame, thresholds: Thresholds | None = None, beta: float | None = None
) -> pd.DataFrame:
    """One row per (family, split) present in both evaluations."""
    th = thresholds or Thresholds()
    th.validate()
    merged = merge_records(base, post)
    tilt = run_tilt(merged, th)
    rows = []
    for (family, version, split), group in merged.groupby(["family", "version", "split"], sort=False):
        rows.append({"family": family, "version": int(version), "split": split, **support_row(group, th, beta, tilt)})
    return pd.DataFrame(rows)


def tilt_bins(base: pd.DataFrame, post: pd.DataFrame) -> pd.DataFrame:
    """The shift ``logit Q_post - logit Q_base`` binned by Q_base, per (family, split)."""
    merged = merge_records(base, post)
    rows = []
    for (family, split), g in merged.groupby(["family", "split"], sort=False):
        lq_b, lq_p = g["gold_logprob_base"].to_numpy(float), g["gold_logprob_post"].to_numpy(float)
        shift = logit_from_logprob(lq_p) - logit_from_logprob(lq_b)
        for b in binned_shift(np.exp(lq_b), shift):
            rows.append({"family": family, "split": split, **b})
    return pd.DataFrame(rows)


def algorithm_beta(eval_dir: str | Path) -> float | None:
    """The KL coefficient of the post-training run behind an evaluation, if its record is at hand."""
    for folder in (Path(eval_dir), Path(eval_dir).parent):
        record = folder / "posttrain_record.json"
        if record.is_file():
            try:
                beta = json.loads(record.read_text()).get("algorithm_config", {}).get("beta")
            except (OSError, json.JSONDecodeError):
                return None
            return float(beta) if isinstance(beta, (int, float)) and beta > 0 else None
    return None


SAMPLING_SETTINGS = ("temperature", "top_p", "max_new_tokens")  # what must match for sampled sets to compare


def check_comparable(
    base_dir: str | Path, post_dir: str | Path, null_dir: str | Path | None = None, records: dict | None = None
) -> None:
    """Refuse evaluations that cannot be compared: sampled with different settings, a post-trained
    model evaluated against a base it was not trained from, or a "null" that is not the same base
    re-sampled with another seed. (Records older than a field are not checked on it.) ``records``:
    their ``eval.json`` by folder, when already read."""
    records = records or {d: read_eval_folder(d)[0] for d in (base_dir, post_dir, null_dir) if d is not None}
    base = records[base_dir]
    others = [("post", post_dir, records[post_dir])]
    if null_dir is not None:
        others.append(("null", null_dir, records[null_dir]))
    b_cfg = base.get("eval_config") or {}
    for _, folder, rec in others:
        cfg = rec.get("eval_config") or {}
        for key in SAMPLING_SETTINGS:
            if key in b_cfg and key in cfg and b_cfg[key] != cfg[key]:
                raise OodBenchError(
                    f"{str(folder)!r} was sampled with {key}={cfg[key]} and the base evaluation "
                    f"{str(base_dir)!r} with {key}={b_cfg[key]}: sampled sets compare only at "
                    f"the same settings"
                )
    post = others[0][2]
    if base.get("base_checkpoint_sha256") and base["base_checkpoint_sha256"] == post.get("checkpoint_sha256"):
        raise OodBenchError(
            f"the arguments are swapped: {str(post_dir)!r} evaluates the base that the model of "
            f"{str(base_dir)!r} was post-trained from; give the base first"
        )
    if (
        base.get("checkpoint_sha256")
        and post.get("base_checkpoint_sha256")
        and base["checkpoint_sha256"] != post["base_checkpoint_sha256"]
    ):
        raise OodBenchError(
            f"{str(post_dir)!r} evaluates a model post-trained from another base than the one "
            f"{str(base_dir)!r} evaluates (their checkpoint hashes differ)"
        )
    if null_dir is not None:
        null = others[1][2]
        if (
            base.get("checkpoint_sha256")
            and null.get("checkpoint_sha256")
            and base["checkpoint_sha256"] != null["checkpoint_sha256"]
        ):
            raise OodBenchError(
                f"the null {str(null_dir)!r} evaluates another checkpoint than the base "
                f"{str(base_dir)!r}: it must be the same base with another sampling seed"
            )
        if "seed" in base and base.get("seed") == null.get("seed"):
            raise OodBenchError(
                f"the null {str(null_dir)!r} used the base's own sampling seed ({base['seed']}): "
                f"evaluate the base again with another --seed"
            )


def compare_evals(
    base_dir: str | Path, post_dir: str | Path, thresholds: Thresholds | None = None, null_dir: str | Path | None = None
) -> pd.DataFrame:
    """The support table of two ``evaluate`` output folders (their per-problem records).

    ``null_dir``, a second evaluation of the *base* (another sampling seed), adds
    what that observed base-against-itself comparison gives: ``E_resample``,
    ``S_resample``, ``moved_resample`` and ``expanded_resample``.
    """
    folders = {d: read_eval_folder(d) for d in (base_dir, post_dir, null_dir) if d is not None}  # each read once
    check_comparable(base_dir, post_dir, null_dir, {d: rec for d, (rec, _) in folders.items()})
    base = _counts(*folders[base_dir], base_dir)
    table = support_table(base, _counts(*folders[post_dir], post_dir), thresholds, algorithm_beta(post_dir))
    if null_dir is not None:
        null = support_table(base, _counts(*folders[null_dir], null_dir), thresholds)
        null = null.assign(moved_resample=null["moved_up"] + null["moved_down"]).rename(
            columns={"E": "E_resample", "S": "S_resample", "expanded": "expanded_resample"}
        )
        table = table.merge(
            null[["family", "split", "E_resample", "S_resample", "moved_resample", "expanded_resample"]],
            on=["family", "split"],
            how="left",
        )
    return table


EXACT_COLUMNS = [
    "family",
    "split",
    "mass_base",
    "mass_post",
    "outside",
    "fringe",
    "inside",
    "expanded",
    "expansion",
    "expansion_lo",
    "expansion_hi",
    "expanded_threshold",
    "tilt_bound",
    "shift_mean",
    "shift_sd",
    "shift_slope",
    "shift_slope_se",
    "shift_predicted",
]
SAMPLED_COLUMNS = [
    "family",
    "split",
    "n",
    "P",
    "P_null",
    "E",
    "E_null",
    "S",
    "S_null",
    "SRR",
    "SRR_null",
    "NSCR",
    "NSCR_null",
]
ANSWER_COLUMNS = [
    "family",
    "split",
    "n",
    "pass@1_base",
    "pass@1_post",
    "delta",
    "delta_stderr",
    "moved_up",
    "moved_down",
]
SUPPORT_COLUMNS = list(dict.fromkeys(EXACT_COLUMNS + SAMPLED_COLUMNS + ANSWER_COLUMNS))


def _fmt(v: float) -> str:
    return f"{v:.3f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def format_support(df: pd.DataFrame, thresholds: Thresholds | None = None) -> str:
    th = thresholds or Thresholds()
    blocks = [
        (
            f"exact trace mass Q (primary): outside Q_base < {th.outside:g}, inside Q_base >= {th.inside:g}; "
            f"expanded = outside, Q_post >= {th.solved:g} and risen beyond the run's own tilt (its log-odds shift "
            f"above tilt_bound, fitted on the problems inside the support: a reweighting cannot do that; rate over the "
            f"outside set, Wilson 95%); expanded_threshold (secondary) = outside and Q_post >= {th.solved:g} "
            f"whatever the tilt; shift = "
            f"logit Q_post - logit Q_base where {th.outside:g} <= Q_base <= {TILT_CEILING:g} (pure reweighting: "
            f"one shift, slope 0; predicted = 1/beta)",
            EXACT_COLUMNS,
        ),
        (
            "fully correct samples at budget n: P kept, E gained, S lost, each next to its null (the base "
            "re-sampled against itself, exact from Q_base)",
            SAMPLED_COLUMNS,
        ),
        (
            f"answers (secondary: counts lucky guesses): pass@1 change with its paired s.e.; moved = Fisher exact "
            f"per problem, Benjamini-Hochberg FDR {th.fdr:g}",
            ANSWER_COLUMNS,
        ),
    ]
    if "E_resample" in df.columns:
        blocks.append(
            (
                "observed null: the base against a second evaluation of itself (another sampling seed)",
                ["family", "split", "expanded_resample", "E_resample", "S_resample", "moved_resample"],
            )
        )
    return "\n\n".join(f"{title}\n{df[cols].to_string(index=False, float_format=_fmt)}" for title, cols in blocks)
