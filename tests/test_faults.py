"""A plugin's fault inside a run: one line naming the plugin, the hook and the error; exit 2; nothing half-written."""

import os
import subprocess
import sys

import pytest

import ood_bench.plugins as plugins_mod
from ood_bench.cli import main
from ood_bench.plugins import Plugins

from .test_plugins import ROOT, fake_dist

BAD = """
import os
import torch
from ood_bench.api import Algorithm, hookimpl

class Bad(Algorithm):
    name = "bad"

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        if os.environ["BAD_MODE"] == "init":
            raise RuntimeError("no GPU for me")

    def extra_modules(self):
        mode = os.environ["BAD_MODE"]
        if mode == "extra-raise":
            raise RuntimeError("no value head")
        if mode == "extra-none":
            return None  # a forgotten return
        if mode == "extra-tensor":
            return {"value": torch.zeros(3)}
        return {}

    def state_dict(self):
        mode = os.environ["BAD_MODE"]
        if mode == "state-raise":
            raise ValueError("no state yet")
        if mode == "state-none":
            return None
        if mode == "state-lambda":
            return {"schedule": lambda t: t}
        return {}

    def load_state_dict(self, state):
        if os.environ["BAD_MODE"] == "load-raise":
            raise KeyError("baseline")

    def step(self, problems):
        batch = self.ctx.rollout(problems, 2)
        lp = self.ctx.logprobs(self.ctx.policy, batch.ids, batch.cmask)
        mode = os.environ["BAD_MODE"]
        if mode == "raise":
            raise KeyError("boom")
        if mode == "nan":
            self.ctx.optimize(lp.logp.sum() * float("nan"), train_tokens=1)
        if mode == "type":
            return 3
        if mode == "text":
            return {"loss": "low"}
        self.ctx.optimize(-lp.logp.sum(), train_tokens=1)
        return {}

@hookimpl
def register_algorithms(register):
    register(Bad)
"""
POST = [
    "--no-progress",
    "prompts_per_step=2",
    "budget.grad_steps=2",
    "algo.max_new_tokens=16",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


@pytest.fixture
def bad_plugin(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    fake_dist(tmp_path, "fakeplug_bad", BAD)
    monkeypatch.setattr(plugins_mod, "_PLUGINS", Plugins())
    yield tmp_path
    sys.modules.pop("fakeplug_bad", None)


@pytest.mark.parametrize(
    "mode, says",
    [
        ("raise", "failed in step: KeyError: 'boom'"),
        ("nan", "failed in step: NonFiniteError: the algorithm's loss is nan at gradient step 0"),
        ("type", "failed in step: it returned int, not a dict of diagnostics (name -> number)"),
        ("text", "failed in step: a diagnostic it returned is not a number (could not convert string to float: 'low')"),
        ("init", "failed in __init__: RuntimeError: no GPU for me"),
        ("extra-raise", "failed in extra_modules: RuntimeError: no value head"),
        ("extra-none", "failed in extra_modules: it returned NoneType, not a dict of trainable modules"),
        ("extra-tensor", "failed in extra_modules: its 'value' is a Tensor, not a torch.nn.Module"),
        ("state-raise", "failed in state_dict: ValueError: no state yet"),
        ("state-none", "failed in state_dict: it returned NoneType, not a dict of the algorithm's state"),
        ("state-lambda", "failed in state_dict: its 'schedule' cannot be saved in a checkpoint"),
    ],
)
def test_an_algorithm_fault_is_one_line_exit_2_and_leaves_no_run_folder(
    mode, says, bad_plugin, tiny_base, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("BAD_MODE", mode)
    monkeypatch.delenv("OOD_BENCH_DEBUG", raising=False)
    out = tmp_path / "run"
    assert main(["posttrain", "--algo", "bad", "--base", str(tiny_base), "--out", str(out), *POST]) == 2
    err = capsys.readouterr().err
    assert f"ood-bench: error: plugin 'fakeplug_bad' (algorithm 'bad') {says}" in err
    assert "OOD_BENCH_DEBUG=1 shows the traceback" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("ood-bench: error")]) == 1
    assert not out.exists()  # no lock, no log folder, no hparams.yaml without a checkpoint


@pytest.mark.parametrize("lost", ["posttrained.ckpt", "posttrain_record.json"])
def test_a_load_state_dict_fault_on_resume_is_one_line_and_leaves_the_checkpoints_as_they_were(
    lost, bad_plugin, tiny_base, tmp_path, monkeypatch, capsys
):
    """Both resume paths give the algorithm its state back, an empty one too: the run that resumes from
    last.ckpt, and the finished run whose record is rebuilt from its checkpoint."""
    monkeypatch.setenv("BAD_MODE", "load-raise")
    monkeypatch.delenv("OOD_BENCH_DEBUG", raising=False)
    out = tmp_path / "run"
    argv = ["posttrain", "--algo", "bad", "--base", str(tiny_base), "--out", str(out), *POST, "ckpt_every=1"]
    assert main(argv) == 0  # a fresh run loads no state
    (out / lost).unlink()
    kept = {p: p.read_bytes() for p in out.rglob("*.ckpt")}
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "ood-bench: error: plugin 'fakeplug_bad' (algorithm 'bad') failed in load_state_dict: KeyError: 'baseline'"
    ) in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("ood-bench: error")]) == 1
    assert {p: p.read_bytes() for p in out.rglob("*.ckpt")} == kept  # the run still resumes from them
    assert not (out / lost).exists() and not list(out.rglob(".*.tmp"))


def test_a_fault_shows_its_traceback_with_debug_on(bad_plugin, tiny_base, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BAD_MODE", "raise")
    monkeypatch.setenv("OOD_BENCH_DEBUG", "1")
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # a folder the user made: only what the run wrote goes
    assert main(["posttrain", "--algo", "bad", "--base", str(tiny_base), "--out", str(out), *POST]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and 'raise KeyError("boom")' in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def _patch_string_scorer(monkeypatch):
    """The built-in string family's scorer, failing on what a model writes but the contract's probes do not."""
    family = plugins_mod.get_plugins().tasks.get("string")
    real = family.score

    def score(problem, completion):
        if len(completion) > 1 and not completion.startswith(problem.steps[0][:1]):
            raise ValueError("unexpected completion")
        return real(problem, completion)

    monkeypatch.setattr(family, "score", score)


def test_a_scorer_fault_during_evaluation_names_the_family_and_leaves_no_partial_folder(
    tiny_base, tmp_path, monkeypatch, capsys
):
    _patch_string_scorer(monkeypatch)
    out = tmp_path / "ev"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tiny_base),
                "--families",
                "string",
                "--splits",
                "id",
                "--n",
                "2",
                "--n-test",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "ood-bench: error: plugin 'ood_bench.tasks.builtin' (task family 'string') failed in score: "
        "ValueError: unexpected completion"
    ) in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # neither ev nor .ev.partial-<pid>


def test_a_scorer_fault_inside_an_algorithm_step_names_the_family_not_the_algorithm(
    tiny_base, tmp_path, monkeypatch, capsys
):
    _patch_string_scorer(monkeypatch)
    out = tmp_path / "run"
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
                "families=[string]",
                "algo.group_size=2",
                *POST,
            ]
        )
        == 2
    )
    assert "(task family 'string') failed in score: ValueError" in capsys.readouterr().err
    assert not out.exists()


def test_a_generator_fault_names_the_family(tiny_base, tmp_path, monkeypatch, capsys):
    family = plugins_mod.get_plugins().tasks.get("string")

    def _generate(split, rng):
        raise IndexError("list index out of range")

    monkeypatch.setattr(family, "_generate", _generate)
    out = tmp_path / "run"
    assert (
        main(["posttrain", "--algo", "grpo", "--base", str(tiny_base), "--out", str(out), "families=[string]", *POST])
        == 2
    )
    assert (
        "ood-bench: error: plugin 'ood_bench.tasks.builtin' (task family 'string') failed in _generate: "
        "IndexError: list index out of range"
    ) in capsys.readouterr().err
    assert not out.exists()


def test_a_broken_entry_point_hints_at_the_pyproject(tmp_path):
    fake_dist(tmp_path, "fakeplug_typo", "x = 1\n")
    (tmp_path / "fakeplug_typo-0.0.1.dist-info" / "entry_points.txt").write_text("[ood_bench]\ntypo = fakeplug_tpyo\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), str(ROOT / "plugins")])}
    run = subprocess.run([sys.executable, "-m", "ood_bench.cli", "plugins"], env=env, capture_output=True, text=True)
    assert run.returncode == 0
    assert (
        "ood-bench: warning: plugin 'typo' failed to import: ModuleNotFoundError: No module named 'fakeplug_tpyo' "
        '(check the entry point in its pyproject.toml: [project.entry-points.ood_bench] typo = "fakeplug_tpyo", '
        "then reinstall it)"
    ) in run.stderr
