"""The one rollout engine: batched sampling with a KV cache, and exact scoring.

Evaluation and every post-training algorithm draw samples through ``sample`` and
score fixed sequences through ``sequence_logprobs``, so they all see the same
policy, the same masks and the same numerics.

Prompts of different lengths are left-padded; each row carries its own
positions and a key mask, so a padded prompt behaves exactly like an unpadded
one (tests check cached against uncached logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import GPT, KVCache
from .tokenizer import EOS, PAD, TOKENIZER


@dataclass
class Rollout:
    """Samples for a batch of prompts, G per prompt, row ``i`` from prompt ``prompt_index[i]``."""

    prompt_index: torch.Tensor  # (N,) which prompt each sample answers
    prompts: list[list[int]]  # the prompt token ids, <bos> included
    tokens: torch.Tensor  # (N, L) completion tokens, PAD after the end
    mask: torch.Tensor  # (N, L) True on generated tokens, the closing <eos> included
    logprobs: torch.Tensor  # (N, L) log-prob of each token under the sampling policy
    finished: torch.Tensor  # (N,) produced <eos> within the budget

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(1)

    def texts(self) -> list[str]:
        return [TOKENIZER.decode(row.tolist()) for row in self.tokens]

    def num_tokens(self) -> int:
        return int(self.mask.sum())


def _filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches ``top_p``."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    drop = cum - sorted_logits.softmax(-1) >= top_p  # mass before this token already enough
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The token whose CDF interval holds ``u`` (in [0, 1)), for each row of ``probs``.

    The target ``u * total`` is kept strictly below the row's total, so rounding
    can never pick a token past the last one with mass, nor one with zero mass.
    """
    cdf = probs.double().cumsum(-1)
    total = cdf[:, -1:]
    target = torch.minimum(u.double().unsqueeze(1) * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).squeeze(1)


def sample(
    model: GPT,
    prompts: list[list[int]],
    n: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 128,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
) -> Rollout:
    """Draw ``n`` completions per prompt; ``temperature=0`` decodes greedily.

    Finished rows are dropped from the batch (and the cache) once half of the
    batch is done, so a few long samples do not make everyone pay for them.

    ``uniforms`` (rows x at least ``max_new_tokens``, rows in order prompt by
    prompt, ``n`` each) fixes every random draw in advance: the token at step
    ``t`` of a row is the inverse CDF of its distribution at ``uniforms[row, t]``.
    A row's sample then depends only on its own uniforms, not on which other
    rows share the batch (what evaluation needs). Without them, ``generator``
    draws one uniform per live row and step.

    Decoding runs under ``torch.inference_mode`` (no version counters or view tracking on the many
    small tensors of a step: about 5% faster than ``no_grad`` at the benchmark's shape, the same
    arithmetic); the rollout handed back is made of ordinary tensors, since training embeds them.
    """
    with torch.inference_mode():
        r = _sample(model, prompts, n, temperature, top_p, max_new_tokens, generator, uniforms)
    return Rollout(
        r.prompt_index.clone(), r.prompts, r.tokens.clone(), r.mask.clone(), r.logprobs.clone(), r.finished.clone()
    )


def _sample(
    model: GPT,
    prompts: list[list[int]],
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    generator: torch.Generator | None,
    uniforms: torch.Tensor | None,
) -> Rollout:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    block = model.cfg.block_size
    N = len(prompts) * n
    Tp = max(len(p) for p in prompts)
    if Tp >= block:
        raise ValueError(f"prompt of {Tp} tokens does not fit block_size {block}")
    max_new = min(max_new_tokens, block - Tp)
    if uniforms is not None and (uniforms.shape[0] != N or uniforms.shape[1] < max_new):
        raise ValueError(f"uniforms of shape {tuple(uniforms.shape)} for {N} rows of up to {max_new} tokens")

    P = len(prompts)
    ids = torch.full((P, Tp), PAD, dtype=torch.long, device=device)
    valid = torch.zeros((P, Tp), dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        ids[i, Tp - len(p) :] = torch.tensor(p, device=device)
        valid[i, Tp - len(p) :] = True
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)

    # Each prompt is encoded once, then its cache is copied to its n samples: the prefill
    # of a group costs one row, not n.
    dtype = next(model.parameters()).dtype
    cache = KVCache.empty(model.cfg, P, Tp + (max_new if n == 1 else 0), device, dtype)
    cache.key_mask[:, :Tp] = valid
    causal = torch.ones(Tp, Tp, dtype=torch.bool, device=device).tril()
    eye = torch.eye(Tp, dtype=torch.bool, device=device)
    attn = (causal & valid[:, None, :]) | eye  # a pad query attends to itself only: no NaN rows
    logits = model(ids, positions, attn[:, None], cache)[:, -1]
    next_pos = positions[:, -1] + 1
    if n > 1:
        copies = torch.arange(P, device=device).repeat_interleave(n)
        cache.share_prefix(n, max_new)
        logits, next_pos = logits[copies], next_pos[copies]

    out_tokens = torch.full((N, max_new), PAD, dtype=torch.long, device=device)
    out_logp = torch.zeros((N, max_new), device=device)
    out_mask = torch.zeros((N, max_new), dtype=torch.bool, device=device)
    alive = torch.arange(N, device=device)  # original row of each live batch row
    ended = torch.zeros(N, dtype=torch.bool, device=device)  # live row has produced <eos>
    for t in range(max_new):
        if temperature == 0:
            logp = logits.log_softmax(-1)
            tok = logits.argmax(-1)
        else:
            scaled = logits if temperature == 1.0 else logits / temperature  # x / 1 is x: skip the pass
            logp = scaled.log_softmax(-1)
            filtered = _filter_top_p(scaled, top_p) if top_p < 1.0 else scaled
            probs = filtered.softmax(-1)
            # One uniform per live row, from ``uniforms`` or ``generator``: cheaper than
            # ``torch.multinomial``, which draws an exponential for every token of the vocabulary.
            u = (
                uniforms[alive, t]
                if uniforms is not None
                else torch.rand(len(alive), generator=generator, dtype=torch.float64, device=device)
            )
            tok = inverse_cdf(probs, u)
        out_tokens[alive, t] = tok
        out_logp[alive, t] = logp.gather(1, tok[:, None]).squeeze(1).float()
        out_mask[alive, t] = True
        ended |= tok == EOS
        if t == max_new - 1 or ended.all():
            break
        # Compact once half the live batch has ended; until then ended rows keep
        # decoding harmlessly and are cut at their first <eos> below.
        if ended.float().mean() >= 0.5:
            idx = (~ended).nonzero().squeeze(1)
            cache.select(idx)
            alive, tok, next_pos, ended = alive[idx], tok[idx], next_pos[idx], ended[idx]
        L = cache.length
        cache.key_mask[:, L] = True
        logits = model(tok[:, None], next_pos[:, None], cache.key_mask[:, None, None, : L + 1], cache)[:, -1]
        next_pos = next_pos + 1

    # Rows that kept decoding after <eos> without being compacted: cut at the first <eos>.
    is_eos = (out_tokens == EOS) & out_mask
    after = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    out_mask &= ~after
    out_tokens = out_tokens.masked_fill(~out_mask, PAD)
    out_logp = out_logp.masked_fill(~out_mask, 0.0)
    finished = (is_eos & out_mask).any(1)
    model.train(was_training)
    prompt_index = torch.arange(len(prompts), device=device).repeat_interleave(n)
    return Rollout(prompt_index, list(prompts), out_tokens, out_mask, out_logp, finished)


def pack(prompts: list[list[int]], completions: list[list[int]], device=None):
    """Right-padded prompt+completion rows and a mask over the completion tokens."""
    seqs = [p + c for p, c in zip(prompts, completions)]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    cmask = torch.zeros((len(seqs), T), dtype=torch.bool)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        cmask[i, len(p) : len(p) + len(c)] = True
    return ids.to(device), cmask.to(device)


def token_logprobs(
    model: GPT, ids: torch.Tensor, cmask: torch.Tensor, temperature: float = 1.0, return_hidden: bool = False
):
    """Teacher-forced log-prob of every masked token given everything before it.

    Returns (logprobs (B, T-1), mask (B, T-1), logits (B, T-1, V)), aligned so that
    entry t scores token t+1 (plus the hidden states with ``return_hidden``).
    Gradients flow: RL losses are built on this.
    """
    logits, hidden = model(ids[:, :-1], return_hidden=True)
    if temperature != 1.0:
        logits = logits / temperature
    logp = logits.log_softmax(-1).gather(2, ids[:, 1:, None]).squeeze(2)
    mask = cmask[:, 1:]
    if return_hidden:
        return logp.masked_fill(~mask, 0.0), mask, logits, hidden
    return logp.masked_fill(~mask, 0.0), mask, logits


def shared_prompt_logprobs(
    model: GPT, prompts: list[list[int]], n: int, completions: list[list[int]], width: int, temperature: float = 1.0
):
    """``token_logprobs`` of ``pack``ed rows whose prompts come ``n`` to a group (row r continues
    ``prompts[r // n]``), with each prompt computed once instead of ``n`` times.

    Same result, same layout (``width`` is the packed rows' length T): (logprobs (N, T-1), mask
    (N, T-1), logits (N, T-1, V)), gradients included; the work on prompt tokens shrinks n-fold,
    which is most of a GRPO batch's when completions are short next to their prompts.
    """
    device = next(model.parameters()).device
    P, N = len(prompts), len(completions)
    Tp = max(len(p) for p in prompts)
    Tc = max(1, max(len(c) for c in completions))
    ids_p = torch.full((P, Tp), PAD, dtype=torch.long, device=device)
    valid = torch.zeros((P, Tp), dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        ids_p[i, Tp - len(p) :] = torch.tensor(p, device=device)
        valid[i, Tp - len(p) :] = True
    ids_c = torch.full((N, Tc), PAD, dtype=torch.long, device=device)
    cmask = torch.zeros((N, Tc), dtype=torch.bool, device=device)
    for r, c in enumerate(completions):
        ids_c[r, : len(c)] = torch.tensor(c, dtype=torch.long, device=device)
        cmask[r, : len(c)] = True
    last, own = model.forward_shared(ids_p, valid, ids_c[:, :-1] if Tc > 1 else ids_c[:, :0], n)
    # what predicts completion token j: the prompt's last position for j = 0, token j-1 after that
    pred = torch.cat((last.repeat_interleave(n, dim=0)[:, None], own), dim=1)  # (N, Tc, V)
    if temperature != 1.0:
        pred = pred / temperature
    logp = pred.log_softmax(-1).gather(2, ids_c[:, :, None]).squeeze(2)
    # into the packed layout: completion token j of row r is packed at len(prompt) + j, scored at - 1
    starts = torch.tensor([len(prompts[r // n]) - 1 for r in range(N)], device=device)
    rows, j = cmask.nonzero(as_tuple=True)
    cols = starts[rows] + j
    logits = pred.new_zeros((N, width - 1, pred.shape[-1])).index_put((rows, cols), pred[rows, j])
    out = logp.new_zeros((N, width - 1)).index_put((rows, cols), logp[rows, j])
    mask = torch.zeros((N, width - 1), dtype=torch.bool, device=device).index_put((rows, cols), torch.tensor(True))
    return out, mask, logits


@torch.no_grad()
def sequence_logprobs(
    model: GPT, prompts: list[list[int]], completions: list[list[int]], batch_size: int = 256
) -> torch.Tensor:
    """log p(completion | prompt) for each pair, by one teacher-forced pass per batch."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(prompts), batch_size):
        ids, cmask = pack(prompts[s : s + batch_size], completions[s : s + batch_size], device)
        logp, _, _ = token_logprobs(model, ids, cmask)
        out.append(logp.sum(1).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
