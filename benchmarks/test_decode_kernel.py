"""The decode kernel (``OOD_BENCH_ENGINE=kernel``) against the eager engine and Hugging Face ``generate``.

The shapes of ``test_rollout_vs_generate.py``: ``fixed`` (64 prompts x 8 samples, 24-token prompts,
exactly 32 new tokens, <eos> suppressed: pure decoding speed) and ``grpo`` (GRPO's default rollout, 32 x 8,
up to 128 new tokens, <eos> at about 1 in 20 per token). The sides run interleaved in one process, one
call of each per round (kernel, eager, generate when transformers is installed), so a drift in the
machine's speed falls on all alike; each ratio is the median of the rounds' ratios, with its range.
``extra_info`` also keeps the load average over the run: on a machine shared with other jobs the
absolute rates mean little, the interleaved ratios a little more.
"""

import os
import statistics
import time

import pytest
import torch

from ood_bench.model import kernels
from ood_bench.model.rollout import sample

from .conftest import EOS, PAD, eos_bias, gpt2_twin, our_model, random_prompts, stop_bias

SHAPES = {  # prompts, samples per prompt, prompt tokens, new tokens, <eos> logit bias (0: a real stop rate)
    "fixed": (64, 8, 24, 32, -1e4),
    "grpo": (32, 8, 24, 128, 0.0),
}
ROUNDS = int(os.environ.get("OOD_BENCH_BENCH_ROUNDS", "5"))  # a loaded machine: fewer rounds, a rough answer


@pytest.fixture(scope="module")
def kernel():
    kernels.reset()
    try:
        return kernels.build()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"the decode kernel cannot be built here: {type(exc).__name__}: {exc}")


def _generate(hf, ids, n, new):
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


def _generated(out, prompt_len):
    completion = out[:, prompt_len:]
    ended = (completion == EOS).long().cumsum(1)
    return int(((ended == 0) | ((ended == 1) & (completion == EOS))).sum())


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.benchmark(group="decode-kernel")
def test_kernel_eager_and_generate_interleaved(benchmark, kernel, monkeypatch, shape):
    k, n, plen, new, bias = SHAPES[shape]
    ours = our_model()
    bias = stop_bias(ours.vocab_size) if bias == 0.0 else bias
    prompts = random_prompts(k, plen)
    try:
        hf = gpt2_twin(ours)
    except pytest.skip.Exception:  # without the bench extra: the kernel against eager only
        hf = None
    ids = torch.tensor(prompts)
    rates = {"kernel": [], "eager": [], **({"generate": []} if hf is not None else {})}
    kernels._loaded["module"] = kernel

    def engine(mode):
        monkeypatch.setenv(kernels.ENV, mode)
        gen = torch.Generator().manual_seed(0)  # the same draws for both engines
        t0 = time.perf_counter()
        tokens = sample(ours, prompts, n=n, max_new_tokens=new, generator=gen).num_tokens()
        rates[mode].append(tokens / (time.perf_counter() - t0))

    def generate():
        t0 = time.perf_counter()
        out = _generate(hf, ids, n, new)
        rates["generate"].append(_generated(out, ids.shape[1]) / (time.perf_counter() - t0))

    sides = [lambda: engine("kernel"), lambda: engine("eager")] + ([generate] if hf is not None else [])
    turn = [0]

    def one_round():  # each round starts with the next side, so none always runs first (on a cold cache)
        for i in range(len(sides)):
            sides[(turn[0] + i) % len(sides)]()
        turn[0] += 1

    hooks = [eos_bias(ours.head, bias)] + ([eos_bias(hf.lm_head, bias)] if hf is not None else [])
    load_before = os.getloadavg()[0]
    try:
        torch.manual_seed(0)
        benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=1)
    finally:
        for h in hooks:
            h.remove()
        kernels.reset()
    rates = {side: r[1:] for side, r in rates.items()}  # the warm-up round left out

    def ratio(a, b):
        rs = sorted(x / y for x, y in zip(rates[a], rates[b]))
        return statistics.median(rs), rs[0], rs[-1]

    info = {f"{side}_tokens_per_s": statistics.median(r) for side, r in rates.items()}
    info.update({f"{side}_tokens_per_s_range": [min(r), max(r)] for side, r in rates.items()})
    info["kernel_vs_eager"], info["kernel_vs_eager_min"], info["kernel_vs_eager_max"] = ratio("kernel", "eager")
    if hf is not None:
        info["kernel_vs_generate"], info["kernel_vs_generate_min"], info["kernel_vs_generate_max"] = ratio(
            "kernel", "generate"
        )
        info["eager_vs_generate"] = ratio("eager", "generate")[0]
    info.update(
        rounds=len(rates["kernel"]), threads=torch.get_num_threads(), load_average=[load_before, os.getloadavg()[0]]
    )
    benchmark.extra_info.update(info)
    print(f"\n{shape}: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)  # seen under -s as it goes
