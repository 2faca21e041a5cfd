"""An example third-party ood-bench plugin: REINFORCE with a moving-average baseline.

Everything a plugin needs is here: a config dataclass (its fields become the
``algo.*`` knobs), an ``Algorithm`` subclass whose ``step`` trains on one batch
of prompts through the context's services, and a ``register_algorithms`` hook.
The entry point in this package's ``pyproject.toml`` makes ood-bench find it.
"""

from dataclasses import dataclass

from ood_bench.api import Algorithm, AlgorithmConfig, hookimpl, knob


@dataclass
class ReinforceConfig(AlgorithmConfig):
    group_size: int = knob(4, "samples per prompt")
    baseline_decay: float = knob(0.9, "exponential moving average of the reward")


class Reinforce(Algorithm):
    name = "reinforce"
    description = "REINFORCE with a moving-average reward baseline (example plugin)"
    config_class = ReinforceConfig

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        self.baseline = 0.0

    # The moving baseline is state of the algorithm: checkpointed with the run, so a resumed
    # run continues with the baseline it had, not from 0.
    def state_dict(self):
        return {"baseline": self.baseline}

    def load_state_dict(self, state):
        self.baseline = float(state["baseline"])

    def step(self, problems):
        batch = self.ctx.rollout(problems, self.cfg.group_size)
        lp = self.ctx.logprobs(self.ctx.policy, batch.ids, batch.cmask)  # LogProbs: logp, mask, logits, hidden
        logp, mask = lp.logp, lp.mask
        advantage = batch.rewards - self.baseline
        loss = -(advantage * logp.sum(1)).mean()
        self.ctx.optimize(loss, train_tokens=int(mask.sum()))
        mean_reward = float(batch.rewards.mean())
        self.baseline = self.cfg.baseline_decay * self.baseline + (1 - self.cfg.baseline_decay) * mean_reward
        return {"baseline": self.baseline, "loss": loss.detach()}  # reward, KL, entropy... the core logs


@hookimpl
def register_algorithms(register):
    register(Reinforce)
