"""PPO with a value head, GAE, clipped policy and value losses, and a KL penalty.

The value head is a linear map on the policy's final hidden states (a shared
trunk). Each token's reward is ``-beta * KL_t`` to the reference, and the verifier
reward is added on the last generated token; GAE(gamma, lambda) turns that into
per-token advantages, whitened over the batch. Diagnostics follow CleanRL:
clip fraction, approximate KL to the rollout policy, value loss, explained variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ood_bench.api import (
    Algorithm,
    AlgorithmConfig,
    approx_kl,
    check,
    clipped_surrogate,
    entropy_from_logits,
    explained_variance,
    gae,
    hookimpl,
    kl_estimate,
    knob,
    masked_mean,
)


@dataclass
class PPOConfig(AlgorithmConfig):
    group_size: int = knob(4, "samples per prompt (PPO needs no group; a few keep the batch the same size)")
    gamma: float = knob(1.0, "discount per token of the returns (1: undiscounted, as for one reward at the end)")
    lam: float = knob(0.95, "GAE lambda: how far advantages look ahead before trusting the value head")
    eps: float = knob(0.2, "policy ratio clip")
    value_clip: float = knob(0.2, "clip of the value head's change per step around its old prediction")
    vf_coef: float = knob(0.5, "weight of the value loss beside the policy loss")
    beta: float = knob(0.02, "KL penalty in the per-token reward")
    epochs: int = knob(2, "optimizer steps per rollout batch")
    whiten_advantages: bool = knob(True, "normalise advantages to mean 0 and standard deviation 1 per batch")

    def validate(self, prefix: str = "algo") -> None:
        super().validate(prefix)
        for k in ("gamma", "lam"):
            check(0 <= getattr(self, k) <= 1, f"{prefix}.{k}", getattr(self, k), "must be in [0, 1]")
        for k in ("eps", "value_clip", "vf_coef", "beta"):
            check(getattr(self, k) >= 0, f"{prefix}.{k}", getattr(self, k), "must be >= 0")
        check(self.epochs >= 1, f"{prefix}.epochs", self.epochs, "must be >= 1")


def token_rewards(final_reward, kl_tok, mask, beta):
    """Per-token rewards: ``-beta*KL_t`` everywhere, plus the verifier reward on the last token."""
    r = -beta * kl_tok * mask.float()
    last = mask.long().cumsum(1).argmax(1)  # index of the last generated token
    r[torch.arange(len(r)), last] += final_reward
    return r


def value_loss(values, old_values, returns, mask, clip):
    """Clipped value loss: the worse of the clipped and unclipped squared errors."""
    v_clipped = old_values + (values - old_values).clamp(-clip, clip)
    err = torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)


class PPO(Algorithm):
    name = "ppo"
    description = "PPO with a value head, GAE, clipped policy/value losses and a KL penalty"
    config_class = PPOConfig

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        self.value_head = nn.Linear(ctx.policy.cfg.n_embd, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def extra_modules(self):
        return {"value_head": self.value_head}

    def _values(self, hidden):
        return self.value_head(hidden).squeeze(-1)

    def step(self, problems):
        cfg, ctx = self.cfg, self.ctx
        batch = ctx.rollout(problems, cfg.group_size)
        with torch.no_grad():
            old_logp, mask, _, hidden = ctx.logprobs(ctx.policy, batch.ids, batch.cmask, grad=False, hidden=True)
            old_values = self._values(hidden) * mask
            ref_logp = ctx.logprobs(ctx.reference, batch.ids, batch.cmask, grad=False).logp
            kl_tok = kl_estimate(old_logp, ref_logp, "k1")
            rewards = token_rewards(batch.rewards, kl_tok, mask, cfg.beta)
            adv, returns = gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
            if cfg.whiten_advantages and mask.sum() > 1:
                a = adv[mask]
                adv = ((adv - a.mean()) / (a.std() + 1e-8)) * mask
        stats = {"loss": [], "pg_loss": [], "value_loss": [], "clip_frac": [], "approx_kl": []}
        for _ in range(cfg.epochs):
            logp, mask, logits, hidden = ctx.logprobs(ctx.policy, batch.ids, batch.cmask, hidden=True)
            values = self._values(hidden)
            pg_tok, clipped = clipped_surrogate(logp, old_logp, adv, cfg.eps, cfg.eps)
            pg = masked_mean(pg_tok, mask)
            vl = value_loss(values, old_values, returns, mask, cfg.value_clip)
            loss = pg + cfg.vf_coef * vl
            ctx.optimize(loss, train_tokens=int(mask.sum()))
            with torch.no_grad():
                stats["loss"].append(float(loss))
                stats["pg_loss"].append(float(pg))
                stats["value_loss"].append(float(vl))
                stats["clip_frac"].append(float(masked_mean(clipped.float(), mask)))
                stats["approx_kl"].append(float(masked_mean(approx_kl(logp.detach(), old_logp), mask)))
        groups = batch.rewards.view(-1, cfg.group_size)
        return {
            **{k: sum(v) / len(v) for k, v in stats.items()},
            "reward_mean": float(batch.rewards.mean()),
            "reward_std": float(batch.rewards.std()),
            "accuracy": float(batch.answer_correct.float().mean()),
            "zero_std_frac": float((groups.std(1) == 0).float().mean()),
            "kl_k1": float(masked_mean(kl_tok, mask)),
            "kl_k3": float(masked_mean(kl_estimate(old_logp, ref_logp, "k3"), mask)),
            "entropy": float(entropy_from_logits(logits.detach(), mask)),
            "explained_variance": explained_variance(old_values, returns, mask),
            "response_length": float(batch.rollout.lengths.float().mean()),
        }


@hookimpl
def register_algorithms(register):
    register(PPO)
