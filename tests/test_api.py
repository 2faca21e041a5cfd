"""The plugin API 1.0: a standalone context (no Lightning), named log-probs, counters, and DAPO built on it."""

import subprocess
import sys

import torch

from ood_bench.api import API_VERSION, Context, LogProbs, standalone
from ood_bench.data import PromptStream
from ood_bench.model import GPT, ModelConfig
from ood_bench.plugins import get_plugins


def _tiny(algo_name, **knobs):
    torch.manual_seed(0)
    families = [get_plugins().tasks.get("string")]
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=192))
    stream = PromptStream(families, "id", 0, 4)
    algo = standalone(get_plugins().algorithm(algo_name), model, families,
                      {"max_new_tokens": 16, "group_size": 4, **knobs}, draw=stream.extra)
    return algo, stream


def test_api_version_and_exports():
    assert API_VERSION.startswith("1.")
    import ood_bench.api as api

    for name in api.__all__:
        assert hasattr(api, name), name


def test_logprobs_are_named_and_aligned_to_the_next_token():
    algo, stream = _tiny("grpo")
    ctx: Context = algo.ctx
    ids, cmask = ctx.gold_batch(stream.batch(0))
    lp = ctx.logprobs(ctx.policy, ids, cmask, grad=False)
    assert isinstance(lp, LogProbs) and lp.hidden is None
    assert lp.logp.shape == lp.mask.shape == (ids.shape[0], ids.shape[1] - 1)
    assert torch.equal(lp.mask, cmask[:, 1:])  # entry t scores token t + 1
    full = lp.logits.log_softmax(-1).gather(2, ids[:, 1:, None]).squeeze(2)
    assert torch.allclose(lp.logp[lp.mask], full[lp.mask])
    assert ctx.logprobs(ctx.policy, ids, cmask, grad=False, hidden=True).hidden.shape[-1] == 16


def test_dapo_draws_more_prompts_until_its_batch_is_informative():
    algo, stream = _tiny("dapo")
    ctx = algo.ctx
    real = ctx.rollout
    calls = []

    def rollout(problems, n):  # first round: every group all-wrong; later rounds: one right sample per group
        batch = real(problems, n)
        calls.append(len(problems))
        r = torch.zeros(len(batch.rewards))
        if len(calls) > 1:
            r[::n] = 1.0
        batch.rewards = r
        return batch

    ctx.rollout = rollout
    before = {k: v.clone() for k, v in ctx.policy.state_dict().items()}
    ctx.begin_step()
    diag = algo.step(stream.batch(0))
    standard = ctx.end_step()
    assert calls == [4, 4] and ctx.counters.extra_prompts == 4 and diag["informative_groups"] == 4
    assert ctx.counters.grad_steps == 1 and diag["draw_rounds"] == 1
    assert any(not torch.equal(v, before[k]) for k, v in ctx.policy.state_dict().items())
    assert set(standard) == {"reward", "accuracy", "response_length", "kl_ref", "entropy"}
    # extra prompts are a deterministic stream: the same draw gives the same problems
    assert [p.prompt for p in stream.extra(0, 4)] == [p.prompt for p in stream.extra(0, 4)]
    assert [p.prompt for p in stream.extra(0, 4)] != [p.prompt for p in stream.batch(0)]


def test_dapo_refuses_a_clip_below_its_lower_clip():
    from ood_bench.algorithms import build_algorithm_config
    from ood_bench.errors import ConfigError

    try:
        build_algorithm_config(get_plugins().algorithm("dapo"), {"eps_high": 0.1})
    except ConfigError as exc:
        assert "algo.eps_high=0.1" in str(exc)
    else:
        raise AssertionError("accepted eps_high < eps_low")


def test_an_algorithm_runs_without_lightning():
    code = """
import sys, torch
from ood_bench.api import standalone
from ood_bench.model import GPT, ModelConfig
from ood_bench.plugins import get_plugins
from ood_bench.data import PromptStream
fams = [get_plugins().tasks.get('string')]
algo = standalone(get_plugins().algorithm('sft'), GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16)), fams)
algo.step(PromptStream(fams, 'id', 0, 2).batch(0))
assert algo.ctx.counters.grad_steps == 1
print('lightning' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_grpo_without_kl_never_scores_the_whole_batch_under_the_reference():
    """At beta = 0 the reference enters no loss: it is scored only for the core's kl_ref diagnostic,
    on a sample of at most DIAGNOSTIC_ROWS rollouts; at beta > 0 on every rollout, once."""
    from ood_bench.context import DIAGNOSTIC_ROWS

    for beta, expected in ((0.0, DIAGNOSTIC_ROWS), (0.1, 32 * 4)):
        algo, stream = _tiny("grpo", beta=beta)
        rows = []
        # rows the reference scores (its head sees (rows, T, C); a shared prompt's (P, C) is not a row)
        algo.ctx.reference.head.register_forward_hook(
            lambda m, args, out: rows.append(args[0].shape[0]) if args[0].dim() == 3 else None)
        algo.ctx.begin_step()
        algo.step(stream.batch(0)[:4] * 8)  # 32 prompts x 4 samples = 128 rollouts
        diag = algo.ctx.end_step()
        assert sum(rows) == expected, beta
        assert diag["kl_ref"] >= 0 and diag["kl_ref"] == diag["kl_ref"]
