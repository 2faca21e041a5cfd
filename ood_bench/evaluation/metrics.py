"""Evaluation metrics as torchmetrics ``Metric`` objects.

pass@k uses the unbiased estimator of Chen et al. (2021) from n samples of which
c are correct, ``1 - C(n-c, k) / C(n, k)``, in its product form
``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` evaluated as a sum of ``log1p`` terms in
float64, which never forms the huge binomials. Resampling with replacement
would under-report it, so it is never bootstrapped.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric


def pass_at_k(n: torch.Tensor, c: torch.Tensor, k: int) -> torch.Tensor:
    """Per-problem unbiased pass@k; ``n`` and ``c`` are integer tensors, n >= k."""
    n = torch.as_tensor(n, dtype=torch.float64)
    c = torch.as_tensor(c, dtype=torch.float64)
    if (n < k).any():
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got n={int(n.min())}")
    if n.numel() == 0:
        return n
    top = int(n.max())
    i = torch.arange(1, top + 1, dtype=torch.float64)  # candidate factor indices
    # log(1 - k/i). Only i > n-c >= k is ever summed, so terms with i <= k (where
    # the log is -inf or undefined) are zeroed to keep the prefix sums finite.
    terms = torch.where(i > k, torch.log1p(-k / i), torch.zeros_like(i))
    # sum over i in (n-c, n]  ==  prefix sum up to n  minus  prefix sum up to n-c
    cums = torch.cat([torch.zeros(1, dtype=torch.float64), terms.cumsum(0)])
    log_fail = cums[n.long()] - cums[(n - c).long()]
    out = 1.0 - torch.exp(log_fail)
    return torch.where(n - c < k, torch.ones_like(out), out)


def pass_at_k_exact(n: int, c: int, k: int) -> float:
    """The textbook binomial form, for tests and for readers."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


class PassAtK(Metric):
    """Mean unbiased pass@k over problems, for every k in ``ks``, with standard errors."""

    full_state_update = False

    def __init__(self, ks: list[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks = sorted(set(ks))
        self.add_state("n", default=[], dist_reduce_fx="cat")
        self.add_state("c", default=[], dist_reduce_fx="cat")

    def update(self, n: torch.Tensor, c: torch.Tensor) -> None:
        self.n.append(torch.as_tensor(n, dtype=torch.long).flatten())
        self.c.append(torch.as_tensor(c, dtype=torch.long).flatten())

    def compute(self) -> dict[str, float]:
        n = torch.cat(self.n) if isinstance(self.n, list) else self.n
        c = torch.cat(self.c) if isinstance(self.c, list) else self.c
        out = {}
        for k in self.ks:
            v = pass_at_k(n, c, k)
            out[f"pass@{k}"] = float(v.mean())
            out[f"pass@{k}_stderr"] = float(v.std(unbiased=True) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        return out


class MeanWithStderr(Metric):
    """Mean of a per-problem quantity and its standard error across problems."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("values", default=[], dist_reduce_fx="cat")

    def update(self, values: torch.Tensor) -> None:
        self.values.append(torch.as_tensor(values, dtype=torch.float64).flatten())

    def compute(self) -> tuple[float, float]:
        v = torch.cat(self.values) if isinstance(self.values, list) else self.values
        if len(v) == 0:
            return float("nan"), float("nan")
        se = float(v.std(unbiased=True) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        return float(v.mean()), se


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if ks[-1] != n:
        ks.append(n)
    return ks
