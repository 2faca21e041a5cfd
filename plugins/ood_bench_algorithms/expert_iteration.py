"""Expert iteration (rejection-sampling fine-tuning): SFT on the model's own verified samples.

It can only ever train on answers the model already finds, which makes it a
useful foil for GRPO: both stay inside the sampled support by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from ood_bench.api import Algorithm, AlgorithmConfig, check, entropy_from_logits, hookimpl, knob

from .sft import nll_loss


@dataclass
class ExpertIterationConfig(AlgorithmConfig):
    inner_iterations: int = knob(1, "optimizer steps per batch of kept samples")
    dedupe: bool = knob(True, "one copy of each distinct correct completion per prompt")
    verify_trace: bool = knob(
        False,
        "Keep a sample only when its whole trace verifies, not just its final answer: otherwise lucky guesses with wrong steps are fine-tuned on too.",
    )

    def validate(self, prefix: str = "algo") -> None:
        super().validate(prefix)
        check(self.inner_iterations >= 1, f"{prefix}.inner_iterations", self.inner_iterations, "must be >= 1")


class ExpertIteration(Algorithm):
    name = "expert_iteration"
    description = "fine-tune on the model's own verified samples (rejection-sampling fine-tuning)"
    uses_sample_logprobs = False  # fine-tunes on texts; top_p only shapes which ones
    config_class = ExpertIterationConfig

    def step(self, problems):
        cfg, ctx = self.cfg, self.ctx
        batch = ctx.rollout(problems, cfg.group_size)
        keep = batch.answer_correct.clone()
        if cfg.verify_trace:
            keep &= batch.trace_correct
        if cfg.dedupe:
            seen = set()
            for i in range(len(keep)):
                key = (int(batch.rollout.prompt_index[i]), tuple(batch.ids[i][batch.cmask[i]].tolist()))
                if keep[i] and key in seen:
                    keep[i] = False
                seen.add(key)
        diag = {
            "reward_mean": float(batch.rewards.mean()),
            "accuracy": float(batch.answer_correct.float().mean()),
            "trace_accuracy": float(batch.trace_correct.float().mean()),
            "kept": float(keep.sum()),
            "response_length": float(batch.rollout.lengths.float().mean()),
        }
        if not keep.any():
            diag["skipped"] = 1.0
            return diag
        ids, cmask = batch.ids[keep], batch.cmask[keep]
        for _ in range(cfg.inner_iterations):
            logp, mask, logits, _ = ctx.logprobs(ctx.policy, ids, cmask)
            loss = nll_loss(logp, mask)
            ctx.optimize(loss, train_tokens=int(mask.sum()))
        diag.update(loss=float(loss.detach()), entropy=float(entropy_from_logits(logits.detach(), mask)), skipped=0.0)
        return diag


@hookimpl
def register_algorithms(register):
    register(ExpertIteration)
