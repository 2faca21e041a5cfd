"""Evaluating one split: ``evaluate_split`` against the same evaluation written with Hugging Face
``generate`` (sampling, the family's verifier on every sample, the gold trace's log-probability by
one teacher-forced pass).

100 string-family ID problems x 16 samples, up to 128 new tokens, temperature 1, on random-init
models of the same size whose <eos> bias stops a completion at about 1 token in 20 (a trained
model's completions are 20-60 tokens). Greedy decoding, which ``evaluate_split`` also reports, is
left out of the HF side, so the comparison favours HF slightly.
"""

import pytest
import torch

from ood_bench.data import held_out_problems
from ood_bench.evaluation.evaluate import EvalConfig, evaluate_split
from ood_bench.model.tokenizer import EOS, PAD, TOKENIZER
from ood_bench.plugins import get_plugins

from .conftest import eos_bias, gpt2_twin, our_model, stop_bias

pytest.importorskip("transformers", reason="the bench extra: pip install -e '.[bench]'")

N_TEST, N, NEW = 100, 16, 128


@pytest.fixture(scope="module")
def family():
    return get_plugins().tasks.get("string")


@pytest.mark.benchmark(group="evaluate")
def test_evaluate_split_ours(benchmark, family):
    model = our_model()
    hook = eos_bias(model.head, stop_bias(model.vocab_size))
    cfg = EvalConfig(n_test=N_TEST, n_samples=N, max_new_tokens=NEW)
    result = benchmark.pedantic(lambda: evaluate_split(model, family, "id", cfg), rounds=2, warmup_rounds=0)
    hook.remove()
    benchmark.extra_info.update(
        problems_per_s=N_TEST / benchmark.stats.stats.mean, gen_tokens=result.summary["gen_tokens"]
    )


@torch.no_grad()
def hf_evaluate(hf, family, problems):
    """One ``generate`` call per problem (its 16 samples). Tried too: left-padded batches of 32 problems
    (512 rows, as ``evaluate_split`` batches) ran at half this speed, because ``generate`` decodes every
    row until the longest has ended."""
    counts = []
    for p in problems:
        ids = torch.tensor([TOKENIZER.encode(p.prompt, bos=True)])
        out = hf.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            max_new_tokens=NEW,
            num_return_sequences=N,
            pad_token_id=PAD,
            eos_token_id=EOS,
        )
        counts.append(sum(family.score(p, TOKENIZER.decode(row[ids.shape[1] :].tolist())).answer for row in out))
        gold = torch.tensor([TOKENIZER.encode(p.prompt, bos=True) + TOKENIZER.encode(p.completion, eos=True)])
        hf(gold)  # the gold trace's exact log-probability: one teacher-forced pass
    return counts


@pytest.mark.benchmark(group="evaluate")
def test_evaluate_split_hf_generate(benchmark, family):
    hf = gpt2_twin(our_model())
    hook = eos_bias(hf.lm_head, stop_bias(hf.config.vocab_size))
    problems = held_out_problems(family, "id", N_TEST)
    torch.manual_seed(0)
    benchmark.pedantic(lambda: hf_evaluate(hf, family, problems), rounds=1, warmup_rounds=0)
    hook.remove()
    benchmark.extra_info.update(problems_per_s=N_TEST / benchmark.stats.stats.mean)
