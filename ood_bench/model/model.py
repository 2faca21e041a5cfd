"""A small decoder-only transformer, readable in one sitting.

Pre-norm blocks, causal self-attention through ``scaled_dot_product_attention``,
a GELU MLP, tied input/output embeddings, and a choice of position encoding
(learned absolute or rotary), because length generalisation depends on it and a
reader must be able to tell a length failure from a position-encoding failure.

Each block starts with a short causal depthwise convolution over the residual
stream (a "Canon" layer, Allen-Zhu 2025): every position adds a learned mix of
the few tokens before it. A lookup in an edge list ("which node follows ``Cx``?")
otherwise needs an induction circuit to form first, and within the quick budget
it did not: graph routes stayed near chance. With the convolution the same
model learns them in a few hundred steps. ``conv_kernel=0`` removes it.

Two calling modes share one ``forward``:
- training / scoring: right-padded batches, plain causal attention;
- decoding: left-padded prompts with per-row positions and a key mask, plus a
  preallocated KV cache that grows one token per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..config import check
from .kernels import decode_kernel
from .tokenizer import TOKENIZER


@dataclass
class ModelConfig:
    """The shape of a ``GPT``: layers, heads, width, context and position encoding.

    Example::

        ModelConfig(n_layer=1, n_head=2, n_embd=16)  # a tiny model for a plugin's unit tests
    """

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 256
    pos_encoding: str = "rope"  # "rope" or "learned": length OOD depends on it
    # Share of each head's channels that RoPE rotates (GPT-NeoX's rotary_pct);
    # the others carry content only, which content lookups (the graph family) need.
    rope_fraction: float = 1.0
    # Width of the causal convolution that opens every block (0 or 1: none). It
    # hands each position its neighbours' tokens, so edge-list lookups need no
    # induction circuit to form first (see CausalConv).
    conv_kernel: int = 4
    dropout: float = 0.0

    def validate(self, prefix: str = "model") -> None:
        for k in ("n_layer", "n_head", "n_embd", "block_size"):
            check(getattr(self, k) > 0, f"{prefix}.{k}", getattr(self, k), "must be positive")
        check(self.n_embd % self.n_head == 0, f"{prefix}.n_embd", self.n_embd, "must be divisible by n_head")
        check((self.n_embd // self.n_head) % 2 == 0, f"{prefix}.n_embd", self.n_embd, "head size must be even")
        check(
            self.pos_encoding in ("rope", "learned"),
            f"{prefix}.pos_encoding",
            self.pos_encoding,
            "choose rope or learned",
        )
        check(0 <= self.conv_kernel <= 16, f"{prefix}.conv_kernel", self.conv_kernel, "must be in 0..16")
        check(0.0 < self.rope_fraction <= 1.0, f"{prefix}.rope_fraction", self.rope_fraction, "must be in (0, 1]")
        check(0.0 <= self.dropout < 1.0, f"{prefix}.dropout", self.dropout, "must be in [0, 1)")


@dataclass
class SharedPrefix:
    """Keys and values of prompts that several rows continue: stored once per prompt, not per row.

    k, v: (n_layer, P, n_head, Tp, head_dim); ``mask`` (P, Tp) marks real prompt tokens. The batch's
    rows are the prompts' samples in order, ``n`` per prompt (row r continues prompt r // n).
    Decoding reads each prompt's keys once for its ``n`` rows instead of ``n`` times, which is
    most of the memory traffic of attention when samples are short next to their prompts.
    """

    k: torch.Tensor
    v: torch.Tensor
    mask: torch.Tensor
    n: int


@dataclass
class KVCache:
    """Keys and values of every layer for a batch being decoded.

    k, v: (n_layer, B, n_head, T_max, head_dim); ``length`` positions are filled.
    ``key_mask`` (B, T_max) marks real tokens, so left padding is never attended.
    ``conv``: (n_layer, B, conv_kernel - 1, C), the last inputs of each block's
    convolution, which the next decoded token mixes in. With a ``prefix``, ``k``,
    ``v``, ``key_mask`` and ``length`` cover only the tokens decoded after it.
    """

    k: torch.Tensor
    v: torch.Tensor
    key_mask: torch.Tensor
    conv: torch.Tensor | None = None
    length: int = 0
    prefix: SharedPrefix | None = None

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, max_len: int, device, dtype) -> KVCache:
        hd = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, batch, cfg.n_head, max_len, hd)
        return cls(  # keys and values past ``length`` are never read, so they need no zeroing
            k=torch.empty(shape, device=device, dtype=dtype),
            v=torch.empty(shape, device=device, dtype=dtype),
            key_mask=torch.zeros(batch, max_len, device=device, dtype=torch.bool),
            conv=torch.zeros((cfg.n_layer, batch, cfg.conv_kernel - 1, cfg.n_embd), device=device, dtype=dtype)
            if cfg.conv_kernel > 1
            else None,
        )

    @property
    def tokens(self) -> int:
        """Tokens each row has seen so far, shared prefix included."""
        return self.length + (self.prefix.k.shape[3] if self.prefix is not None else 0)

    def share_prefix(self, n: int, new_tokens: int) -> None:
        """After the prompts' prefill: keep their keys once as a ``SharedPrefix`` for ``n`` rows each,
        and make room for ``new_tokens`` decoded tokens per row."""
        L, P, H, _, hd = self.k.shape
        self.prefix = SharedPrefix(
            self.k[:, :, :, : self.length], self.v[:, :, :, : self.length], self.key_mask[:, : self.length], n
        )
        self.k = self.k.new_empty((L, P * n, H, new_tokens, hd))
        self.v = self.v.new_empty((L, P * n, H, new_tokens, hd))
        self.key_mask = self.key_mask.new_zeros((P * n, new_tokens))
        if self.conv is not None:
            self.conv = self.conv.repeat_interleave(n, dim=1)
        self.length = 0

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` of the batch, in that order and repeated as often as given (finished
        sequences drop out). Only the filled ``length`` positions are copied; a shared prefix is
        copied back into each kept row, since the rows no longer come in whole groups."""
        pre = self.prefix
        Tp = pre.k.shape[3] if pre is not None else 0
        shape = (self.k.shape[0], len(rows), self.k.shape[2], Tp + self.k.shape[3], self.k.shape[4])
        k, v = self.k.new_empty(shape), self.v.new_empty(shape)
        mask = self.key_mask.new_zeros((len(rows), shape[3]))
        if pre is not None:
            prompt = torch.div(rows, pre.n, rounding_mode="floor")
            k[:, :, :, :Tp], v[:, :, :, :Tp] = pre.k[:, prompt], pre.v[:, prompt]
            mask[:, :Tp] = pre.mask[prompt]
        k[:, :, :, Tp : Tp + self.length] = self.k[:, rows, :, : self.length]
        v[:, :, :, Tp : Tp + self.length] = self.v[:, rows, :, : self.length]
        mask[:, Tp : Tp + self.length] = self.key_mask[rows, : self.length]
        self.k, self.v, self.key_mask, self.prefix = k, v, mask, None
        self.length += Tp
        if self.conv is not None:
            self.conv = self.conv[:, rows]


def rope_tables(head_dim: int, max_pos: int, base: float = 10000.0):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angles = torch.outer(torch.arange(max_pos).float(), inv_freq)  # (max_pos, hd/2)
    return angles.cos(), angles.sin()


def rotary_dims(cfg: ModelConfig) -> int:
    """Channels per head that RoPE rotates: ``rope_fraction`` of the head, rounded down to even."""
    head_dim = cfg.n_embd // cfg.n_head
    return max(2, int(head_dim * cfg.rope_fraction) // 2 * 2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels; x (B, H, T, hd), cos/sin (B, 1, T, hd/2)."""
    return rotate(x, torch.complex(cos, sin))


def rotate(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """RoPE as one complex product: channel pairs (2i, 2i+1) are the complex number x_2i + i x_2i+1,
    turned by ``rot`` = cos + i sin. The same products and sums as the real formula
    (x_2i cos - x_2i+1 sin, x_2i sin + x_2i+1 cos), in one kernel instead of six."""
    turned = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2)) * rot
    return torch.view_as_real(turned).flatten(-2).to(x.dtype)


def attend(q, k, v, attn_mask: torch.Tensor | None, dropout: float = 0.0) -> torch.Tensor:
    """Attention of q over k, v (B, H, T, hd): causal without a mask, else as ``attn_mask`` allows.

    Under CPU autocast (``trainer.precision=bf16-mixed``) the matmuls of the linear layers run in bf16
    but attention runs in fp32: PyTorch's CPU attention backward is slower in bf16 than in fp32 at the
    quick shape (``benchmarks/test_precision_speed.py`` measures it), and the softmax stays exact. On a
    GPU autocast chooses as usual."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return attend(q.float(), k.float(), v.float(), attn_mask, dropout).to(q.dtype)
    if attn_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)


def _kernel_for(q: torch.Tensor):
    """The decode kernel where it applies: ``OOD_BENCH_ENGINE`` chose it, and ``q`` is fp32 on the CPU with
    no gradient to carry (the kernel has no backward). Everything else takes the eager path."""
    if q.dtype != torch.float32 or q.device.type != "cpu" or (q.requires_grad and torch.is_grad_enabled()):
        return None
    return decode_kernel()


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.n_head, self.layer = cfg.n_head, layer
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.dropout = cfg.dropout

    def _heads(self, x, rope):
        """q, k, v of ``x`` as (B, H, T, head_dim), positions applied."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B,H,T,hd)
        if rope is not None:
            # Partial rotary: only the first ``rot`` channels of each head carry
            # position; the rest match on content alone (induction-style lookups).
            rot = rope.shape[-1] * 2
            if rot == q.shape[-1]:
                q, k = rotate(q, rope), rotate(k, rope)
            else:
                q = torch.cat((rotate(q[..., :rot], rope), q[..., rot:]), dim=-1)
                k = torch.cat((rotate(k[..., :rot], rope), k[..., rot:]), dim=-1)
        return q, k, v

    def forward_shared(self, x_p, x_c, rope_p, rope_c, attn_p, prompt_valid, n: int):
        """Prompts (P rows, left-padded) and their continuations (N = P * n rows) in one pass: each
        continuation attends to its prompt's keys, computed once, and causally to its own."""
        q_p, k_p, v_p = self._heads(x_p, rope_p)
        y_p = F.scaled_dot_product_attention(q_p, k_p, v_p, attn_mask=attn_p)
        q_c, k_c, v_c = self._heads(x_c, rope_c)
        P, H, Tp, hd = k_p.shape
        N, _, Tc, _ = q_c.shape
        scale = hd**-0.5
        grouped = q_c.reshape(P, n, H, Tc, hd).transpose(1, 2).reshape(P, H, n * Tc, hd)
        s_pre = torch.matmul(grouped, k_p.transpose(-1, -2)) * scale  # (P, H, n*Tc, Tp)
        s_pre = s_pre.masked_fill(~prompt_valid[:, None, None, :], float("-inf"))
        s_pre = s_pre.reshape(P, H, n, Tc, Tp).transpose(1, 2).reshape(N, H, Tc, Tp)
        s_own = torch.matmul(q_c, k_c.transpose(-1, -2)) * scale  # (N, H, Tc, Tc)
        causal = torch.ones(Tc, Tc, dtype=torch.bool, device=x_c.device).tril()
        s_own = s_own.masked_fill(~causal, float("-inf"))
        w = torch.cat((s_pre, s_own), dim=-1).softmax(-1)
        w_pre = w[..., :Tp].reshape(P, n, H, Tc, Tp).transpose(1, 2).reshape(P, H, n * Tc, Tp)
        y_c = torch.matmul(w_pre, v_p).reshape(P, H, n, Tc, hd).transpose(1, 2).reshape(N, H, Tc, hd)
        y_c = y_c + torch.matmul(w[..., Tp:], v_c)
        out = [self.proj(y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)) for y in (y_p, y_c)]
        return out[0], out[1]

    def forward(self, x, rope, attn_mask, cache: KVCache | None):
        B, T, C = x.shape
        q, k, v = self._heads(x, rope)
        if cache is not None:
            start = cache.length
            cache.k[self.layer, :, :, start : start + T] = k
            cache.v[self.layer, :, :, start : start + T] = v
            k = cache.k[self.layer, :, :, : start + T]
            v = cache.v[self.layer, :, :, : start + T]
            if T == 1 and cache.prefix is not None:
                return self.proj(self._attend_with_prefix(q, k, v, cache.prefix).transpose(1, 2).reshape(B, T, C))
            if T == 1 and attn_mask is not None:
                kernel = _kernel_for(q)
                if kernel is not None:  # every row and head in one call (see ood_bench/model/kernels)
                    no_prompt = q.new_empty(B, self.n_head, 1, 0)  # no shared prompt: the cache holds every key
                    _, y = kernel.decode_attention(
                        q.squeeze(2),
                        k,
                        v,
                        no_prompt,
                        attn_mask.new_ones(B, 0),
                        q.shape[-1] ** -0.5,
                        attn_mask.expand(B, 1, 1, -1).reshape(B, -1),
                    )
                    return self.proj(y.reshape(B, T, C))
                # One new token against the cache: plain batched matmuls read the strided cache
                # slices directly (SDPA's CPU kernels are slower on this shape: benchmarks/ measures it).
                scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
                scores = scores.masked_fill(~attn_mask, float("-inf"))
                y = torch.matmul(scores.softmax(-1), v)
                return self.proj(y.transpose(1, 2).reshape(B, T, C))
        y = attend(q, k, v, attn_mask, self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def _attend_with_prefix(self, q, k, v, prefix: SharedPrefix):
        """One new token per row against its prompt's shared keys and its own decoded ones.

        q (N, H, 1, hd) with N = P * n rows; the prompt scores are computed per prompt for its
        n rows at once, then one softmax runs over prompt and decoded keys together."""
        N, H, _, hd = q.shape
        P, n = prefix.k.shape[1], prefix.n
        pk, pv = prefix.k[self.layer], prefix.v[self.layer]  # (P, H, Tp, hd)
        qg = q.view(P, n, H, hd).transpose(1, 2)  # (P, H, n, hd)
        scale = hd**-0.5
        kernel = _kernel_for(q)
        if kernel is not None:
            # The prompt scores stay one batched matmul per prompt (efficient as it is); the kernel does
            # the N*H one-row products over each row's own keys and the softmax, which eager spends most
            # of its time dispatching, and hands back the prompt weights for the second batched matmul.
            w_pre, y_own = kernel.decode_attention(
                q.view(N, H, hd), k, v, torch.matmul(qg, pk.transpose(-1, -2)), prefix.mask, scale
            )
            y = torch.matmul(w_pre, pv).transpose(1, 2).reshape(N, H, 1, hd)
            return y + y_own.view(N, H, 1, hd)
        s_pre = torch.matmul(qg, pk.transpose(-1, -2)) * scale  # (P, H, n, Tp)
        s_pre = s_pre.masked_fill(~prefix.mask[:, None, None, :], float("-inf"))
        s_new = torch.matmul(q, k.transpose(-1, -2)) * scale  # (N, H, 1, t): every decoded key is real
        s_pre = s_pre.transpose(1, 2).reshape(N, H, 1, -1)
        w = torch.cat((s_pre, s_new), dim=-1).softmax(-1)
        Tp = s_pre.shape[-1]
        w_pre = w[..., :Tp].reshape(P, n, H, Tp).transpose(1, 2)  # (P, H, n, Tp)
        y = torch.matmul(w_pre, pv).transpose(1, 2).reshape(N, H, 1, hd)
        return y + torch.matmul(w[..., Tp:], v)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class CausalConv(nn.Module):
    """Depthwise causal convolution: ``y_t = x_t + sum_j w_j * x_{t-j}``, j = 0..kernel-1.

    ``index`` counts the tokens of each document from 0 (the positions, unless
    training moves them: see ``data.skipped_positions``), so ``index >= j`` says
    whether ``x_{t-j}`` belongs to the same document; this keeps packed rows and
    left padding from leaking into a sequence.
    """

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.kernel, self.layer = cfg.conv_kernel, layer
        self.weight = nn.Parameter(torch.randn(cfg.conv_kernel, cfg.n_embd) * (0.5 / math.sqrt(cfg.conv_kernel)))

    def forward(self, x, index, cache: KVCache | None):
        B, T, C = x.shape
        if cache is not None and cache.tokens > 0 and T == 1:
            return self._decode_one(x, index, cache)
        if cache is not None and cache.tokens > 0:
            past = cache.conv[self.layer]  # inputs of the tokens before this one
        else:
            past = x.new_zeros(B, self.kernel - 1, C)
        y, tail = self.mix(x, index, past)
        if cache is not None:
            cache.conv[self.layer] = tail
        return y

    def mix(self, x, index, past):
        """The convolution of ``x`` given ``past`` (B, kernel-1, C), the inputs before it; also returns
        the last kernel-1 inputs, the ``past`` of whatever continues ``x``."""
        T = x.shape[1]
        full = torch.cat((past, x), dim=1)  # (B, kernel-1+T, C)
        out = x * self.weight[0]
        for j in range(1, self.kernel):
            shifted = full[:, self.kernel - 1 - j : self.kernel - 1 - j + T]  # x_{t-j}
            out = out + shifted * self.weight[j] * (index >= j).unsqueeze(-1)
        return x + out, full[:, -(self.kernel - 1) :]

    def _decode_one(self, x, index, cache: KVCache):
        """One new token per row: the kernel-1 cached inputs weighted at once, not lag by lag."""
        past = cache.conv[self.layer]  # (B, kernel-1, C): x_{t-kernel+1} .. x_{t-1}
        lags = torch.arange(self.kernel - 1, 0, -1, device=x.device)  # the lag of each cached input
        weight = self.weight[1:].flip(0)  # weight of lag kernel-1 first, as ``past`` is ordered
        same_doc = (index[:, :1] >= lags).unsqueeze(-1).to(x.dtype)  # (B, kernel-1, 1)
        out = x * self.weight[0] + (past * weight * same_doc).sum(1, keepdim=True)
        cache.conv[self.layer] = torch.cat((past[:, 1:], x), dim=1)
        return x + out


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.conv = CausalConv(cfg, layer) if cfg.conv_kernel > 1 else None
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg, layer)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x, index, rope, attn_mask, cache):
        if self.conv is not None:
            x = self.conv(x, index, cache)
        x = x + self.attn(self.ln1(x), rope, attn_mask, cache)
        return x + self.mlp(self.ln2(x))

    def forward_shared(self, x_p, x_c, pos_p, pos_c, rope_p, rope_c, attn_p, prompt_valid, n: int):
        if self.conv is not None:
            x_p, tail = self.conv.mix(x_p, pos_p, x_p.new_zeros(x_p.shape[0], self.conv.kernel - 1, x_p.shape[2]))
            x_c, _ = self.conv.mix(x_c, pos_c, tail.repeat_interleave(n, dim=0))
        a_p, a_c = self.attn.forward_shared(self.ln1(x_p), self.ln1(x_c), rope_p, rope_c, attn_p, prompt_valid, n)
        x_p, x_c = x_p + a_p, x_c + a_c
        return x_p + self.mlp(self.ln2(x_p)), x_c + self.mlp(self.ln2(x_c))


class GPT(nn.Module):
    """The decoder-only transformer every policy, reference and base is (a ``torch.nn.Module``).

    ``model(ids)`` returns logits (B, T, V); inside an algorithm, score rows with ``ctx.logprobs``
    rather than calling it directly.

    Example::

        model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16))
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int = TOKENIZER.vocab_size) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        # Activation checkpointing for passes with gradients: each block's activations are recomputed in
        # the backward pass instead of kept, the same gradients bit for bit for a little more compute. Not
        # part of the config or the checkpoint: it decides memory, never a result.
        self.recompute = False
        self.tok_emb = nn.Embedding(vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos_encoding == "learned" else None
        if cfg.pos_encoding == "rope":
            cos, sin = rope_tables(rotary_dims(cfg), cfg.block_size)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:  # (CausalConv keeps its own init)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _embed(self, idx, positions):
        """Token embeddings (plus learned positions), and the RoPE rotations (B, 1, T, rot/2) if used."""
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            return self.drop(x + self.pos_emb(positions)), None
        return self.drop(x), torch.complex(
            self.rope_cos[positions].float(), self.rope_sin[positions].float()
        ).unsqueeze(1)

    def _run_block(self, fn, *args):
        """One block, its activations recomputed in the backward pass when ``recompute`` is on (never while
        decoding into a cache, which has no backward pass)."""
        if self.recompute and torch.is_grad_enabled() and not any(isinstance(a, KVCache) for a in args):
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward_shared(
        self, prompts: torch.Tensor, prompt_valid: torch.Tensor, continuations: torch.Tensor, n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of ``n`` continuations of each prompt, the prompts computed once (training too).

        ``prompts`` (P, Tp) left-padded (``prompt_valid`` marks real tokens); ``continuations``
        (P * n, Tc), row r continuing prompt r // n. Returns the logits at each prompt's last token
        (P, V), which predict every continuation's first token, and at each continuation token
        (P * n, Tc, V). Equal to running every row whole, with the prompt's work done once.
        """
        P, Tp = prompts.shape
        Tc = continuations.shape[1]
        pos_p = (prompt_valid.long().cumsum(1) - 1).clamp(min=0)
        lengths = prompt_valid.sum(1).repeat_interleave(n)
        pos_c = lengths[:, None] + torch.arange(Tc, device=prompts.device)
        if int(pos_c.max()) >= self.cfg.block_size:
            raise ValueError(f"position {int(pos_c.max())} exceeds block_size {self.cfg.block_size}")
        causal = torch.ones(Tp, Tp, dtype=torch.bool, device=prompts.device).tril()
        eye = torch.eye(Tp, dtype=torch.bool, device=prompts.device)
        attn_p = ((causal & prompt_valid[:, None, :]) | eye)[:, None]  # a pad query attends to itself only
        x_p, rope_p = self._embed(prompts, pos_p)
        x_c, rope_c = self._embed(continuations, pos_c)
        for block in self.blocks:
            x_p, x_c = self._run_block(
                block.forward_shared, x_p, x_c, pos_p, pos_c, rope_p, rope_c, attn_p, prompt_valid, n
            )
        return self.head(self.ln_f(x_p[:, -1])), self.head(self.ln_f(x_c))

    def forward(
        self,
        idx: torch.Tensor,
        positions: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_hidden: bool = False,
        doc_index: torch.Tensor | None = None,
    ):
        """idx (B, T) -> logits (B, T, vocab).

        ``positions`` (B, T) default to 0..T-1; ``attn_mask`` (B, 1, T, S) is a
        boolean "may attend" mask over the S keys (cache included); without it,
        attention is plainly causal. With ``return_hidden`` it returns
        (logits, final hidden states (B, T, C)), for heads such as PPO's value head.
        ``doc_index`` (B, T) counts each document's tokens from 0; it defaults to
        ``positions`` and differs only when pretraining skips positions.
        """
        B, T = idx.shape
        if positions is None:
            positions = torch.arange(T, device=idx.device).expand(B, T)
        if int(positions.max()) >= self.cfg.block_size:
            raise ValueError(f"position {int(positions.max())} exceeds block_size {self.cfg.block_size}")
        x, rope = self._embed(idx, positions)
        for block in self.blocks:
            x = self._run_block(block, x, positions if doc_index is None else doc_index, rope, attn_mask, cache)
        if cache is not None:
            cache.length += T
        h = self.ln_f(x)
        logits = self.head(h)
        return (logits, h) if return_hidden else logits
