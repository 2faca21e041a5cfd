"""Supervised fine-tuning on the gold traces of the training prompts.

The reference point for "expansion": unlike RL it can put mass where the base
model had none, because its targets do not come from the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from ood_bench.api import Algorithm, AlgorithmConfig, aggregate, entropy_from_logits, hookimpl, knob


@dataclass
class SFTConfig(AlgorithmConfig):
    group_size: int = knob(1, "unused: one gold trace per prompt")


def nll_loss(logp, mask):
    """Mean negative log-likelihood per target token."""
    return aggregate(-logp, mask, "token-mean")


class SFT(Algorithm):
    name = "sft"
    description = "supervised fine-tuning on gold traces"
    uses_sample_logprobs = False  # fine-tunes on texts; top_p only shapes which ones
    config_class = SFTConfig
    objective = ("loss", "min")  # the gold traces' NLL on each step's fresh prompts, taken before the update

    def step(self, problems):
        ids, cmask = self.ctx.gold_batch(problems)
        logp, mask, logits, _ = self.ctx.logprobs(self.ctx.policy, ids, cmask)
        loss = nll_loss(logp, mask)
        self.ctx.optimize(loss, train_tokens=int(mask.sum()))
        return {
            "loss": float(loss.detach()),
            "entropy": float(entropy_from_logits(logits.detach(), mask)),
            "gold_logprob": float((logp.detach()).sum(1).mean()),
        }


@hookimpl
def register_algorithms(register):
    register(SFT)
