"""GRPO and its variants (Dr. GRPO, DAPO-style clipping and aggregation, ProRL resets).

One rollout batch gives G samples per prompt; the advantage of each sample is
its reward minus its group's mean (optionally over the group's std); the policy
takes ``inner_iterations`` clipped-surrogate steps on that batch, with an
optional KL penalty to the frozen reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ood_bench.api import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    Algorithm,
    AlgorithmConfig,
    aggregate,
    check,
    clipped_surrogate,
    entropy_from_logits,
    group_advantages,
    hookimpl,
    kl_estimate,
    knob,
    masked_mean,
)


@dataclass
class GRPOConfig(AlgorithmConfig):
    beta: float = knob(0.0, "KL-to-reference coefficient; 0 is the KL-free variant")
    kl_estimator: str = knob("k3", "estimator of the KL to the reference: k1 or k3 (Schulman's)")
    eps_low: float = knob(0.2, "lower clip of the policy ratio (1 - eps_low)")
    eps_high: float = knob(0.2, "DAPO's clip-higher uses 0.28")
    loss_aggregation: str = knob("seq-mean-token-mean", "token-mean (DAPO) | seq-mean-token-sum-norm (Dr. GRPO)")
    scale_std: bool = knob(True, "Dr. GRPO turns this off")
    inner_iterations: int = knob(1, "mu: optimizer steps per rollout batch")
    dynamic_filtering: bool = knob(False, "drop groups whose rewards are all equal")
    reset_every: int = knob(0, "ProRL: reset reference and optimizer every N rollout batches (0: never)")

    def validate(self, prefix: str = "algo") -> None:
        super().validate(prefix)
        check(self.beta >= 0, f"{prefix}.beta", self.beta, "must be >= 0")
        check(
            self.kl_estimator in KL_ESTIMATORS,
            f"{prefix}.kl_estimator",
            self.kl_estimator,
            f"choose from {', '.join(KL_ESTIMATORS)}",
        )
        check(0 <= self.eps_low < 1, f"{prefix}.eps_low", self.eps_low, "must be in [0, 1)")
        check(self.eps_high >= 0, f"{prefix}.eps_high", self.eps_high, "must be >= 0")
        check(
            self.loss_aggregation in AGGREGATIONS,
            f"{prefix}.loss_aggregation",
            self.loss_aggregation,
            f"choose from {', '.join(AGGREGATIONS)}",
        )
        check(self.inner_iterations >= 1, f"{prefix}.inner_iterations", self.inner_iterations, "must be >= 1")
        check(self.reset_every >= 0, f"{prefix}.reset_every", self.reset_every, "must be >= 0")
        check(self.group_size >= 2, f"{prefix}.group_size", self.group_size, "GRPO needs groups of >= 2")


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, cfg: GRPOConfig):
    """The GRPO objective on one batch, as (loss, per-token clip indicator, per-token KL)."""
    pg, clipped = clipped_surrogate(logp, old_logp, advantages, cfg.eps_low, cfg.eps_high)
    if not cfg.beta:  # the KL-free variant: the reference is never read
        return aggregate(pg, mask, cfg.loss_aggregation, max_len=cfg.max_new_tokens), clipped, None
    kl = kl_estimate(logp, ref_logp, cfg.kl_estimator)
    per_token = pg + cfg.beta * kl
    return aggregate(per_token, mask, cfg.loss_aggregation, max_len=cfg.max_new_tokens), clipped, kl


class GRPO(Algorithm):
    name = "grpo"
    description = "Group Relative Policy Optimization (with Dr. GRPO / DAPO / ProRL switches)"
    config_class = GRPOConfig

    def step(self, problems):
        cfg, ctx = self.cfg, self.ctx
        G = cfg.group_size
        batch = ctx.rollout(problems, G)
        adv, group_std = group_advantages(batch.rewards, G, cfg.scale_std)
        keep = torch.ones_like(batch.rewards, dtype=torch.bool)
        if cfg.dynamic_filtering:
            keep = (group_std > 0).repeat_interleave(G)
        diag = {
            "reward_mean": batch.rewards.mean(),
            "reward_std": batch.rewards.std(),
            "accuracy": batch.answer_correct.float().mean(),
            "zero_std_frac": (group_std == 0).float().mean(),
            "response_length": batch.rollout.lengths.float().mean(),
            "kept_frac": keep.float().mean(),
        }
        ids, cmask, adv = batch.ids[keep], batch.cmask[keep], adv[keep]
        # At beta = 0 the loss never reads the reference: no pass over it (the core's kl_ref
        # diagnostic estimates the drift on a sample of the batch instead).
        ref_logp = ctx.logprobs(ctx.reference, batch.ids, batch.cmask, grad=False).logp if cfg.beta else None
        if keep.all():
            # The first inner iteration's forward pass doubles as the "old" policy
            # (same weights) and as the diagnostics pass: one forward fewer per step.
            first = ctx.logprobs(ctx.policy, ids, cmask)
            pol_logp, mask_all, logits = (t.detach() for t in first[:3])
        else:
            first = None
            pol_logp, mask_all, logits, _ = ctx.logprobs(ctx.policy, batch.ids, batch.cmask, grad=False)
        if ref_logp is not None:
            diag["kl_k1"] = masked_mean(kl_estimate(pol_logp, ref_logp, "k1"), mask_all)
            diag["kl_k3"] = masked_mean(kl_estimate(pol_logp, ref_logp, "k3"), mask_all)
        diag["entropy"] = entropy_from_logits(logits, mask_all)
        if not keep.any():  # every group all-0 or all-1: no signal, no step
            diag["skipped"] = 1.0
            return _floats(diag)
        old_logp = pol_logp[keep]
        ref_logp = ref_logp[keep] if ref_logp is not None else None
        clip_fracs, losses = [], []
        for it in range(cfg.inner_iterations):
            logp, mask = (first if (it == 0 and first is not None) else ctx.logprobs(ctx.policy, ids, cmask))[:2]
            loss, clipped, _ = grpo_loss(logp, old_logp, ref_logp, adv, mask, cfg)
            ctx.optimize(loss, train_tokens=int(mask.sum()))
            clip_fracs.append(masked_mean(clipped.float(), mask))
            losses.append(loss.detach())
        diag.update(loss=torch.stack(losses).mean(), clip_frac=torch.stack(clip_fracs).mean(), skipped=0.0)
        if cfg.reset_every and (ctx.counters.batches + 1) % cfg.reset_every == 0:
            ctx.reset_reference()
            ctx.reset_optimizer()
            diag["reset"] = 1.0
        return _floats(diag)


def _floats(d):
    return {k: float(v) for k, v in d.items()}


@hookimpl
def register_algorithms(register):
    register(GRPO)
