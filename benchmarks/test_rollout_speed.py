"""Rollout speed: the KV-cached engine against naive re-encoding, side by side.

Run with ``python -m pytest benchmarks --benchmark-enable``; compare the two rows
of the ``rollout`` group (their ratio is the speed-up of the cache). Nothing here
asserts a time: the numbers are for reading, not for passing.
"""

import pytest
import torch

from ood_bench.model import ModelConfig
from ood_bench.model import GPT
from ood_bench.rollout import sample
from ood_bench.tokenizer import EOS

BATCH, PROMPT, NEW = 64, 40, 48


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = GPT(ModelConfig()).eval()
    with torch.no_grad():
        model.head.weight[EOS] -= 5.0  # keep every row decoding for the full budget
    prompts = [[1] + torch.randint(3, 40, (PROMPT,)).tolist() for _ in range(BATCH)]
    return model, prompts


@torch.no_grad()
def naive_sample(model, prompts, max_new):
    """Baseline: re-run the whole sequence for every new token (no cache)."""
    ids = torch.tensor(prompts)
    for _ in range(max_new):
        logits = model(ids)[:, -1]
        nxt = torch.multinomial(logits.softmax(-1), 1)
        ids = torch.cat([ids, nxt], 1)
    return ids


@pytest.mark.benchmark(group="rollout")
def test_kv_cached_engine(benchmark, setup):
    model, prompts = setup
    out = benchmark(lambda: sample(model, prompts, n=1, max_new_tokens=NEW,
                                   generator=torch.Generator().manual_seed(0)))
    assert out.tokens.shape == (BATCH, NEW)


@pytest.mark.benchmark(group="rollout")
def test_naive_uncached_baseline(benchmark, setup):
    model, prompts = setup
    out = benchmark(lambda: naive_sample(model, prompts, NEW))
    assert out.shape == (BATCH, PROMPT + 1 + NEW)
