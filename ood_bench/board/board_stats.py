"""The statistics of a leaderboard cell: an interval that covers every noise source, a p-value, the
minimum detectable effect, and the Benjamini-Hochberg q-values of a board.

A cell is the mean over ``k`` pretraining seeds and ``P`` problems (the same problems for every seed)
of a per-problem change ``d[s, i]`` (post-trained minus base, each a rate over ``n`` samples). Three
things make that mean noisy, and the interval must cover all three:

- **pretraining seeds** (how a base and its post-training went): the seed effect ``a_s``;
- **the choice of problems**: the problem effect ``b_i``, shared by every seed;
- **sampling** (``n`` samples per problem) and everything else: the residual ``e[s, i]``.

With ``d[s, i] = mu + a_s + b_i + e[s, i]`` (crossed random effects), the variance of the grand mean is
``var(a)/k + var(b)/P + var(e)/(kP)``. The two-way ANOVA mean squares estimate it without bias:
``V = (MS_seed + MS_problem - MS_residual) / (kP)``, which is the two-way clustered variance of
Cameron, Gelbach & Miller (2011) in a balanced design, the clustering Miller (2024, "Adding Error Bars
to Evals") recommends for evaluations. Its quantile is Student's t with ``k - 1`` degrees of freedom,
so three seeds that happen to agree do not buy a normal quantile. ``V`` is never taken below the binomial
sampling variance of the mean alone (each rate's ``p(1-p)/(n-1)``, base and post-trained model
independent): a cell's interval is never narrower than its sampling noise. With one seed the seed
effect cannot be told from the rest: the interval is over problems and sampling only, and says so.

Each interval is ``mean +- t(0.975, df) * sqrt(V)``; the p-value is the two-sided t test of 0; the
minimum detectable effect is ``(t(0.975, df) + t(0.80, df)) * sqrt(V)``: the change this cell would
detect at 5% with 80% power. A board's q-values are Benjamini & Hochberg's (1995) adjusted p-values
over its family of tests (``scipy.stats.false_discovery_control``); a cell is significant at q < 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
POWER = 0.80
Q_LEVEL = 0.05
SAMPLING_ONLY = "sampling only (one pretraining seed): problems and samples"
CROSSED = "seeds, problems and samples (two-way random effects, t with seeds - 1 df)"
FLOORED = "sampling noise (the seed and problem spread is smaller than the sampling noise)"


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float
    hi: float
    se: float
    df: float
    p: float
    mde: float
    method: str

    def as_dict(self, prefix: str) -> dict:
        return {
            prefix: self.mean,
            f"{prefix}_lo": self.lo,
            f"{prefix}_hi": self.hi,
            f"{prefix}_se": self.se,
            f"{prefix}_df": self.df,
            f"{prefix}_p": self.p,
            f"{prefix}_mde": self.mde,
        }


def _t(q: float, df: float) -> float:
    return float(stats.norm.ppf(q)) if not math.isfinite(df) else float(stats.t.ppf(q, df))


def mean_change(d: np.ndarray, sampling_var: np.ndarray | None = None) -> Estimate:
    """The grand mean of ``d`` (seeds x problems) with its interval, p-value and minimum detectable effect.

    ``sampling_var``: the binomial variance of each ``d[s, i]`` (same shape), the floor of the variance;
    None for exact quantities (gold-trace masses carry no sampling noise)."""
    d = np.atleast_2d(np.asarray(d, float))
    k, P = d.shape
    mean = float(d.mean())
    nan = float("nan")
    if P < 2:
        return Estimate(mean, nan, nan, nan, nan, nan, nan, "one problem: no interval")
    floor = float(np.sum(sampling_var)) / (k * P) ** 2 if sampling_var is not None else 0.0
    col = d.mean(axis=0)
    ms_prob = k * float(((col - mean) ** 2).sum()) / (P - 1)
    if k == 1:
        var, df, method = ms_prob / P, float(P - 1), SAMPLING_ONLY
    else:
        row = d.mean(axis=1)
        ms_seed = P * float(((row - mean) ** 2).sum()) / (k - 1)
        resid = d - row[:, None] - col[None, :] + mean
        df_e = (k - 1) * (P - 1)
        ms_err = float((resid**2).sum()) / df_e
        combined = ms_seed + ms_prob - ms_err
        var = combined / (k * P)
        # t with k - 1 degrees of freedom: the seeds are the scarcest source. (Satterthwaite's df trusts a
        # seed spread estimated from three seeds; it undercovers in tests/test_board_stats.py's simulation.)
        df = float(k - 1)
        method = CROSSED
    if var < floor:
        # the floor is the sampling noise alone; the seed spread under it is still estimated from k seeds, so
        # the quantile keeps their degrees of freedom (a normal one undercovers when seeds agree by chance)
        var, df, method = floor, (math.inf if k == 1 else float(k - 1)), (SAMPLING_ONLY if k == 1 else FLOORED)
    if var <= 0:  # every d equal (a floor at 0, or an exact quantity that did not move): nothing to test
        return Estimate(mean, nan, nan, 0.0, nan, nan, nan, method)
    se = math.sqrt(var)
    half = _t(0.5 + LEVEL / 2, df) * se
    p = float(2 * (stats.norm.sf(abs(mean) / se) if not math.isfinite(df) else stats.t.sf(abs(mean) / se, df)))
    mde = (_t(0.5 + LEVEL / 2, df) + _t(POWER, df)) * se
    return Estimate(mean, mean - half, mean + half, se, df, p, mde, method)


def rate_change(c_base: np.ndarray, c_post: np.ndarray, n: np.ndarray) -> Estimate:
    """The mean change of a sampled rate (seeds x problems counts out of ``n``), floored at its sampling
    noise: each rate's unbiased binomial variance ``p(1-p)/(n-1)``."""
    c_base, c_post, n = (np.atleast_2d(np.asarray(a, float)) for a in (c_base, c_post, n))
    pb, pp = c_base / n, c_post / n
    sampling = (pb * (1 - pb) + pp * (1 - pp)) / np.maximum(n - 1, 1)
    return mean_change(pp - pb, sampling)


def q_values(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values over the finite entries of ``p`` (NaN stays NaN)."""
    p = np.asarray(p, float)
    q = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = stats.false_discovery_control(p[finite], method="bh")
    return q
