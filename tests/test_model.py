"""The transformer and the rollout engine: cache correctness and padding invariance."""

import pytest
import torch

from ood_bench.model.model import GPT, KVCache, ModelConfig
from ood_bench.model.rollout import pack, sample, sequence_logprobs, token_logprobs
from ood_bench.model.tokenizer import EOS


def tiny(pos="rope", seed=0, rope_fraction=1.0):
    torch.manual_seed(seed)
    return GPT(
        ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=64, pos_encoding=pos, rope_fraction=rope_fraction)
    ).eval()


@pytest.mark.parametrize("pos,rope_fraction", [("rope", 1.0), ("rope", 0.5), ("learned", 1.0)])
def test_cached_decoding_gives_the_uncached_logits(pos, rope_fraction):
    m = tiny(pos, rope_fraction=rope_fraction)
    ids = torch.randint(3, 40, (3, 12))
    full = m(ids)
    cache = KVCache.empty(m.cfg, 3, 12, "cpu", torch.float32)
    cache.key_mask[:] = True
    step_logits = [
        m(ids[:, :5], attn_mask=torch.ones(5, 5, dtype=torch.bool).tril()[None, None].expand(3, 1, 5, 5), cache=cache)
    ]
    for t in range(5, 12):
        pos_t = torch.full((3, 1), t)
        step_logits.append(m(ids[:, t : t + 1], pos_t, cache.key_mask[:, None, None, : t + 1], cache))
    cached = torch.cat(step_logits, 1)
    assert torch.allclose(cached, full, atol=1e-5)


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_sampled_logprobs_equal_teacher_forced_logprobs(pos):
    """Left-padded cached sampling and right-padded scoring agree token by token."""
    m = tiny(pos)
    prompts = [[1, 5, 6, 7, 8], [1, 9], [1, 11, 12, 13, 14, 15, 16, 17]]
    r = sample(m, prompts, n=3, temperature=1.0, max_new_tokens=12, generator=torch.Generator().manual_seed(0))
    comps = [row[mask].tolist() for row, mask in zip(r.tokens, r.mask)]
    ps = [prompts[i] for i in r.prompt_index.tolist()]
    assert torch.allclose(sequence_logprobs(m, ps, comps), r.logprobs.sum(1), atol=1e-4)
    ids, cmask = pack(ps, comps)
    lp, mask, _ = token_logprobs(m, ids, cmask)
    assert torch.allclose(lp.sum(1), r.logprobs.sum(1), atol=1e-4)


def test_greedy_is_deterministic_and_padding_invariant():
    m = tiny()
    a = sample(m, [[1, 5, 6, 7]], n=1, temperature=0.0, max_new_tokens=10)
    b = sample(m, [[1, 5, 6, 7], [1, 9, 9, 9, 9, 9, 9, 9, 9]], n=1, temperature=0.0, max_new_tokens=10)
    assert torch.equal(a.tokens[0], b.tokens[0, : a.tokens.shape[1]])


def test_sampling_is_seeded():
    m = tiny()
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a = sample(m, [[1, 5, 6]], n=4, temperature=1.0, max_new_tokens=8, generator=g())
    b = sample(m, [[1, 5, 6]], n=4, temperature=1.0, max_new_tokens=8, generator=g())
    assert torch.equal(a.tokens, b.tokens)


def test_mask_ends_at_eos_and_top_p_restricts_support():
    m = tiny()
    with torch.no_grad():
        m.head.weight[EOS] += 0.3  # make <eos> likely so some rows finish early
    r = sample(m, [[1, 5]], n=16, temperature=1.0, max_new_tokens=20, generator=torch.Generator().manual_seed(1))
    for row, mask in zip(r.tokens, r.mask):
        toks = row[mask].tolist()
        assert EOS not in toks[:-1]
    greedy = sample(m, [[1, 5]], n=1, temperature=0.0, max_new_tokens=6)
    tiny_p = sample(
        m, [[1, 5]], n=4, temperature=1.0, top_p=1e-6, max_new_tokens=6, generator=torch.Generator().manual_seed(0)
    )
    for row in tiny_p.tokens:  # top-p -> 0 keeps only the argmax: greedy
        assert torch.equal(row, greedy.tokens[0])


def test_decoding_stops_when_every_row_has_ended_and_compaction_keeps_each_row_exact():
    m = tiny()
    calls = []

    def eos_likely(module, args, out):  # rows end at different steps; count the decoding calls
        calls.append(1)
        logits, *hidden = out if isinstance(out, tuple) else (out,)
        logits = logits + 4.0 * (torch.arange(logits.shape[-1]) == EOS)
        return (logits, *hidden) if hidden else logits

    m.register_forward_hook(eos_likely)
    prompts = [[1, 5], [1, 9, 9, 9], [1, 11, 12, 13, 14, 15]]
    r = sample(m, prompts, n=8, temperature=1.0, max_new_tokens=60, generator=torch.Generator().manual_seed(2))
    longest = int(r.lengths.max())
    assert bool(r.finished.all()) and int(r.lengths.min()) < longest < 60
    assert len(calls) == longest  # prefill + one call per later token, none once every row has ended
    # Rows that outlived a compaction of the cache still score exactly as teacher-forced.
    comps = [row[mask].tolist() for row, mask in zip(r.tokens, r.mask)]
    ps = [prompts[i] for i in r.prompt_index.tolist()]
    assert torch.allclose(sequence_logprobs(m, ps, comps), r.logprobs.sum(1), atol=1e-4)


def test_position_encoding_knob_changes_the_model():
    assert tiny("learned").pos_emb is not None and tiny("rope").pos_emb is None


def test_partial_rope_leaves_content_channels_position_free():
    """With rope_fraction < 1 the unrotated channels of q.k do not depend on position."""
    from ood_bench.model.model import apply_rope, rotary_dims

    m = tiny("rope", rope_fraction=0.5)
    rot = rotary_dims(m.cfg)
    assert rot == 8  # half of a 16-channel head
    q = torch.randn(1, 1, 1, 16)
    k = torch.randn(1, 1, 1, 16)
    dots = []
    for shift in (0, 7):  # move both query and key by the same offset
        cos_q, sin_q = m.rope_cos[torch.tensor([[3 + shift]])], m.rope_sin[torch.tensor([[3 + shift]])]
        cos_k, sin_k = m.rope_cos[torch.tensor([[1 + shift]])], m.rope_sin[torch.tensor([[1 + shift]])]
        qr = torch.cat((apply_rope(q[..., :rot], cos_q[:, None], sin_q[:, None]), q[..., rot:]), -1)
        kr = torch.cat((apply_rope(k[..., :rot], cos_k[:, None], sin_k[:, None]), k[..., rot:]), -1)
        dots.append((qr * kr).sum())
        assert torch.equal(qr[..., rot:], q[..., rot:])  # content channels untouched
    assert torch.allclose(dots[0], dots[1], atol=1e-5)  # and rotated ones are relative


@pytest.mark.parametrize("pos,frac,conv", [("rope", 1.0, 4), ("rope", 0.5, 4), ("learned", 1.0, 4), ("rope", 1.0, 1)])
def test_prompts_computed_once_score_like_whole_rows(pos, frac, conv):
    """``shared_prompt_logprobs`` (each prompt once for its n samples) equals ``token_logprobs`` on the
    packed rows: log-probs, mask, logits and gradients, for prompts of different lengths."""
    from ood_bench.model.rollout import shared_prompt_logprobs

    torch.manual_seed(0)
    m = GPT(
        ModelConfig(
            n_layer=2, n_head=2, n_embd=32, block_size=64, pos_encoding=pos, rope_fraction=frac, conv_kernel=conv
        )
    )
    prompts, n = [[1, 5, 6, 7, 8], [1, 9], [1, 11, 12, 13, 14, 15, 16, 17]], 3
    comps = [[20 + r, 30, 2][: r % 3 + 1] + [40] * (r % 2) for r in range(9)]
    comps[4] = [2]
    ids, cmask = pack([prompts[r // n] for r in range(9)], comps)
    whole = token_logprobs(m, ids, cmask, temperature=0.7)
    shared = shared_prompt_logprobs(m, prompts, n, comps, ids.shape[1], temperature=0.7)
    assert torch.equal(whole[1], shared[1])
    assert torch.allclose(whole[0], shared[0], atol=1e-5)
    assert torch.allclose(whole[2] * whole[1][..., None], shared[2], atol=1e-5)
    g_whole = torch.autograd.grad(whole[0].sum(), list(m.parameters()))
    g_shared = torch.autograd.grad(shared[0].sum(), list(m.parameters()))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_whole, g_shared))


def test_a_bfloat16_model_runs_forward_and_samples():
    """RoPE turns in float32 and casts back, so bf16 weights (trainer.precision=bf16-true) work."""
    m = tiny().to(torch.bfloat16)
    ids = torch.tensor([[1, 5, 6, 7]])
    assert m(ids).dtype == torch.bfloat16
    r = sample(m, [[1, 5, 6]], n=2, max_new_tokens=4, generator=torch.Generator().manual_seed(0))
    assert r.tokens.shape == (2, 4)


def test_under_cpu_autocast_the_linear_layers_run_in_bf16_and_attention_in_fp32(monkeypatch):
    """trainer.precision=bf16-mixed (the quick suite's pretraining): the matmuls of the linear layers
    take bf16, attention takes fp32 inputs (the CPU kernel's bf16 backward is slower than its fp32 one,
    and the softmax stays exact), and gradients reach the fp32 weights."""
    import torch.nn.functional as F

    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append((q.dtype, k.dtype, v.dtype))
        return real(q, k, v, **kw)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    m = tiny()
    ids = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 10, 11, 12]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = m(ids)
    assert logits.dtype == torch.bfloat16  # autocast was on for the linear layers
    assert seen and all(d == (torch.float32,) * 3 for d in seen)
    logits.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in m.parameters() if p.requires_grad)
    # and outside autocast nothing changes: fp32 through and through, equal to the plain causal attention
    seen.clear()
    assert m(ids).dtype == torch.float32 and seen == [(torch.float32,) * 3] * m.cfg.n_layer


def _saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while ``fn`` runs its forward."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total[0], out


@pytest.mark.parametrize("shared", [True, False])
def test_activation_checkpointing_gives_the_same_gradients_bit_for_bit_and_keeps_less(shared):
    """``recompute`` (post-training's ``activation_checkpointing``) trades memory for compute only: every
    gradient and log-prob is identical to the bit, and the forward keeps a fraction of the activations."""
    from ood_bench.model.rollout import shared_prompt_logprobs

    torch.manual_seed(0)
    m = GPT(ModelConfig(n_layer=3, n_head=2, n_embd=32, block_size=64, conv_kernel=4))
    prompts, n = [[1, 5, 6, 7, 8], [1, 9], [1, 11, 12, 13, 14, 15, 16, 17]], 4
    comps = [[20 + r, 30, 31, 32, 33, 34, 2][: r % 6 + 2] for r in range(12)]
    ids, cmask = pack([prompts[r // n] for r in range(12)], comps)

    def score():
        if shared:
            return shared_prompt_logprobs(m, prompts, n, comps, ids.shape[1], temperature=0.7)[0]
        return token_logprobs(m, ids, cmask, temperature=0.7)[0]

    results = {}
    for recompute in (False, True):
        m.recompute = recompute
        kept, logp = _saved_bytes(score)
        grads = torch.autograd.grad((logp * torch.linspace(-1, 1, logp.shape[1])).sum(), list(m.parameters()))
        results[recompute] = kept, logp.detach(), grads
    (kept_off, logp_off, g_off), (kept_on, logp_on, g_on) = results[False], results[True]
    assert torch.equal(logp_off, logp_on)
    assert all(torch.equal(a, b) for a, b in zip(g_off, g_on))
    assert kept_on < kept_off / 2, (kept_on, kept_off)
