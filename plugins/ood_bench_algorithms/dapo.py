"""DAPO (Yu et al., 2025): GRPO without the KL term, with clip-higher, token-mean loss and dynamic sampling.

Written only against the public plugin API (``ood_bench.api``), as a check that
the API is enough for an algorithm that needs more prompts inside a step:

- **clip-higher**: the ratio is clipped to [1 - eps_low, 1 + eps_high] with
  eps_high > eps_low, so tokens the policy rarely samples can still gain mass;
- **token-mean**: the loss averages over every completion token of the batch,
  so long completions are not down-weighted per token;
- **dynamic sampling**: groups whose rewards are all equal carry no gradient;
  the step draws more prompts (``ctx.draw_prompts``) until it holds as many
  informative groups as its batch had prompts, or ``max_draw_rounds`` is spent;
- **overlong shaping** (optional): a completion that runs into the last
  ``overlong_buffer`` tokens before ``max_new_tokens`` loses up to 1 reward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ood_bench.api import (
    PAD,
    Algorithm,
    AlgorithmConfig,
    aggregate,
    check,
    clipped_surrogate,
    group_advantages,
    hookimpl,
    knob,
    masked_mean,
)


@dataclass
class DAPOConfig(AlgorithmConfig):
    group_size: int = knob(8, "G samples per prompt")
    eps_low: float = knob(0.2, "lower clip of the probability ratio")
    eps_high: float = knob(0.28, "upper clip (clip-higher): wider than eps_low")
    max_draw_rounds: int = knob(
        3, "dynamic sampling: rounds of extra prompts to fill the batch with informative groups"
    )
    overlong_buffer: int = knob(0, "soft overlong penalty over the last N tokens before max_new_tokens (0: off)")
    inner_iterations: int = knob(1, "optimizer steps per filled batch")

    def validate(self, prefix: str = "algo") -> None:
        super().validate(prefix)
        check(self.group_size >= 2, f"{prefix}.group_size", self.group_size, "DAPO needs groups of >= 2")
        check(0 <= self.eps_low < 1, f"{prefix}.eps_low", self.eps_low, "must be in [0, 1)")
        check(self.eps_high >= self.eps_low, f"{prefix}.eps_high", self.eps_high, "must be >= eps_low")
        check(self.max_draw_rounds >= 0, f"{prefix}.max_draw_rounds", self.max_draw_rounds, "must be >= 0")
        check(
            0 <= self.overlong_buffer < self.max_new_tokens,
            f"{prefix}.overlong_buffer",
            self.overlong_buffer,
            "must be in [0, max_new_tokens)",
        )
        check(self.inner_iterations >= 1, f"{prefix}.inner_iterations", self.inner_iterations, "must be >= 1")


def overlong_penalty(lengths: torch.Tensor, max_new_tokens: int, buffer: int) -> torch.Tensor:
    """0 up to ``max_new_tokens - buffer`` tokens, then linearly down to -1 at ``max_new_tokens``."""
    if buffer == 0:
        return torch.zeros_like(lengths, dtype=torch.float)
    over = (lengths.float() - (max_new_tokens - buffer)).clamp(min=0)
    return -(over / buffer).clamp(max=1.0)


def cat_rows(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack right-padded (ids, cmask) row blocks of different widths."""
    width = max(ids.shape[1] for ids, _ in parts)
    ids = torch.cat([torch.nn.functional.pad(i, (0, width - i.shape[1]), value=PAD) for i, _ in parts])
    cmask = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1]), value=False) for _, m in parts])
    return ids, cmask


class DAPO(Algorithm):
    name = "dapo"
    description = "DAPO: clip-higher, token-mean loss, dynamic sampling of informative groups, no KL"
    config_class = DAPOConfig

    def step(self, problems):
        cfg, ctx = self.cfg, self.ctx
        G, target = cfg.group_size, len(problems)
        blocks, advantages, rewards_seen, rounds, drawn = [], [], [], 0, 0
        informative = 0
        batch = ctx.rollout(problems, G)
        while True:
            shaped = batch.rewards.float() + overlong_penalty(
                batch.rollout.lengths, cfg.max_new_tokens, cfg.overlong_buffer
            )
            rewards_seen.append(batch.rewards.float())
            adv, std = group_advantages(shaped, G, scale_std=True)
            keep_groups = (std > 0).nonzero().flatten()[: target - informative]
            if len(keep_groups):
                rows = (keep_groups[:, None] * G + torch.arange(G)).flatten().to(batch.ids.device)
                blocks.append((batch.ids[rows], batch.cmask[rows]))
                advantages.append(adv[rows])
                informative += len(keep_groups)
            if informative >= target or rounds >= cfg.max_draw_rounds:
                break
            rounds += 1
            extra = ctx.draw_prompts(target - informative)
            drawn += len(extra)
            batch = ctx.rollout(extra, G)
        diag = {
            "informative_groups": float(informative),
            "draw_rounds": float(rounds),
            "extra_prompts": float(drawn),
            "reward_mean": float(torch.cat(rewards_seen).mean()),
        }
        if not blocks:  # every group of every round all-0 or all-1: nothing to learn from
            diag["skipped"] = 1.0
            return diag
        ids, cmask = cat_rows(blocks)
        adv = torch.cat(advantages)
        old = None
        clip_fracs = []
        for _ in range(cfg.inner_iterations):
            lp = ctx.logprobs(ctx.policy, ids, cmask)
            if old is None:
                old = lp.logp.detach()  # the first pass is the sampling policy, same weights
            pg, clipped = clipped_surrogate(lp.logp, old, adv, cfg.eps_low, cfg.eps_high)
            loss = aggregate(pg, lp.mask, "token-mean")
            ctx.optimize(loss, train_tokens=int(lp.mask.sum()))
            clip_fracs.append(float(masked_mean(clipped.float(), lp.mask)))
        diag.update(loss=float(loss.detach()), clip_frac=sum(clip_fracs) / len(clip_fracs), skipped=0.0)
        return diag


@hookimpl
def register_algorithms(register):
    register(DAPO)
