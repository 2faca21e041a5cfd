"""Post-training end to end: every algorithm through the CLI, budgets, and the zero-support case."""

import json

import pytest
import torch

from ood_bench.cli import main
from ood_bench.plugins import get_plugins

BUILTIN = ["grpo", "ppo", "rloo", "sft", "expert_iteration"]
TINY_POST = [
    "prompts_per_step=2",
    "budget.grad_steps=2",
    "ckpt_every=1",
    "algo.group_size=2",
    "algo.max_new_tokens=16",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


def tiny_post(*extra: str) -> list[str]:
    """TINY_POST with some keys replaced by ``extra`` (an override may be given once)."""
    keys = {e.split("=")[0] for e in extra}
    return [o for o in TINY_POST if o.split("=")[0] not in keys] + list(extra)


def test_builtin_algorithms_come_from_entry_points():
    plugins = get_plugins()
    for name in BUILTIN:
        assert name in plugins.algorithms
        assert plugins.algorithm_owner(name) == name  # the entry point's name, not the core
        assert plugins.info[name].distribution == "ood-bench"


@pytest.mark.parametrize("algo", BUILTIN)
def test_every_algorithm_posttrains_through_the_cli(algo, tiny_base, tmp_path):
    out = tmp_path / algo
    rc = main(
        [
            "posttrain",
            "--algo",
            algo,
            "--base",
            str(tiny_base),
            "--rl-split",
            "id",
            "--out",
            str(out),
            "--no-progress",
            *TINY_POST,
        ]
    )
    assert rc == 0
    assert (out / "posttrained.ckpt").is_file()
    record = json.loads((out / "posttrain_record.json").read_text())
    assert record["algorithm"] == algo and record["plugin"] == algo
    assert record["counters"]["prompts"] >= 2
    assert "lr" in record["algorithm_config"]
    logs = (out / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "budget/grad_steps" in logs
    # the post-trained checkpoint evaluates like a base one
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(out / "posttrained.ckpt"),
                "--splits",
                "id",
                "--n",
                "2",
                "--n-test",
                "2",
                "--no-progress",
                "--out",
                str(out / "eval"),
            ]
        )
        == 0
    )


def test_grpo_logs_its_diagnostics(tiny_base, tmp_path):
    out = tmp_path / "g"
    assert (
        main(
            [
                "posttrain",
                "--algo",
                "grpo",
                "--base",
                str(tiny_base),
                "--out",
                str(out),
                "--no-progress",
                *TINY_POST,
                "algo.beta=0.1",
                "algo.inner_iterations=2",
            ]
        )
        == 0
    )
    header = (out / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    for key in (
        "reward_mean",
        "reward_std",
        "zero_std_frac",
        "clip_frac",
        "kl_k1",
        "kl_k3",
        "entropy",
        "response_length",
    ):
        assert f"algo/{key}" in header, key
    record = json.loads((out / "posttrain_record.json").read_text())
    assert record["counters"]["grad_steps"] == 2  # two inner iterations on the first batch
    assert record["counters"]["batches"] == 1
    from ood_bench.api import API_VERSION

    assert record["plugin_api"] == API_VERSION  # which plugin API the run was made under


def test_the_progress_bar_counts_gradient_steps_not_batches(tiny_base, tmp_path, capsys):
    """Two inner iterations per rollout batch: 4 gradient steps in 2 batches end the bar at 4/4 (it stopped at 2/4)."""
    out = tmp_path / "bar"
    assert (
        main(
            [
                "posttrain",
                "--algo",
                "grpo",
                "--base",
                str(tiny_base),
                "--out",
                str(out),
                *tiny_post("budget.grad_steps=4", "algo.inner_iterations=2"),
            ]
        )
        == 0
    )
    assert json.loads((out / "posttrain_record.json").read_text())["counters"]["batches"] == 2
    captured = capsys.readouterr()
    bars = [line for line in (captured.out + captured.err).replace("\r", "\n").splitlines() if "/4 " in line]
    assert bars and "4/4" in bars[-1], bars


def test_ppo_logs_value_diagnostics(tiny_base, tmp_path):
    out = tmp_path / "p"
    assert (
        main(["posttrain", "--algo", "ppo", "--base", str(tiny_base), "--out", str(out), "--no-progress", *TINY_POST])
        == 0
    )
    header = (out / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "algo/value_loss" in header and "algo/explained_variance" in header


def test_prompt_budget_stops_the_run(tiny_base, tmp_path):
    out = tmp_path / "b"
    assert (
        main(
            [
                "posttrain",
                "--algo",
                "sft",
                "--base",
                str(tiny_base),
                "--out",
                str(out),
                "--no-progress",
                *tiny_post("budget.grad_steps=50", "budget.prompts=6"),
            ]
        )
        == 0
    )
    record = json.loads((out / "posttrain_record.json").read_text())
    assert record["counters"]["prompts"] == 6 and record["counters"]["grad_steps"] == 3


def test_the_plateau_rule_stops_a_flat_curve_and_lets_a_rising_one_go_on():
    from ood_bench.training.posttrain import plateaued

    flat = [0.4, 0.5, 0.45, 0.42, 0.48, 0.44, 0.46, 0.43]
    assert plateaued(flat, window=4, delta=0.01)
    assert not plateaued(flat[:7], window=4, delta=0.01)  # never before two full windows
    rising = [0.1 * i for i in range(8)]
    assert not plateaued(rising, window=4, delta=0.01)
    falling_nll = [3.0 - 0.2 * i for i in range(8)]  # SFT's objective falls while it trains
    assert not plateaued(falling_nll, window=4, delta=0.01, direction="min")
    assert plateaued(falling_nll, window=4, delta=0.01, direction="max")


def test_a_plateau_ends_a_run_before_its_cap_and_the_record_says_where(tiny_base, tmp_path):
    """SFT at lr 1e-12: its gold NLL only wanders with each step's fresh prompts, so the rule stops it soon
    after two windows, far from the cap."""
    out = tmp_path / "p"
    argv = ["posttrain", "--algo", "sft", "--base", str(tiny_base), "--out", str(out), "--no-progress"]
    stop = ("budget.grad_steps=40", "budget.stop=plateau", "budget.window=3", "algo.lr=1e-12")
    assert main([*argv, *tiny_post(*stop)]) == 0
    record = json.loads((out / "posttrain_record.json").read_text())
    steps = record["counters"]["grad_steps"]
    assert 6 <= steps < 20  # two windows at least; then the first window that fails to improve by delta
    assert record["stopped"] == {"rule": "plateau", "plateau_at_step": steps}
    assert record["objective"] == {"name": "loss", "direction": "min"}
    assert main([*argv[:-3], "--out", str(tmp_path / "f"), "--no-progress", *tiny_post("budget.grad_steps=8")]) == 0
    fixed = json.loads((tmp_path / "f" / "posttrain_record.json").read_text())
    assert fixed["counters"]["grad_steps"] == 8 and fixed["stopped"]["plateau_at_step"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--algo", "dpo"], "unknown algorithm 'dpo'"),
        (["--algo", "grpo", "algo.beta=-1"], "algo.beta=-1"),
        (["--algo", "grpo", "algo.kl_estimator=k2"], "algo.kl_estimator='k2'"),
        (["--algo", "grpo", "algo.bogus=1"], "unknown config key 'algo.bogus'"),
        (["--algo", "grpo", "--rl-split", "ood_nope"], "rl_split='ood_nope'"),
        (["--algo", "grpo", "budget.stop=early"], "budget.stop='early'"),
        (["--algo", "grpo", "budget.stop=plateau", "budget.window=1"], "budget.window=1"),
        (["--algo", "sft", "budget.delta=-0.1"], "budget.delta=-0.1"),
    ],
)
def test_bad_posttrain_input(argv, message, tiny_base, tmp_path, capsys):
    assert main(["posttrain", "--base", str(tiny_base), "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_wrong_base_is_refused(tmp_path, capsys):
    bad = tmp_path / "base.ckpt"
    torch.save({"not": "a checkpoint"}, bad)
    assert main(["posttrain", "--algo", "grpo", "--base", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not an ood-bench checkpoint" in capsys.readouterr().err


def _standalone(tiny_base, algo, **knobs):
    """An algorithm on the tiny base through the public API, with no Lightning at all."""
    from ood_bench.api import standalone
    from ood_bench.training.pretrain import load_base

    model, base_cfg, _ = load_base(tiny_base)
    plugins = get_plugins()
    families = [plugins.tasks.get(n) for n in base_cfg.mixture.families]
    return standalone(plugins.algorithm(algo), model, families, {"max_new_tokens": 24, **knobs})


def test_outside_the_support_grpo_gets_no_signal_and_sft_does(tiny_base):
    """ood_repr answers use symbols the tiny base never produces: reward 0, so GRPO cannot move."""
    from ood_bench.data import PromptStream

    grpo = _standalone(tiny_base, "grpo", group_size=4)
    policy = grpo.ctx.policy
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    problems = PromptStream(list(grpo.ctx.families.values()), "ood_repr", 0, 4).batch(0)
    grpo.ctx.begin_step()
    diag = grpo.step(problems)
    standard = grpo.ctx.end_step()
    assert diag["reward_mean"] == 0.0 and diag["zero_std_frac"] == 1.0
    assert standard["reward"] == 0.0 and standard["kl_ref"] == 0.0 and standard["entropy"] > 0
    assert grpo.ctx.counters.rollouts == 16 and grpo.ctx.counters.batches == 1
    for k, v in policy.state_dict().items():
        assert torch.equal(v, before[k]), k  # zero advantage: zero gradient, nothing moves

    from ood_bench.model.rollout import sequence_logprobs
    from ood_bench.model.tokenizer import EOS, TOKENIZER

    sft = _standalone(tiny_base, "sft", lr=3e-3)
    prompts = [TOKENIZER.encode(p.prompt, bos=True) for p in problems]
    gold = [TOKENIZER.encode(p.completion) + [EOS] for p in problems]
    start = sequence_logprobs(sft.ctx.policy, prompts, gold).mean()
    for _ in range(5):
        sft.step(problems)
    assert sequence_logprobs(sft.ctx.policy, prompts, gold).mean() > start + 1.0
    assert sft.ctx.counters.grad_steps == 5


def test_interrupted_posttraining_resumes_to_the_same_weights(tiny_base, tmp_path):
    from ood_bench.training.posttrain import load_posttrain_config, posttrain

    from .test_cli import Crash

    def cfg(out):
        return load_posttrain_config(
            None, [f"base={tiny_base}", f"out_dir={out}", "algorithm=grpo", *tiny_post("budget.grad_steps=4")]
        )

    straight = posttrain(cfg(tmp_path / "straight"), progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        posttrain(cfg(tmp_path / "resumed"), progress=False, callbacks=[Crash(at_step=2)])
    assert not (tmp_path / "resumed" / "posttrained.ckpt").exists()
    resumed = posttrain(cfg(tmp_path / "resumed"), progress=False)
    record = json.loads((tmp_path / "resumed" / "posttrain_record.json").read_text())
    assert record["resumed_from"].endswith("last.ckpt")  # it continued; it did not start over
    a, b = torch.load(straight, weights_only=False), torch.load(resumed, weights_only=False)
    assert a["counters"] == b["counters"] and a["counters"]["grad_steps"] == 4
    for k in a["state_dict"]:
        assert torch.allclose(a["state_dict"][k], b["state_dict"][k], atol=1e-6), k


def test_a_posttraining_run_resumes_after_its_base_moved(tiny_base, tmp_path):
    """A runs folder moved to another disk: the same base at another path is the same run, so an interrupted
    post-training resumes (it was refused as "trained with a different config"), and a different base is
    still refused."""
    import shutil

    from ood_bench.errors import OodBenchError
    from ood_bench.training.posttrain import load_posttrain_config, posttrain

    from .test_cli import Crash

    def cfg(base, out):
        return load_posttrain_config(
            None, [f"base={base}", f"out_dir={out}", "algorithm=grpo", *tiny_post("budget.grad_steps=4")]
        )

    straight = posttrain(cfg(tiny_base, tmp_path / "straight"), progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        posttrain(cfg(tiny_base, tmp_path / "resumed"), progress=False, callbacks=[Crash(at_step=2)])
    moved = tmp_path / "elsewhere" / "base.ckpt"
    moved.parent.mkdir()
    shutil.copy(tiny_base, moved)
    resumed = posttrain(cfg(moved, tmp_path / "resumed"), progress=False)
    record = json.loads((tmp_path / "resumed" / "posttrain_record.json").read_text())
    assert record["resumed_from"].endswith("last.ckpt")
    a, b = torch.load(straight, weights_only=False), torch.load(resumed, weights_only=False)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    # another base (the straight run's output is a checkpoint of other weights) is another run
    with pytest.raises(OodBenchError, match="different config"):
        posttrain(cfg(straight, tmp_path / "resumed"), progress=False)


@pytest.mark.parametrize("verify_trace", [False, True])
def test_expert_iteration_trains_on_verified_samples_only(tiny_base, verify_trace):
    """Answer right but trace wrong is a lucky guess: kept by default, dropped with verify_trace."""
    from ood_bench.data import PromptStream

    ei = _standalone(tiny_base, "expert_iteration", group_size=2, dedupe=False, verify_trace=verify_trace)
    ctx = ei.ctx
    answer_ok = torch.tensor([True, True, False, True, False, False, True, False])
    trace_ok = torch.tensor([True, False, False, True, True, False, False, False])
    real_rollout, trained, batches = ctx.rollout, [], []

    def rollout(problems, n):
        batch = real_rollout(problems, n)
        batch.answer_correct, batch.trace_correct = answer_ok, trace_ok
        batches.append(batch)
        return batch

    def logprobs(model, ids, cmask, **kw):
        trained.append(ids.clone())
        return type(ctx).logprobs(ctx, model, ids, cmask, **kw)

    ctx.rollout, ctx.logprobs = rollout, logprobs
    problems = PromptStream(list(ctx.families.values()), "id", 0, 4).batch(0)
    diag = ei.step(problems)
    expected = answer_ok & trace_ok if verify_trace else answer_ok
    assert diag["kept"] == int(expected.sum()) and len(trained) == 1
    assert torch.equal(trained[0], batches[0].ids[expected])


def test_a_run_that_never_stepped_says_so(tiny_base, tmp_path, capsys):
    """GRPO with dynamic filtering on prompts the base never solves: every batch is skipped."""
    out = tmp_path / "never"
    assert (
        main(
            [
                "posttrain",
                "--algo",
                "grpo",
                "--base",
                str(tiny_base),
                "--rl-split",
                "ood_repr",
                "--out",
                str(out),
                "--no-progress",
                *tiny_post("algo.dynamic_filtering=true", "budget.batches=2"),
            ]
        )
        == 0
    )
    assert "no gradient step was taken" in capsys.readouterr().out


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_activation_checkpointing_changes_no_weight_and_no_key(algo, tiny_base, tmp_path, monkeypatch):
    """Post-training recomputes activations by default; turning that off gives the same weights to the bit
    (GRPO scores through the shared-prompt pass, PPO through whole rows with its value head), and it is
    not part of what identifies a run."""
    import ood_bench.model.model
    from ood_bench.training.posttrain import NOT_RESULTS, PostTrainConfig, load_posttrain_config, posttrain

    assert PostTrainConfig().activation_checkpointing
    calls = []
    real = ood_bench.model.model.checkpoint
    monkeypatch.setattr(ood_bench.model.model, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))

    def run(flag):
        calls.clear()
        cfg = load_posttrain_config(
            None,
            [
                f"base={tiny_base}",
                f"out_dir={tmp_path / flag}",
                f"algorithm={algo}",
                f"activation_checkpointing={flag}",
                *tiny_post("algo.group_size=4"),
            ],
        )
        ckpt = torch.load(posttrain(cfg, progress=False), weights_only=False)
        return ckpt, len(calls)

    (on, recomputed_on), (off, recomputed_off) = run("true"), run("false")
    assert recomputed_on > 0 and recomputed_off == 0
    assert on["counters"]["grad_steps"] == off["counters"]["grad_steps"] == 2
    assert on["state_dict"].keys() == off["state_dict"].keys()
    assert all(torch.equal(on["state_dict"][k], off["state_dict"][k]) for k in on["state_dict"])
    assert "activation_checkpointing" in NOT_RESULTS
