"""REINFORCE with a leave-one-out baseline (RLOO).

Each sample's advantage is its reward minus the mean reward of the other G-1
samples for the same prompt; the loss is the REINFORCE estimator on the whole
sequence's log-probability, one on-policy step per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ood_bench.api import (
    Algorithm,
    AlgorithmConfig,
    check,
    entropy_from_logits,
    hookimpl,
    kl_estimate,
    knob,
    leave_one_out_baseline,
    masked_mean,
)


@dataclass
class RLOOConfig(AlgorithmConfig):
    beta: float = knob(0.0, "KL penalty folded into the sequence reward (k1 estimate)")

    def validate(self, prefix: str = "algo") -> None:
        super().validate(prefix)
        check(self.group_size >= 2, f"{prefix}.group_size", self.group_size, "RLOO needs groups of >= 2")
        check(self.beta >= 0, f"{prefix}.beta", self.beta, "must be >= 0")


def rloo_loss(seq_logp: torch.Tensor, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    adv = rewards - leave_one_out_baseline(rewards, group_size)
    return -(adv.detach() * seq_logp).mean()


class RLOO(Algorithm):
    name = "rloo"
    description = "REINFORCE with a leave-one-out baseline"
    config_class = RLOOConfig

    def step(self, problems):
        cfg, ctx = self.cfg, self.ctx
        batch = ctx.rollout(problems, cfg.group_size)
        logp, mask, logits, _ = ctx.logprobs(ctx.policy, batch.ids, batch.cmask)
        rewards = batch.rewards
        with torch.no_grad():
            ref_logp = ctx.logprobs(ctx.reference, batch.ids, batch.cmask, grad=False).logp
            kl_seq = kl_estimate(logp.detach(), ref_logp, "k1").sum(1)
            k3 = masked_mean(kl_estimate(logp.detach(), ref_logp, "k3"), mask)
        if cfg.beta:
            rewards = rewards - cfg.beta * kl_seq
        loss = rloo_loss(logp.sum(1), rewards, cfg.group_size)
        ctx.optimize(loss, train_tokens=int(mask.sum()))
        groups = batch.rewards.view(-1, cfg.group_size)
        return {
            "reward_mean": float(batch.rewards.mean()),
            "reward_std": float(batch.rewards.std()),
            "accuracy": float(batch.answer_correct.float().mean()),
            "zero_std_frac": float((groups.std(1) == 0).float().mean()),
            "kl_k1": float(kl_seq.sum() / mask.sum().clamp(min=1)),
            "kl_k3": float(k3),
            "entropy": float(entropy_from_logits(logits.detach(), mask)),
            "response_length": float(batch.rollout.lengths.float().mean()),
            "loss": float(loss.detach()),
            "clip_frac": 0.0,
        }


@hookimpl
def register_algorithms(register):
    register(RLOO)
