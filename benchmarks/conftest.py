"""Shared pieces of the speed benchmarks: the project's default model, a GPT-2 of the same size for
the Hugging Face side, and the prompt shapes. See ``benchmarks/README.md``.

Run: ``pip install -e '.[bench]' && python -m pytest benchmarks --benchmark-enable``.
Nothing here asserts a time; each benchmark stores what it measured (tokens/s, step time) in
``extra_info`` and ``benchmarks/report.py`` turns a saved run into the ratio table.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ood_bench.model.model import GPT, ModelConfig
from ood_bench.model.tokenizer import BOS, EOS, PAD, TOKENIZER

V = TOKENIZER.vocab_size
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    """Skip every benchmark, with one line saying why, when pytest-benchmark is disabled (the project's
    ``addopts`` disable it so the test command stays fast). Disabled, ``benchmark`` runs its function
    once with no timing, so a benchmark has no measurement to report: skipped, it says so instead."""
    if not (config.getoption("benchmark_disable") and not config.getoption("benchmark_enable")):
        return
    skip = pytest.mark.skip(
        reason="speed benchmarks measure only with --benchmark-enable: python -m pytest benchmarks --benchmark-enable"
    )
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()) and HERE in item.path.parents:
            item.add_marker(skip)


def our_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig()).eval()


def gpt2_twin(model: GPT):
    """A Hugging Face GPT-2 with the same width, depth, heads, vocabulary and context as ``model``."""
    transformers = pytest.importorskip("transformers", reason="the bench extra: pip install -e '.[bench]'")
    cfg = model.cfg
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=V,
            n_positions=cfg.block_size,
            n_embd=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            bos_token_id=BOS,
            eos_token_id=EOS,
            pad_token_id=PAD,
            attn_implementation="sdpa",
        )
    )
    return hf.eval()


def eos_bias(head: torch.nn.Module, bias: float):
    """Add ``bias`` to the <eos> logit of every forward through ``head`` (a forward hook): a large
    negative one suppresses <eos> (fixed-length decoding); a positive one sets a real stop rate."""

    def hook(_module, _inputs, out):
        out[..., EOS] += bias
        return out

    return head.register_forward_hook(hook)


def stop_bias(vocab: int, rate: float = 1 / 20) -> float:
    """The <eos> logit bias that makes a random-init model (near-uniform logits) stop at about ``rate``
    per token."""
    return math.log(rate * (vocab - 1) / (1 - rate))


def random_prompts(k: int, length: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [[BOS] + torch.randint(3, V, (length - 1,), generator=g).tolist() for _ in range(k)]
