"""Expansion that a reweighting cannot produce: problems that rose beyond the run's own tilt.

Pure reweighting (an exponential tilt of the base by a reward) moves a problem's gold-trace
log-odds by a shift; it cannot lift a problem the base never produces any further than it lifts
the problems the base already has. A fixed threshold (``Q_base < 1e-6`` to ``Q_post >= 1e-2``, a
9.2-nat rise) fires on a strong enough tilt alone. So expansion is measured against the run itself:

1. **Fit the run's tilt** on the problems inside the base's support whose log-odds are measurable
   (``outside <= Q_base <= TILT_CEILING``), over every split and family the run was evaluated on:
   the shifts ``s = logit Q_post - logit Q_base``, their mean and s.d.
2. **Bound what the tilt can give** an outside problem: the larger of the normal upper prediction
   bound for one more shift, ``mean + t(1 - alpha / M, m - 1) * sd * sqrt(1 + 1/m)`` (``m`` shifts
   fitted, ``M`` outside problems tested: Bonferroni over them), and the largest shift any inside
   problem showed, plus ``MARGIN`` nats for float32 log-probs. Where the post-trained model is
   saturated on an inside problem (``Q_post`` above ``SATURATION``), its shift is known only from
   below; that lower bound still enters the maximum.
3. **Flag** an outside problem (``Q_base < outside``) that the post-trained model solves
   (``Q_post >= solved``) and whose shift exceeds the bound.

Guarantees: a tilt that moves every problem's log-odds by the same ``c`` flags nothing, for any
``c``; under a tilt whose shifts vary like the fitted ones (normally), the chance that a run flags
any problem is at most ``alpha``. With fewer than ``MIN_FIT`` measurable shifts there is no tilt to
fit and the count is undefined (NaN), never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
MIN_FIT = 3
MARGIN = 0.1  # nats: the float32 noise of a teacher-forced log-prob, with room to spare
TILT_CEILING = 1 - 1e-3  # Q_base above this: 1 - Q is float32 noise, so its log-odds are not measurable
SATURATION = 1 - 1e-5  # Q_post above this: its log-odds are known only from below
LOGIT_CLIP = 30.0  # |log-odds| beyond this is 1 in 1e13: float32 log-probs carry no more


def logit(logprob: np.ndarray, clip: float = LOGIT_CLIP) -> np.ndarray:
    """log Q - log(1 - Q) from log Q, stable at both ends, clipped to +-``clip``."""
    lq = np.minimum(np.asarray(logprob, dtype=np.float64), -1e-300)
    return np.clip(lq - np.log(-np.expm1(lq)), -clip, clip)


@dataclass(frozen=True)
class Tilt:
    """A run's fitted tilt: ``problems`` shifts (``saturated`` of them only bounded below), their mean
    and s.d., and the bound an outside problem's shift must exceed to count as expansion."""

    problems: int
    saturated: int
    mean: float
    sd: float
    bound: float

    @property
    def fitted(self) -> bool:
        return self.problems >= MIN_FIT

    def as_dict(self) -> dict:
        """The columns a support table carries: the run's tilt, and the bound its expansions exceeded."""
        return {
            "run_tilt_problems": self.problems,
            "run_tilt_saturated": self.saturated,
            "run_tilt_mean": self.mean,
            "run_tilt_sd": self.sd,
            "tilt_bound": self.bound,
        }


def fit_tilt(lq_base: np.ndarray, lq_post: np.ndarray, outside: float = 1e-6, tested: int = 1) -> Tilt:
    """The tilt of a run from all its problems' exact gold log-probs; ``tested`` outside problems will be
    held against it (the Bonferroni count)."""
    lq_base, lq_post = np.asarray(lq_base, float), np.asarray(lq_post, float)
    q_base = np.exp(lq_base)
    inside = (q_base >= outside) & (q_base <= TILT_CEILING)
    shift = logit(lq_post[inside]) - logit(lq_base[inside])
    saturated = np.exp(lq_post[inside]) > SATURATION
    m = int(inside.sum())
    if m < MIN_FIT:
        return Tilt(m, int(saturated.sum()), float("nan"), float("nan"), float("inf"))
    exact = shift[~saturated]
    mean = float(exact.mean()) if len(exact) else float(shift.mean())
    sd = float(exact.std(ddof=1)) if len(exact) >= 2 else 0.0
    k = len(exact)
    if k >= MIN_FIT:
        quantile = float(stats.t.ppf(1 - ALPHA / max(tested, 1), k - 1))
        predicted = mean + quantile * sd * math.sqrt(1 + 1 / k)
    else:  # nearly everything saturated: the shifts' lower bounds are all there is
        predicted = -math.inf
    bound = max(predicted, float(shift.max())) + MARGIN
    return Tilt(m, int(saturated.sum()), mean, sd, bound)


def beyond_tilt(
    lq_base: np.ndarray, lq_post: np.ndarray, tilt: Tilt, outside: float = 1e-6, solved: float = 1e-2
) -> np.ndarray:
    """Which problems expanded: outside the base's support, solved after, and risen beyond the tilt."""
    lq_base, lq_post = np.asarray(lq_base, float), np.asarray(lq_post, float)
    candidates = (np.exp(lq_base) < outside) & (np.exp(lq_post) >= solved)
    return candidates & (logit(lq_post) - logit(lq_base) > tilt.bound)


def threshold_expanded(
    lq_base: np.ndarray, lq_post: np.ndarray, outside: float = 1e-6, solved: float = 1e-2
) -> np.ndarray:
    """The old fixed-threshold count (secondary): outside before, solved after, whatever the tilt."""
    return (np.exp(np.asarray(lq_base, float)) < outside) & (np.exp(np.asarray(lq_post, float)) >= solved)


def tilted(lq_base: np.ndarray, c: float) -> np.ndarray:
    """The gold log-probs of a pure tilt of the base by ``c`` nats of log-odds (a synthetic post-trained
    model with no new support by construction), for checks of the rule above."""
    z = logit(lq_base, clip=np.inf) + c
    return -np.logaddexp(0.0, -z)
