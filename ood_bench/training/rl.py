"""Loss arithmetic shared by the post-training algorithms.

Pure tensor functions, each small enough to check against a hand computation
(the tests do). Shapes: ``(B, T)`` per-token tensors with a boolean ``mask`` of
the generated tokens; ``(B,)`` per-sequence tensors; groups are consecutive rows
of ``group_size``.
"""

from __future__ import annotations

import torch

AGGREGATIONS = ("seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm")
KL_ESTIMATORS = ("k1", "k3")


def group_advantages(rewards: torch.Tensor, group_size: int, scale_std: bool = True, eps: float = 1e-6):
    """GRPO: each reward minus its group's mean, optionally divided by the group's std.

    The std is the sample std (Bessel's correction, ``unbiased=True``), as in TRL's
    ``GRPOTrainer`` and verl's GRPO advantage; the population std would make every
    advantage sqrt(G / (G - 1)) larger (+41% at G = 2).

    Returns (advantages (B,), group_std (B // G,)). A group whose rewards are all
    *exactly* equal has std exactly 0 and zero advantage, hence zero gradient: the
    "no signal" case. Equality is tested on the rewards themselves, not as
    ``std > 0``, which float rounding breaks for non-binary rewards (0.1, 0.3, 0.7).

    ``rewards`` (B,) holds B = n_groups * group_size rewards, grouped in consecutive rows
    (as ``Context.rollout`` returns them); ``scale_std=False`` is Dr. GRPO's unscaled form.

    Example::

        adv, group_std = group_advantages(torch.tensor([1., 0., 0., 0.]), group_size=2)
        # adv ~ [0.707, -0.707, 0, 0]; group_std = [0.707, 0] (the second group gives no signal)
    """
    r = rewards.view(-1, group_size).float()
    mean = r.mean(1, keepdim=True)
    equal = (r == r[:, :1]).all(1, keepdim=True)
    std = r.std(1, unbiased=True, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    std = torch.where(equal, torch.zeros_like(std), std)
    adv = torch.where(equal, torch.zeros_like(r), r - mean)
    if scale_std:
        adv = torch.where(equal, adv, adv / (std + eps))
    return adv.flatten(), std.flatten()


def approx_kl(logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(old || new) from samples of the *old* policy (PPO's diagnostic).

    ``(r - 1) - log r`` with ``r = new / old``: unbiased and >= 0 for samples drawn
    from the old policy, as CleanRL logs it. (The mirrored form, with ``old / new``,
    estimates KL(new || old) and is biased for these samples.)

    Returns a tensor shaped like ``logp`` (usually (B, T)); reduce it with ``masked_mean``.

    Example::

        kl = masked_mean(approx_kl(lp.logp, old_logp), lp.mask)  # a float tensor >= 0
    """
    log_ratio = logp - old_logp
    return torch.exp(log_ratio) - 1.0 - log_ratio


def leave_one_out_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: for each sample, the mean reward of the *other* G-1 samples of its group.

    Returns a (B,) float tensor; ``group_size`` must be >= 2.

    Example::

        leave_one_out_baseline(torch.tensor([1., 0., 0., 0.]), group_size=2)  # tensor([0., 1., 0., 0.])
        advantages = rewards - leave_one_out_baseline(rewards, G)
    """
    r = rewards.view(-1, group_size).float()
    return ((r.sum(1, keepdim=True) - r) / (group_size - 1)).flatten()


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from samples of the policy.

    k1 = log p - log q (unbiased, can be negative); k3 = (q/p) - 1 - log(q/p)
    (unbiased, always >= 0, lower variance), after Schulman's note on KL estimators.
    ``estimator`` is one of ``KL_ESTIMATORS``; any other raises ``ValueError``.

    Returns a tensor shaped like ``logp``.

    Example::

        ref = ctx.logprobs(ctx.reference, batch.ids, batch.cmask, grad=False)
        kl = kl_estimate(lp.logp, ref.logp, "k3")  # (B, T), >= 0
        loss = loss + beta * aggregate(kl, lp.mask, "token-mean")
    """
    log_ratio = ref_logp - logp  # log(q/p)
    if estimator == "k1":
        return -log_ratio
    if estimator == "k3":
        return torch.exp(log_ratio) - 1.0 - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r} (choose from {', '.join(KL_ESTIMATORS)})")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the True entries of ``mask`` (0 when the mask is empty).

    Returns a 0-dim tensor.

    Example::

        masked_mean(torch.tensor([[1., 3.]]), torch.tensor([[True, False]]))  # tensor(1.)
    """
    m = mask.float()
    return (x * m).sum() / m.sum().clamp(min=1)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, max_len: int | None = None) -> torch.Tensor:
    """Reduce a per-token loss to a scalar.

    - ``seq-mean-token-mean``: average over each sequence's tokens, then over sequences (original GRPO);
    - ``token-mean``: average over all tokens of the batch (DAPO), so long answers weigh more;
    - ``seq-mean-token-sum-norm``: sum over tokens divided by a constant ``max_len``, then
      mean over sequences (Dr. GRPO), which removes the length bias of the first.

    ``per_token`` and ``mask`` are (B, T); ``mode`` is one of ``AGGREGATIONS`` (another raises
    ``ValueError``). Returns a 0-dim tensor, the loss to hand ``ctx.optimize``.

    Example::

        loss = aggregate(per_token_loss, lp.mask, "seq-mean-token-mean")
    """
    m = mask.float()
    if mode == "seq-mean-token-mean":
        return ((per_token * m).sum(1) / m.sum(1).clamp(min=1)).mean()
    if mode == "token-mean":
        return masked_mean(per_token, mask)
    if mode == "seq-mean-token-sum-norm":
        norm = max_len if max_len is not None else mask.shape[1]
        return ((per_token * m).sum(1) / norm).mean()
    raise ValueError(f"unknown loss aggregation {mode!r} (choose from {', '.join(AGGREGATIONS)})")


def clipped_surrogate(logp, old_logp, advantages, eps_low: float, eps_high: float):
    """PPO-style clipped objective per token, as a loss (to minimise).

    Returns (loss (B, T), clipped (B, T) bool: where the clip was active).
    ``advantages`` is (B,) per sequence or (B, T) per token.

    Example::

        loss_t, clipped = clipped_surrogate(lp.logp, old.logp, adv, eps_low=0.2, eps_high=0.28)
        loss = aggregate(loss_t, lp.mask, "token-mean")
        clip_fraction = masked_mean(clipped.float(), lp.mask)
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped_ratio = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    clipped = clipped_ratio * advantages
    loss = -torch.minimum(unclipped, clipped)
    active = clipped < unclipped  # the min picked the clipped branch
    return loss, active


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation over the tokens of each sequence.

    ``rewards``, ``values``: (B, T); the value after the last masked token is 0.
    Returns (advantages, returns), both (B, T), zero outside the mask.

    Example::

        adv, returns = gae(token_rewards, values.detach(), lp.mask, gamma=1.0, lam=0.95)
    """
    B, T = rewards.shape
    m = mask.float()
    adv = torch.zeros_like(rewards)
    last = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        last = last * m[:, t]
        adv[:, t] = last
        next_value = values[:, t] * m[:, t]
    return adv, (adv + values) * m


def entropy_from_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token entropy of the policy over the masked tokens.

    ``logits`` (B, T, V), ``mask`` (B, T). Returns a 0-dim tensor (nats).

    Example::

        entropy = entropy_from_logits(lp.logits.detach(), lp.mask)  # a diagnostic, or an entropy bonus
    """
    logp = logits.float().log_softmax(-1)
    return masked_mean(-(logp.exp() * logp).sum(-1), mask)


def explained_variance(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """How much of the variance of ``target`` (over the masked entries) ``pred`` explains: 1 - Var(t - p) / Var(t).

    Returns a float: 1 is perfect, 0 no better than the mean, NaN when the target is constant.

    Example::

        explained_variance(values, returns, lp.mask)  # PPO's value-head diagnostic
    """
    p, t = pred[mask].float(), target[mask].float()
    var = t.var(unbiased=False)
    return float("nan") if var == 0 else float(1 - (t - p).var(unbiased=False) / var)
