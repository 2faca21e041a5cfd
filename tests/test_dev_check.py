"""``ood-bench dev-check``: a few steps on the committed smoke base, judged by a stated rule."""

from __future__ import annotations

import pytest

from ood_bench.cli import main
from ood_bench.suite.dev_check import SMOKE_BASE

# Smaller than the command's default (12 steps of 16 prompts), so the two runs take seconds: on the smoke base
# GRPO still rises with p ~ 0.002 here, and the frozen policy stays flat with p ~ 0.3 (rule: p < 0.05).
SMALL = ["--no-progress", "budget.grad_steps=8", "prompts_per_step=8"]


def test_the_smoke_base_is_committed_and_gives_grpo_a_reward_to_learn_from():
    """The smoke base's whole point: GRPO's step-0 reward on ID is neither near 0 nor near 1."""
    from ood_bench.data import PromptStream
    from ood_bench.plugins import get_plugins
    from ood_bench.training.algorithms import standalone
    from ood_bench.training.pretrain import load_base

    model, cfg, _ = load_base(SMOKE_BASE)
    plugins = get_plugins()
    families = [plugins.tasks.get(f) for f, share in cfg.mixture.families.items() if share > 0]
    problems = PromptStream(families, "id", 0, 16).batch(0)
    algo = standalone(plugins.algorithm("grpo"), model, families)
    algo.ctx.begin_step()
    reward = float(algo.ctx.rollout(problems, 8).rewards.mean())
    assert 0.2 <= reward <= 0.8, reward


def test_dev_check_sees_grpo_learn_and_a_frozen_policy_not(capsys):
    assert main(["dev-check", "grpo", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "reward moved:     yes" in out and "loss finite:      yes" in out and "verdict:          healthy" in out
    assert "rule: " in out and "p < 0.05" in out
    assert "clip fraction:    0.0000" in out and "KL to reference:" in out  # GRPO's one inner step never clips

    assert main(["dev-check", "grpo", *SMALL, "algo.lr=1e-12"]) == 1
    out = capsys.readouterr().out
    assert "reward moved:     NO" in out and "NOT healthy (exit 1): the training reward did not rise" in out


def test_an_algorithm_without_rollouts_is_judged_on_finiteness_alone(capsys):
    assert main(["dev-check", "sft", "--no-progress", "budget.grad_steps=2", "prompts_per_step=2"]) == 0
    out = capsys.readouterr().out
    assert "reward moved:     cannot tell: no rollout reward was logged" in out and "healthy (exit 0)" in out


@pytest.mark.parametrize("inside_the_step", [False, True])
def test_a_loss_or_weight_that_stops_being_finite_is_exit_1(inside_the_step, monkeypatch, capsys):
    """FiniteGuard stops a run whose weights stop being finite; Context.optimize refuses a NaN loss inside the
    algorithm's step, where it arrives as a plugin fault caused by it. Either is "not finite", exit 1."""
    import ood_bench.training.posttrain
    from ood_bench.errors import NonFiniteError
    from ood_bench.faults import fault

    def not_finite(*args, **kwargs):
        cause = NonFiniteError("the algorithm's loss is nan at gradient step 0")
        if inside_the_step:
            raise fault("algorithm", "grpo", "step", f"NonFiniteError: {cause}") from cause
        raise cause

    monkeypatch.setattr(ood_bench.training.posttrain, "posttrain", not_finite)
    assert main(["dev-check", "grpo", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "loss finite:      NO (the algorithm's loss is nan" in out
    assert "NOT healthy (exit 1): the loss or the weights stopped being finite" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["no_such_algo"], "no_such_algo"),
        (["grpo", "algo.no_such_knob=1"], "no_such_knob"),
        (["grpo", "algo.lr=-1"], "algo.lr"),
        (["grpo", "prompts_per_step=0"], "prompts_per_step"),
        (["grpo", "--base", "missing.safetensors"], "missing.safetensors"),
        (["grpo", "base=x.ckpt"], "--base"),
        (["grpo", "notakey"], "notakey"),
        (["grpo", "--out", __file__], "not an empty folder"),
        (["grpo", "--threads", "0"], "--threads=0"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_compute(args, message, monkeypatch, capsys):
    import ood_bench.training.posttrain

    def refuse(*a, **k):
        raise AssertionError("bad input reached training")

    monkeypatch.setattr(ood_bench.training.posttrain, "posttrain", refuse)
    assert main(["dev-check", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ood-bench: error:") and err.count("\n") == 1 and message in err, err
