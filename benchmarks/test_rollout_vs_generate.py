"""Rollouts: the project's engine against Hugging Face ``generate`` on a GPT-2 of the same size.

Two shapes, each run side by side in one process:
- ``fixed``: 64 prompts x 8 samples (512 rows), 24-token prompts, exactly 32 new tokens, temperature 1,
  fp32, <eos> suppressed in both (every row decodes the full budget: pure decoding speed);
- ``grpo``: GRPO's default rollout, 32 prompts x 8 samples, up to 128 new tokens, with a real stop
  rate (an <eos> bias giving about 1 in 20 per token in both models), so both pay for uneven lengths.
The no-cache loop (re-encode the whole sequence every token) is kept as a floor at the fixed shape.
Each shape is also run interleaved (engine, generate, engine, ...) for a ratio that the machine's drift
over the run does not tilt.
"""

import statistics
import time

import pytest
import torch

from ood_bench.model.rollout import sample

from .conftest import EOS, PAD, eos_bias, gpt2_twin, our_model, random_prompts, stop_bias

transformers = pytest.importorskip("transformers", reason="the bench extra: pip install -e '.[bench]'")

SHAPES = {  # prompts, samples per prompt, prompt tokens, new tokens, <eos> logit bias
    "fixed": (64, 8, 24, 32, -1e4),
    "grpo": (32, 8, 24, 128, 0.0),
}


@pytest.fixture(scope="module")
def models():
    ours = our_model()
    hf = gpt2_twin(ours)
    return ours, hf


def _setup(shape, models):
    k, n, plen, new, bias = SHAPES[shape]
    ours, hf = models
    bias = stop_bias(ours.vocab_size) if bias == 0.0 else bias
    return ours, hf, random_prompts(k, plen), n, new, bias


def _record(benchmark, tokens: int, rows: int):
    benchmark.extra_info.update(new_tokens=tokens, rows=rows, tokens_per_s=tokens / benchmark.stats.stats.mean)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.benchmark(group="rollout")
def test_engine(benchmark, models, shape):
    ours, _, prompts, n, new, bias = _setup(shape, models)
    hook = eos_bias(ours.head, bias)
    try:
        gen = torch.Generator().manual_seed(0)
        out = benchmark.pedantic(
            lambda: sample(ours, prompts, n=n, max_new_tokens=new, generator=gen), rounds=5, warmup_rounds=1
        )
    finally:
        hook.remove()
    if shape == "fixed":
        assert out.mask.all()  # every row decoded the full budget
    _record(benchmark, out.num_tokens(), len(prompts) * n)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.benchmark(group="rollout")
def test_hf_generate(benchmark, models, shape):
    _, hf, prompts, n, new, bias = _setup(shape, models)
    ids = torch.tensor(prompts)
    hook = eos_bias(hf.lm_head, bias)
    try:
        torch.manual_seed(0)
        out = benchmark.pedantic(lambda: _hf_generate(hf, ids, n, new), rounds=5, warmup_rounds=1)
    finally:
        hook.remove()
    tokens = _generated_tokens(out, ids.shape[1])
    if shape == "fixed":
        assert out.shape[1] - ids.shape[1] == new and tokens == out[:, ids.shape[1] :].numel()
    _record(benchmark, tokens, len(prompts) * n)


def _hf_generate(hf, ids: torch.Tensor, n: int, new: int) -> torch.Tensor:
    """``n`` samples per prompt from ``generate`` at temperature 1, no top-k or top-p, as the engine samples."""
    return hf.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=new,
        num_return_sequences=n,
        pad_token_id=PAD,
        eos_token_id=EOS,
    )


def _generated_tokens(out: torch.Tensor, prompt_len: int) -> int:
    """New tokens of ``generate``'s output up to and including each row's first <eos>, as the engine
    counts them."""
    completion = out[:, prompt_len:]
    ended = (completion == EOS).long().cumsum(1)
    return int(((ended == 0) | ((ended == 1) & (completion == EOS))).sum())


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.benchmark(group="rollout-interleaved")
def test_engine_and_generate_interleaved(benchmark, models, shape):
    """Both sides in alternation, one call of each per round, so a drift in the machine's speed over the
    run (its clock, another process) falls on both alike: the ratio is the median of the rounds' ratios.
    The separate benchmarks above give each side's own distribution."""
    ours, hf, prompts, n, new, bias = _setup(shape, models)
    ids = torch.tensor(prompts)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    rates = {"engine": [], "generate": []}

    def one_round():
        t0 = time.perf_counter()
        tokens = sample(ours, prompts, n=n, max_new_tokens=new, generator=gen).num_tokens()
        rates["engine"].append(tokens / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        out = _hf_generate(hf, ids, n, new)
        rates["generate"].append(_generated_tokens(out, ids.shape[1]) / (time.perf_counter() - t0))

    hooks = [eos_bias(ours.head, bias), eos_bias(hf.lm_head, bias)]
    try:
        benchmark.pedantic(one_round, rounds=6, warmup_rounds=1)
    finally:
        for h in hooks:
            h.remove()
    ours_rate, theirs_rate = rates["engine"][1:], rates["generate"][1:]  # the warm-up round left out
    ratios = sorted(a / b for a, b in zip(ours_rate, theirs_rate))
    benchmark.extra_info.update(
        engine_tokens_per_s=statistics.median(ours_rate),
        generate_tokens_per_s=statistics.median(theirs_rate),
        speed_up=statistics.median(ratios),
        speed_up_min=ratios[0],
        speed_up_max=ratios[-1],
    )


@torch.no_grad()
def _no_cache(model, prompts, n, new):
    ids = torch.tensor(prompts).repeat_interleave(n, 0)
    for _ in range(new):
        logits = model(ids)[:, -1]
        ids = torch.cat([ids, torch.multinomial(logits.softmax(-1), 1)], 1)
    return ids


@pytest.mark.benchmark(group="rollout")
def test_no_cache_floor(benchmark, models):
    ours, _, prompts, n, new, bias = _setup("fixed", models)
    hook = eos_bias(ours.head, bias)
    try:
        out = benchmark.pedantic(lambda: _no_cache(ours, prompts, n, new), rounds=1, warmup_rounds=0)
    finally:
        hook.remove()
    _record(benchmark, out.shape[0] * new, out.shape[0])
