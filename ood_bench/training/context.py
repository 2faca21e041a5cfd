"""What the core hands an algorithm: the ``Context`` of one post-training run.

It owns the policy, the frozen reference, the one rollout engine with verifier
rewards, the optimizer step and the budget counters, so every algorithm is
measured the same way. It knows nothing of Lightning: the post-training module
builds one with Lightning's backward and gradient clipping, and a test can build
one around a plain model and optimizer (``algorithms.standalone``) to run an
algorithm's ``step`` directly.

Alignment, once for every method: for rows ``ids`` (N, T) of prompt+completion
tokens with ``cmask`` (N, T) True on completion tokens, per-token tensors are
(N, T-1) and entry ``t`` scores token ``t + 1`` given tokens ``0..t``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from ..errors import NonFiniteError
from ..model.rollout import pack, sample, shared_prompt_logprobs, token_logprobs
from ..model.tokenizer import EOS, TOKENIZER
from ..phases import phase
from ..tasks.base import checked_score, torch_seed

if TYPE_CHECKING:
    from ..model.model import GPT
    from ..model.rollout import Rollout
    from ..tasks.base import Problem, TaskFamily


@dataclass
class Counters:
    """The run's budget counters, public and saved with every checkpoint (``ctx.counters``).

    The context counts for you (``rollout``, ``optimize``, ``draw_prompts``, ``end_step``);
    ``as_dict()`` returns them as a dict of ints.

    Example::

        ctx.counters.grad_steps  # optimizer steps taken so far in the run
    """

    prompts: int = 0  # training prompts used (rollouts, gold traces, extra draws)
    rollouts: int = 0  # sampled completions
    rollout_tokens: int = 0  # tokens those completions wrote
    train_tokens: int = 0  # tokens gradients flowed through
    grad_steps: int = 0  # optimizer steps
    batches: int = 0  # prompt batches handed to ``Algorithm.step``
    skipped_batches: int = 0  # batches that took no optimizer step
    extra_prompts: int = 0  # prompts drawn inside a step with ``draw_prompts``

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def load(self, data: dict) -> None:
        for k, v in data.items():
            if hasattr(self, k):
                setattr(self, k, int(v))


class LogProbs(NamedTuple):
    """Teacher-forced scores of rows of prompt+completion tokens (see the module's alignment).

    ``logp`` (N, T-1): log-prob of each completion token at the algorithm's temperature, 0 elsewhere;
    ``mask`` (N, T-1): True where ``logp`` scores a completion token; ``logits`` (N, T-1, V);
    ``hidden`` (N, T-1, C): final hidden states when asked for (value heads), else None.
    What ``Context.logprobs`` returns.

    Example::

        lp = ctx.logprobs(ctx.policy, batch.ids, batch.cmask)
        seq_logp = lp.logp.sum(1)  # (N,): 0 outside the mask, so a plain sum is the completion's log-prob
    """

    logp: torch.Tensor
    mask: torch.Tensor
    logits: torch.Tensor
    hidden: torch.Tensor | None = None


@dataclass
class RolloutBatch:
    """G samples for each prompt with their verifier rewards, ready for scoring.

    Rows are grouped by prompt: rows ``g*G .. g*G+G-1`` answer ``problems[g]``.
    What ``Context.rollout`` returns; ``group_size`` is G.

    Example::

        batch = ctx.rollout(problems, n=8)
        adv, _ = group_advantages(batch.rewards, batch.group_size)
    """

    problems: list[Problem]
    rollout: Rollout  # the raw samples: tokens, mask, sampler log-probs (N, L), lengths
    rewards: torch.Tensor  # (N,) answer reward (+ ``trace_reward`` x trace verdict)
    answer_correct: torch.Tensor  # (N,) bool
    ids: torch.Tensor  # (N, T) right-padded prompt+completion rows, for ``Context.logprobs``
    cmask: torch.Tensor  # (N, T) True on completion tokens
    trace_correct: torch.Tensor | None = None  # (N,) bool: every step of the trace verifies

    @property
    def group_size(self) -> int:
        """G, the samples of each prompt (int): ``len(rewards) // len(problems)``, the ``n`` given to ``rollout``."""
        return len(self.rewards) // len(self.problems)


def _shares_prompts(b: RolloutBatch) -> bool:
    """Rows come ``group_size`` to a prompt, prompt by prompt (as ``Context.rollout`` makes them)."""
    n = b.group_size
    idx = b.rollout.prompt_index
    return (
        n > 1
        and len(b.rollout.prompts) * n == len(idx)
        and torch.equal(idx.cpu(), torch.arange(len(b.rollout.prompts)).repeat_interleave(n))
    )


def _default_backward(loss: torch.Tensor) -> None:
    loss.backward()


class Context:
    """The services an algorithm uses; ``self.ctx`` inside an ``Algorithm``.

    ``policy`` and ``reference`` (frozen) models, ``rollout`` (samples + verifier rewards),
    ``logprobs`` (teacher-forced scores), ``gold_batch`` (supervised rows), ``draw_prompts``,
    ``optimize`` (one counted gradient step) and ``counters``. ``PostTrainContext`` is its old name.

    Example::

        batch = self.ctx.rollout(problems, self.cfg.group_size)
        lp = self.ctx.logprobs(self.ctx.policy, batch.ids, batch.cmask)
        self.ctx.optimize(loss, train_tokens=int(lp.mask.sum()))
    """

    def __init__(
        self,
        policy: GPT,
        reference: GPT,
        families: list[TaskFamily],
        config,
        optimizer: torch.optim.Optimizer | None,
        seed: int = 0,
        draw: Callable[[int, int], list[Problem]] | None = None,
        backward: Callable[[torch.Tensor], None] = _default_backward,
        clip: Callable[[float], None] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.policy = policy
        self.reference = reference
        self.families = {f.name: f for f in families}
        self.config = config
        self.optimizer = optimizer
        self.seed = seed
        self.counters = Counters()
        self.device = torch.device(device)
        self._draw = draw
        self._backward = backward
        self._clip = clip or (
            lambda max_norm: nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]], max_norm
            )
        )
        self._stepped = False
        # The first scores of the step's first rollout batch, per model (detached): the standard
        # diagnostics reuse them instead of running the model again.
        self._scored: dict[int, LogProbs] = {}
        self.last_rollout: RolloutBatch | None = None

    # ------------------------------------------------------------------ data
    def rollout(self, problems: list[Problem], n: int) -> RolloutBatch:
        """Sample ``n`` completions per problem from the policy and score them with the verifier."""
        cfg = self.config
        prompts = [TOKENIZER.encode(p.prompt, bos=True) for p in problems]
        gen = torch.Generator(device=self.device).manual_seed(
            torch_seed("rollout", self.seed, self.counters.batches, self.counters.rollouts)
        )
        with phase("posttrain.rollouts"):
            r = sample(
                self.policy,
                prompts,
                n=n,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens,
                generator=gen,
            )
        completions, rewards, correct, trace_ok = [], [], [], []
        with phase("posttrain.rewards"):
            for row, text in enumerate(r.texts()):
                p = problems[int(r.prompt_index[row])]
                s = checked_score(self.families[p.family], p, text)
                rewards.append(float(s.answer) + cfg.trace_reward * float(s.trace))
                correct.append(s.answer)
                trace_ok.append(s.trace)
                completions.append(r.tokens[row][r.mask[row]].tolist())
        ids, cmask = pack([prompts[int(i)] for i in r.prompt_index], completions, self.device)
        self.counters.prompts += len(problems)
        self.counters.rollouts += len(completions)
        self.counters.rollout_tokens += r.num_tokens()
        batch = RolloutBatch(
            problems,
            r,
            torch.tensor(rewards, device=self.device),
            torch.tensor(correct, device=self.device),
            ids,
            cmask,
            torch.tensor(trace_ok, device=self.device),
        )
        if self.last_rollout is None:
            self.last_rollout = batch
        return batch

    def draw_prompts(self, k: int) -> list[Problem]:
        """``k`` more training prompts from this run's split, beyond the step's batch (dynamic sampling).

        Deterministic and resumable: the i-th extra prompt of a run is always the same problem.
        """
        if self._draw is None:
            raise RuntimeError("this context has no prompt stream to draw from")
        out = self._draw(self.counters.extra_prompts, k)
        self.counters.extra_prompts += k
        return out

    def gold_batch(self, problems: list[Problem]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of prompt + gold completion (+ <eos>) and their completion mask (for supervised methods)."""
        prompts = [TOKENIZER.encode(p.prompt, bos=True) for p in problems]
        comps = [TOKENIZER.encode(p.completion) + [EOS] for p in problems]
        self.counters.prompts += len(problems)
        return pack(prompts, comps, self.device)

    # ------------------------------------------------------------------ scoring
    def logprobs(
        self, model: nn.Module, ids: torch.Tensor, cmask: torch.Tensor, grad: bool = True, hidden: bool = False
    ) -> LogProbs:
        """Teacher-forced scores of ``ids`` under ``model`` at the algorithm's temperature."""
        with phase("posttrain.update"):
            return self._logprobs(model, ids, cmask, grad, hidden)

    def _logprobs(self, model: nn.Module, ids: torch.Tensor, cmask: torch.Tensor, grad: bool, hidden: bool) -> LogProbs:
        b = self.last_rollout
        is_rollout = b is not None and ids.shape == b.ids.shape and torch.equal(ids, b.ids)
        with torch.set_grad_enabled(grad):
            shared = (
                is_rollout
                and not hidden
                and hasattr(model, "forward_shared")
                and _shares_prompts(b)
                and not (model.training and getattr(model.cfg, "dropout", 0.0))
            )  # that path has no dropout
            if shared:
                # the step's rollout batch, n samples per prompt: each prompt is computed once
                r = b.rollout
                out = shared_prompt_logprobs(
                    model,
                    r.prompts,
                    b.group_size,
                    [row[m].tolist() for row, m in zip(r.tokens, r.mask)],
                    ids.shape[1],
                    temperature=self.config.temperature,
                )
            else:
                out = token_logprobs(model, ids, cmask, temperature=self.config.temperature, return_hidden=hidden)
        lp = LogProbs(*out) if hidden else LogProbs(*out, None)
        if is_rollout and id(model) not in self._scored:
            self._scored[id(model)] = LogProbs(lp.logp.detach(), lp.mask, lp.logits.detach(), None)
        return lp

    # ------------------------------------------------------------------ optimisation
    def optimize(self, loss: torch.Tensor, train_tokens: int) -> None:
        """zero_grad, backward, clip to ``grad_clip``, step; counts a gradient step and its tokens.

        A non-finite loss stops the run with one line (``NonFiniteError``) before it touches the weights.
        """
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteError(
                f"the algorithm's loss is {float(loss.detach())} at gradient step "
                f"{self.counters.grad_steps}: post-training stopped before it reached the weights"
            )
        with phase("posttrain.update"):
            self.optimizer.zero_grad()
            self._backward(loss)
            if self.config.grad_clip:
                self._clip(self.config.grad_clip)
            self.optimizer.step()
        self.counters.grad_steps += 1
        self.counters.train_tokens += int(train_tokens)
        self._stepped = True

    def reset_reference(self) -> None:
        """Make the current policy the new reference (ProRL)."""
        self.reference.load_state_dict(self.policy.state_dict())

    def reset_optimizer(self) -> None:
        """Forget the optimizer's moment estimates."""
        opt = getattr(self.optimizer, "optimizer", self.optimizer)
        opt.state.clear()

    # ------------------------------------------------------------------ the core's bookkeeping
    def begin_step(self) -> None:
        self._stepped = False
        self._scored.clear()
        self.last_rollout = None

    def end_step(self) -> dict[str, float]:
        """Close a batch: count it, and return the standard diagnostics every algorithm is logged with.

        ``reward``, ``accuracy``, ``response_length`` of the step's first rollout batch, and
        ``kl_ref`` (k3, per token) and ``entropy`` of the policy on it. Scores the algorithm already
        computed on that batch are reused; missing ones cost one no-grad pass each, and a reference
        the algorithm never scored is scored on an evenly spaced sample of at most
        ``DIAGNOSTIC_ROWS`` rollouts (``kl_ref`` is then an estimate from that sample).
        """
        self.counters.batches += 1
        if not self._stepped:
            self.counters.skipped_batches += 1
        out: dict[str, float] = {}
        b = self.last_rollout
        if b is not None:
            out["reward"] = float(b.rewards.float().mean())
            out["accuracy"] = float(b.answer_correct.float().mean())
            out["response_length"] = float(b.rollout.lengths.float().mean())
            pol = self._scored.get(id(self.policy)) or self.logprobs(self.policy, b.ids, b.cmask, False)
            ref = self._scored.get(id(self.reference))
            rows = slice(None)
            if ref is None:  # the algorithm never needed the reference (GRPO at beta = 0): a sample will do
                rows = diagnostic_rows(len(b.ids))
                ref = self.logprobs(self.reference, b.ids[rows], b.cmask[rows], False)
            m_ref = pol.mask[rows].float()  # the rows the reference scored
            log_ratio = ref.logp - pol.logp[rows]
            k3 = torch.exp(log_ratio) - 1.0 - log_ratio
            out["kl_ref"] = float((k3 * m_ref).sum() / m_ref.sum().clamp(min=1))
            m = pol.mask.float()
            logp_all = pol.logits.float().log_softmax(-1)
            ent = -(logp_all.exp() * logp_all).sum(-1)
            out["entropy"] = float((ent * m).sum() / m.sum().clamp(min=1))
        self._scored.clear()
        return out


STANDARD_DIAGNOSTICS = ("reward", "accuracy", "response_length", "kl_ref", "entropy")
DIAGNOSTIC_ROWS = 64


def diagnostic_rows(n: int) -> torch.Tensor:
    """At most ``DIAGNOSTIC_ROWS`` evenly spaced rows of ``n`` (every row when there are fewer)."""
    return torch.linspace(0, n - 1, min(n, DIAGNOSTIC_ROWS)).round().long().unique()
