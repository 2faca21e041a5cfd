"""The plugin API 1.0: a standalone context (no Lightning), named log-probs, counters, and DAPO built on it."""

import subprocess
import sys

import torch

from ood_bench.api import API_VERSION, Context, LogProbs, standalone
from ood_bench.data import PromptStream
from ood_bench.model.model import GPT, ModelConfig
from ood_bench.plugins import get_plugins


def _tiny(algo_name, **knobs):
    torch.manual_seed(0)
    families = [get_plugins().tasks.get("string")]
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=192))
    stream = PromptStream(families, "id", 0, 4)
    algo = standalone(
        get_plugins().algorithm(algo_name),
        model,
        families,
        {"max_new_tokens": 16, "group_size": 4, **knobs},
        draw=stream.extra,
    )
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
    from ood_bench.errors import ConfigError
    from ood_bench.training.algorithms import build_algorithm_config

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
from ood_bench.model.model import GPT, ModelConfig
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
    from ood_bench.training.context import DIAGNOSTIC_ROWS

    for beta, expected in ((0.0, DIAGNOSTIC_ROWS), (0.1, 32 * 4)):
        algo, stream = _tiny("grpo", beta=beta)
        rows = []
        # rows the reference scores (its head sees (rows, T, C); a shared prompt's (P, C) is not a row)
        algo.ctx.reference.head.register_forward_hook(
            lambda m, args, out, rows=rows: rows.append(args[0].shape[0]) if args[0].dim() == 3 else None
        )
        algo.ctx.begin_step()
        algo.step(stream.batch(0)[:4] * 8)  # 32 prompts x 4 samples = 128 rollouts
        diag = algo.ctx.end_step()
        assert sum(rows) == expected, beta
        assert diag["kl_ref"] >= 0 and diag["kl_ref"] == diag["kl_ref"]


# ----------------------------------------------------------------------------- the API surface

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]

EXPORTS = [
    "AGGREGATIONS",
    "API_VERSION",
    "AXES",
    "Algorithm",
    "AlgorithmConfig",
    "AxisRanges",
    "BOS",
    "ConfigError",
    "Context",
    "ContractError",
    "Counters",
    "EOS",
    "GPT",
    "KL_ESTIMATORS",
    "LogProbs",
    "ModelConfig",
    "OOD_SPLITS",
    "PAD",
    "PostTrainContext",
    "Problem",
    "RolloutBatch",
    "SPLITS",
    "STANDARD_DIAGNOSTICS",
    "Score",
    "StepSpace",
    "TOKENIZER",
    "TaskFamily",
    "aggregate",
    "approx_kl",
    "check",
    "check_family",
    "clipped_surrogate",
    "entropy_from_logits",
    "explained_variance",
    "gae",
    "get_plugins",
    "group_advantages",
    "hookimpl",
    "kl_estimate",
    "knob",
    "knob_docs",
    "leave_one_out_baseline",
    "load_base",
    "masked_mean",
    "parse_completion",
    "standalone",
    "step_name",
]


def test_the_api_exports_exactly_this_list():
    """Removing or renaming a name breaks plugins (a major version); adding one is a minor version: update both."""
    import ood_bench.api as api

    assert api.__all__ == EXPORTS
    assert API_VERSION == "1.2"


def test_every_export_is_documented_with_an_example():
    import inspect

    import ood_bench.api as api

    for name in api.__all__:
        obj = getattr(api, name)
        if name in api.CONSTANT_DOCS:
            continue
        assert inspect.isclass(obj) or inspect.isfunction(obj), f"{name}: give it an entry in CONSTANT_DOCS"
        doc = inspect.getdoc(obj) or ""
        assert "Example" in doc, f"{name}: its docstring has no example"
        if inspect.isfunction(obj):
            assert "Return" in doc, f"{name}: its docstring does not say what it returns"
    assert set(api.CONSTANT_DOCS) <= set(api.__all__)


def _imports_of_ood_bench(path):
    """Every ``ood_bench`` module a file imports, anywhere in it (relative imports are the plugin's own)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "ood_bench"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "ood_bench":
            found.append(node.module)
    return found


def test_shipped_plugins_import_only_the_api():
    files = sorted((ROOT / "plugins").rglob("*.py"))
    assert len(files) >= 8
    wrong = {str(f.relative_to(ROOT)): m for f in files for m in _imports_of_ood_bench(f) if m != "ood_bench.api"}
    assert not wrong, f"plugins must import only ood_bench.api: {wrong}"


def test_the_import_scan_sees_every_form(tmp_path):
    f = tmp_path / "p.py"
    f.write_text(
        "import ood_bench.rl\nfrom ood_bench import hookimpl\nfrom ood_bench.api import check\n"
        "from .sft import nll\ndef g():\n    from ood_bench.algorithms import Algorithm\n"
    )
    assert _imports_of_ood_bench(f) == ["ood_bench.rl", "ood_bench", "ood_bench.api", "ood_bench.algorithms"]


def test_the_api_reference_page_is_up_to_date():
    import runpy

    render = runpy.run_path(str(ROOT / "docs" / "make_api.py"))["render"]
    assert (ROOT / "docs" / "api.md").read_text() == render(), "docs/api.md is stale: run python docs/make_api.py"


def test_group_advantages_returns_advantages_and_group_std_as_documented():
    from ood_bench.api import group_advantages

    adv, std = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), group_size=2)
    assert adv.shape == (4,) and std.shape == (2,)
    assert torch.allclose(adv, torch.tensor([0.7071, -0.7071, 0.0, 0.0]), atol=1e-3)
    assert torch.allclose(std, torch.tensor([0.7071, 0.0]), atol=1e-3)


def test_a_knobs_help_comes_from_its_field_and_nothing_else():
    """knob(default, help) is the one source of a knob's help line: a comment in the source, or a field in a
    docstring's example, is not read (the old regex read the example ``beta`` of AlgorithmConfig's docstring
    as a knob of every algorithm). Every built-in algorithm documents every knob."""
    import dataclasses
    from dataclasses import dataclass

    from ood_bench.api import AlgorithmConfig, get_plugins, knob, knob_docs

    @dataclass
    class Mine(AlgorithmConfig):
        coef: float = knob(0.5, "a coefficient")
        plain: int = 3  # a comment, not help
        tags: list = knob(["a"], "a mutable default")

    docs = knob_docs(Mine)
    assert docs["coef"] == "a coefficient" and "plain" not in docs and docs["tags"] == "a mutable default"
    assert Mine().tags == ["a"] and Mine().tags is not Mine().tags  # each config its own list
    assert set(knob_docs(AlgorithmConfig)) == {f.name for f in dataclasses.fields(AlgorithmConfig)}
    for name in ("grpo", "dapo", "ppo", "rloo", "sft", "expert_iteration"):
        cls = get_plugins().algorithm(name).config_class
        assert set(knob_docs(cls)) == {f.name for f in dataclasses.fields(cls)}, name
