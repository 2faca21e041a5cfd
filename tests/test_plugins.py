"""The plugin system: loading, faults, allow/block lists, listings, and a real third-party package."""

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ood_bench import hookspecs
from ood_bench.cli import main
from ood_bench.plugins import PluginError, Plugins

ROOT = Path(__file__).resolve().parent.parent
GOOD = """
from ood_bench import hookimpl
from ood_bench.training.algorithms import Algorithm

class Noop(Algorithm):
    name = "{algo}"
    description = "does nothing"
    def step(self, problems):
        return {{}}

@hookimpl
def register_algorithms(register):
    register(Noop)
"""


def fake_dist(root: Path, module: str, code: str, ep: str | None = None) -> None:
    """A minimal installed distribution on ``root``: one module and an ood_bench entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{module}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[ood_bench]\n{ep or module} = {module}\n")


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    for var in ("OOD_BENCH_LOAD_PLUGINS", "OOD_BENCH_DISABLE_PLUGINS", "OOD_BENCH_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("fakeplug")]:
        del sys.modules[mod]


def test_every_hook_is_documented_and_has_a_register_callback():
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
    assert {f.__name__ for f in specs} == {"register_tasks", "register_algorithms", "register_metrics"}
    for f in specs:
        assert f.__doc__ and len(f.__doc__.strip()) > 40, f.__name__
        assert list(inspect.signature(f).parameters) == ["register"]


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_load(sandbox):
    fake_dist(sandbox, "fakeplug_broken", "raise ImportError('no such dependency: banana')")
    fake_dist(sandbox, "fakeplug_good", GOOD.format(algo="noop"))
    with pytest.warns(RuntimeWarning, match="plugin 'fakeplug_broken' failed to import.*banana"):
        plugins = Plugins()
    assert "noop" in plugins.algorithms and "grpo" in plugins.algorithms
    assert plugins.failures() and "fakeplug_broken" in plugins.failures()[0]
    with pytest.raises(PluginError, match="fakeplug_broken"):
        Plugins(strict=True)


def test_a_plugin_whose_hook_raises_is_reported_alone(sandbox):
    fake_dist(
        sandbox,
        "fakeplug_raises",
        """
        from ood_bench import hookimpl
        @hookimpl
        def register_algorithms(register):
            raise RuntimeError("boom")
    """,
    )
    with pytest.warns(RuntimeWarning, match="fakeplug_raises' failed to register"):
        plugins = Plugins()
    assert "grpo" in plugins.algorithms


def test_a_duplicate_name_is_dropped_with_one_warning_naming_both_plugins(sandbox, monkeypatch, capsys):
    fake_dist(sandbox, "fakeplug_dup", GOOD.format(algo="grpo"))
    with pytest.warns(RuntimeWarning) as caught:
        plugins = Plugins()
    (line,) = [str(w.message) for w in caught if "registered twice" in str(w.message)]
    assert "algorithm 'grpo' registered twice: by plugin 'grpo' and by plugin 'fakeplug_dup'" in line
    assert "rename" in line and "OOD_BENCH_DISABLE_PLUGINS=fakeplug_dup" in line and "\n" not in line
    assert plugins.algorithm_owner("grpo") == "grpo" and "sft" in plugins.algorithms  # the first stays
    with pytest.raises(PluginError, match="registered twice"):
        Plugins(strict=True)
    # every command still runs, `ood-bench plugins` included
    import ood_bench.plugins as plugins_module

    with pytest.warns(RuntimeWarning, match="registered twice"):
        monkeypatch.setattr(plugins_module, "_PLUGINS", Plugins())
    assert main(["plugins"]) == 0 and main(["algorithms", "grpo"]) == 0
    assert "fakeplug_dup" in capsys.readouterr().out


def test_a_duplicate_family_name_is_dropped_with_one_warning(sandbox):
    fake_dist(
        sandbox,
        "fakeplug_dupfam",
        """
        from ood_bench import hookimpl
        from ood_bench.tasks.string_program import StringProgram

        class Again(StringProgram):
            tag = "C"

        @hookimpl
        def register_tasks(register):
            register(Again())
    """,
    )
    with pytest.warns(RuntimeWarning, match="task family 'string' registered twice: .*'fakeplug_dupfam'.*rename"):
        plugins = Plugins()
    assert plugins.tasks.owner("string") != "plugin 'fakeplug_dupfam'" and "graph" in plugins.tasks


@pytest.mark.parametrize(
    "code",
    [
        # the hook misspelled
        """
        from ood_bench import hookimpl
        from ood_bench.api import Algorithm

        class Mine(Algorithm):
            name = "mine"
            def step(self, problems):
                return {}

        @hookimpl
        def register_algorithm(register):
            register(Mine)
        """,
        # @hookimpl forgotten
        """
        from ood_bench.api import Algorithm

        class Mine(Algorithm):
            name = "mine"
            def step(self, problems):
                return {}

        def register_algorithms(register):
            register(Mine)
        """,
    ],
    ids=["misspelled", "undecorated"],
)
def test_a_plugin_that_registers_nothing_is_warned_about(sandbox, code):
    fake_dist(sandbox, "fakeplug_silent", code)
    with pytest.warns(RuntimeWarning) as caught:
        plugins = Plugins()
    (line,) = [str(w.message) for w in caught if "fakeplug_silent" in str(w.message)]
    assert line.startswith("plugin 'fakeplug_silent' registers nothing: is its hook decorated with @hookimpl")
    assert "register_algorithms / register_tasks / register_metrics" in line
    assert ("'register_algorithm', which is no hook" in line) == ("def register_algorithm(" in code)
    assert "mine" not in plugins.algorithms and "grpo" in plugins.algorithms
    with pytest.raises(PluginError, match="registers nothing"):
        Plugins(strict=True)


ALGO = """
from dataclasses import dataclass
from ood_bench.api import Algorithm, AlgorithmConfig, hookimpl

{config}

class Mine(Algorithm):
    name, description, config_class = "mine", "a broken one", Cfg
{step}

class Fine(Algorithm):
    name, description = "fine", "registered after the broken one, by another hook call"
    def step(self, problems):
        return {{}}

@hookimpl
def register_algorithms(register):
    register(Mine)
"""
STEP = "    def step(self, problems):\n        return {}"


@pytest.mark.parametrize(
    "config, step, why",
    [
        ("Cfg = AlgorithmConfig", "", "algorithm class Mine has no step method"),
        (
            "class Cfg(AlgorithmConfig):\n    coef: float = 0.1",
            STEP,
            r"config_class Cfg of Mine is not a dataclass \(add @dataclass\): its knobs coef",
        ),
        (
            "class Cfg:\n    pass",
            STEP,
            r"config_class 'Cfg' of Mine is not a dataclass",
        ),
        (
            "@dataclass\nclass Cfg(AlgorithmConfig):\n    coef: float = '0.1'",
            STEP,
            "config_class Cfg of Mine: knob coef: float = '0.1' is not a float",
        ),
        (
            "@dataclass\nclass Cfg(AlgorithmConfig):\n    n: int | None = 'x'",
            STEP,
            "knob n: .* = 'x' is not a",
        ),
    ],
    ids=["no-step", "no-dataclass", "plain-class", "float-as-str", "optional-int-as-str"],
)
def test_a_broken_algorithm_is_refused_at_registration_naming_plugin_and_class(sandbox, config, step, why):
    fake_dist(sandbox, "fakeplug_algo", ALGO.format(config=config, step=step))
    with pytest.warns(RuntimeWarning, match=f"plugin 'fakeplug_algo' failed to register .*{why}"):
        plugins = Plugins()
    assert "mine" not in plugins.algorithms and "grpo" in plugins.algorithms


def test_a_sound_algorithm_with_optional_and_int_for_float_knobs_is_accepted(sandbox):
    config = "@dataclass\nclass Cfg(AlgorithmConfig):\n    coef: float = 1\n    n: int | None = None"
    fake_dist(sandbox, "fakeplug_algo", ALGO.format(config=config, step=STEP))
    plugins = Plugins(strict=True)
    assert "mine" in plugins.algorithms


def test_a_family_registered_as_a_class_is_refused_naming_it(sandbox):
    fake_dist(
        sandbox,
        "fakeplug_famclass",
        """
        from ood_bench import hookimpl
        from ood_bench.tasks.string_program import StringProgram

        class Copy(StringProgram):
            name, tag = "copy", "C"

        @hookimpl
        def register_tasks(register):
            register(Copy)
    """,
    )
    with pytest.warns(
        RuntimeWarning,
        match=r"plugin 'fakeplug_famclass' failed to register .*Copy registered as a class; .*register\(Copy\(\)\)",
    ):
        plugins = Plugins()
    assert "copy" not in plugins.tasks and "string" in plugins.tasks


def test_the_entry_point_hint_only_when_the_entry_point_is_what_is_missing(sandbox):
    fake_dist(sandbox, "fakeplug_dep", "import banana_not_installed\n")
    (sandbox / "fakeplug_wrong.py").write_text("")
    info = sandbox / "fakeplug_wrong-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug_wrong\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[ood_bench]\nfakeplug_wrong = fakeplug_wrong.plugn\n")
    with pytest.warns(RuntimeWarning) as caught:
        Plugins()
    lines = {w.message.args[0].split("'")[1]: str(w.message) for w in caught if "failed to import" in str(w.message)}
    assert "pyproject.toml" not in lines["fakeplug_dep"]
    assert "imports 'banana_not_installed', which is not installed" in lines["fakeplug_dep"]
    assert "check the entry point in its pyproject.toml" in lines["fakeplug_wrong"]


def test_allow_and_block_lists(sandbox, monkeypatch):
    fake_dist(sandbox, "fakeplug_a", GOOD.format(algo="algo_a"))
    monkeypatch.setenv("OOD_BENCH_DISABLE_PLUGINS", "fakeplug_a,ppo")
    plugins = Plugins()
    assert "algo_a" not in plugins.algorithms and "ppo" not in plugins.algorithms and "grpo" in plugins.algorithms
    monkeypatch.delenv("OOD_BENCH_DISABLE_PLUGINS")
    monkeypatch.setenv("OOD_BENCH_LOAD_PLUGINS", "sft")
    plugins = Plugins()
    assert set(plugins.algorithms) == {"sft"}
    assert plugins.tasks.names() == ["graph", "string"]  # the core's own families always load


def test_loading_is_idempotent():
    from ood_bench.plugins import get_plugins

    assert get_plugins() is get_plugins()
    plugins = Plugins()
    assert sorted(plugins.algorithms) == sorted(Plugins().algorithms)


def test_a_plugin_can_add_a_task_family(sandbox):
    fake_dist(
        sandbox,
        "fakeplug_task",
        """
        from ood_bench import hookimpl
        from ood_bench.tasks.string_program import StringProgram

        class Copy(StringProgram):
            name = "copy"
            tag = "C"

        @hookimpl
        def register_tasks(register):
            register(Copy())
    """,
    )
    plugins = Plugins()
    assert "copy" in plugins.tasks.names()
    assert "fakeplug_task" in plugins.tasks.owner("copy")


def test_plugins_and_algorithms_commands(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "grpo" in out and "ood-bench" in out and "algorithms: grpo" in out and "tasks: string, graph" in out
    assert "plugin API 1." in out.splitlines()[0] and "algorithms: dapo" in out
    assert main(["algorithms"]) == 0
    out = capsys.readouterr().out
    for text in ("grpo", "algo.beta", "algo.kl_estimator", "'k3'", "ppo", "algo.lam", "expert_iteration"):
        assert text in out, text


def test_third_party_plugin_installs_and_runs_through_the_cli(tmp_path):
    """pip-install the example plugin package, then find and run its algorithm from the CLI."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "plugins" / "example-plugin"),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    listing = subprocess.run(
        [sys.executable, "-m", "ood_bench.cli", "algorithms"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "reinforce" in listing and "algo.baseline_decay" in listing
    base = tmp_path / "base"
    from .conftest import TINY_OVERRIDES

    subprocess.run(
        [sys.executable, "-m", "ood_bench.cli", "pretrain", "--no-progress", f"out_dir={base}", *TINY_OVERRIDES],
        env=env,
        check=True,
        capture_output=True,
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ood_bench.cli",
            "posttrain",
            "--algo",
            "reinforce",
            "--base",
            str(base / "base.ckpt"),
            "--out",
            str(tmp_path / "rf"),
            "--no-progress",
            "prompts_per_step=2",
            "budget.grad_steps=2",
            "algo.max_new_tokens=16",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "rf" / "posttrained.ckpt").is_file()
    assert '"plugin": "reinforce"' in (tmp_path / "rf" / "posttrain_record.json").read_text()
    # the core logs the standard diagnostics for a third-party algorithm, under fixed names
    import csv

    rows = list(csv.DictReader(open(next((tmp_path / "rf" / "logs").rglob("metrics.csv")))))
    for name in (
        "diag/reward",
        "diag/accuracy",
        "diag/response_length",
        "diag/kl_ref",
        "diag/entropy",
        "algo/baseline",
        "budget/grad_steps",
    ):
        assert any(r.get(name) not in (None, "") for r in rows), name


def test_a_plugin_metric_is_computed_on_the_evaluation_records(sandbox, monkeypatch):
    fake_dist(
        sandbox,
        "fakeplug_metric",
        """
        import torch
        from torchmetrics import Metric
        from ood_bench import hookimpl

        class SolvedAtAll(Metric):
            def __init__(self):
                super().__init__()
                self.add_state("hits", default=torch.tensor(0.0), dist_reduce_fx="sum")
                self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
            def update(self, records):
                self.hits += sum(r["c"] > 0 for r in records)
                self.total += len(records)
            def compute(self):
                return self.hits / self.total

        @hookimpl
        def register_metrics(register):
            register("solved_at_all", SolvedAtAll)
    """,
    )
    import ood_bench.plugins as plugins_mod
    from ood_bench.evaluation.evaluate import EvalConfig, evaluate_split
    from ood_bench.model.model import GPT, ModelConfig

    monkeypatch.setattr(plugins_mod, "_PLUGINS", Plugins())
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16))
    fam = plugins_mod.get_tasks().get("string")
    res = evaluate_split(model, fam, "id", EvalConfig(n_test=3, n_samples=2, max_new_tokens=8))
    expected = sum(r["c"] > 0 for r in res.records) / 3
    assert res.summary["solved_at_all"] == pytest.approx(expected)


def test_a_third_party_family_and_algorithm_run_pretrain_posttrain_evaluate(tmp_path):
    """Both example packages, pip-installed: the family joins the mixture, the algorithm post-trains on it."""
    target = tmp_path / "site"
    for pkg in ("example-plugin", "example-family"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--target",
                str(target),
                str(ROOT / "plugins" / pkg),
            ],
            check=True,
        )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}

    def cli(*args):
        run = subprocess.run([sys.executable, "-m", "ood_bench.cli", *args], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout

    assert "modsum v2: keeps the task-family contract" in cli(
        "tasks", "--family", "modsum", "--check", "--check-problems", "50"
    )
    from .conftest import TINY_OVERRIDES

    base = tmp_path / "base"
    cli(
        "pretrain",
        "--no-progress",
        f"out_dir={base}",
        *TINY_OVERRIDES,
        "mixture.families={string: 0.3, graph: 0.3, modsum: 0.4}",
    )
    cli(
        "posttrain",
        "--algo",
        "reinforce",
        "--base",
        str(base / "base.ckpt"),
        "--rl-split",
        "id",
        "--out",
        str(tmp_path / "rf"),
        "--no-progress",
        "prompts_per_step=2",
        "budget.grad_steps=2",
        "algo.max_new_tokens=16",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "families=[modsum]",
    )
    out = cli(
        "evaluate",
        "--checkpoint",
        str(tmp_path / "rf" / "posttrained.ckpt"),
        "--families",
        "modsum",
        "--splits",
        "id",
        "ood_comp",
        "--n-test",
        "4",
        "--n",
        "2",
        "--no-progress",
    )
    assert "modsum" in out and "ood_comp" in out
    record = json.loads((tmp_path / "rf" / "posttrain_record.json").read_text())
    assert record["plugin"] == "reinforce" and record["task_versions"] == {"modsum": 2}


def test_a_family_that_breaks_the_contract_is_reported_by_name(sandbox):
    fake_dist(
        sandbox,
        "fakeplug_badfam",
        """
        from ood_bench.api import TaskFamily, hookimpl

        class Bad(TaskFamily):
            name, version, tag, description = "badfam", 1, "B", "no tag in its prompts"

            def _generate(self, split, rng):
                return "no tag here\\n", ["x"], "y", {}

        @hookimpl
        def register_tasks(register):
            register(Bad())
    """,
    )
    with pytest.warns(RuntimeWarning, match="plugin 'fakeplug_badfam' failed to register .*must start with 'B:'"):
        plugins = Plugins()
    assert "badfam" not in plugins.tasks and "string" in plugins.tasks


def test_a_post_trained_checkpoint_names_the_family_plugin_it_needs(tmp_path):
    """Train with the example family installed, then evaluate without it: the error names the distribution."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "plugins" / "example-family"),
        ],
        check=True,
    )
    with_family = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    from .conftest import TINY_OVERRIDES

    base = tmp_path / "base"
    for argv in (
        ["pretrain", "--no-progress", f"out_dir={base}", *TINY_OVERRIDES, "mixture.families={modsum: 1.0}"],
        [
            "posttrain",
            "--algo",
            "sft",
            "--base",
            str(base / "base.ckpt"),
            "--out",
            str(tmp_path / "p"),
            "--no-progress",
            "prompts_per_step=2",
            "budget.grad_steps=1",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
        ],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "ood_bench.cli", *argv], env=with_family, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr[-2000:]
    # without it: where the example family is installed for good (CI installs it), it is switched off
    without = {**os.environ, "OOD_BENCH_DISABLE_PLUGINS": "modsum"}
    for ckpt in (base / "base.ckpt", tmp_path / "p" / "posttrained.ckpt"):
        run = subprocess.run(
            [sys.executable, "-m", "ood_bench.cli", "evaluate", "--checkpoint", str(ckpt)],
            env=without,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2 and "'ood-bench-modsum'" in run.stderr and "task family 'modsum'" in run.stderr


def test_a_third_party_algorithm_with_state_resumes_to_identical_weights(sandbox, tmp_path):
    """A plugin with a running baseline (its own state, through state_dict/load_state_dict), killed and resumed."""
    fake_dist(
        sandbox,
        "fakeplug_stateful",
        """
        from dataclasses import dataclass
        from ood_bench.api import Algorithm, AlgorithmConfig, hookimpl

        @dataclass
        class Cfg(AlgorithmConfig):
            group_size: int = 2
            max_new_tokens: int = 16

        class Stateful(Algorithm):
            name, description, config_class = "stateful", "REINFORCE with a running baseline", Cfg

            def __init__(self, config, ctx):
                super().__init__(config, ctx)
                self.baseline = 0.0

            def state_dict(self):
                return {"baseline": self.baseline}

            def load_state_dict(self, state):
                self.baseline = state["baseline"]

            def step(self, problems):
                batch = self.ctx.rollout(problems, self.cfg.group_size)
                lp = self.ctx.logprobs(self.ctx.policy, batch.ids, batch.cmask)
                # a baseline that moves every step, so forgetting it changes the next update
                self.baseline = 0.5 * self.baseline + 0.5 + 0.1 * self.ctx.counters.batches
                loss = -((batch.rewards - self.baseline) * lp.logp.sum(1)).mean()
                self.ctx.optimize(loss, train_tokens=int(lp.mask.sum()))
                return {"baseline": self.baseline}

        @hookimpl
        def register_algorithms(register):
            register(Stateful)
    """,
    )
    import ood_bench.plugins as plugins_module
    from ood_bench.training.posttrain import load_posttrain_config, posttrain

    from .conftest import TINY_OVERRIDES
    from .test_cli import Crash

    plugins_module.get_plugins(reload=True)
    try:
        base = tmp_path / "base"
        assert main(["pretrain", "--no-progress", f"out_dir={base}", *TINY_OVERRIDES]) == 0

        def cfg(out):
            return load_posttrain_config(
                None,
                [
                    f"base={base / 'base.ckpt'}",
                    f"out_dir={out}",
                    "algorithm=stateful",
                    "prompts_per_step=2",
                    "budget.grad_steps=4",
                    "ckpt_every=1",
                    "trainer.accelerator=cpu",
                    "trainer.devices=1",
                ],
            )

        straight = posttrain(cfg(tmp_path / "straight"), progress=False)
        with pytest.raises(RuntimeError, match="simulated crash"):
            posttrain(cfg(tmp_path / "resumed"), progress=False, callbacks=[Crash(at_step=2)])
        resumed = posttrain(cfg(tmp_path / "resumed"), progress=False)
        a, b = torch.load(straight, weights_only=False), torch.load(resumed, weights_only=False)
        assert a["algorithm_state"] == b["algorithm_state"] and a["algorithm_state"]["baseline"] > 0
        for k in a["state_dict"]:
            assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    finally:
        plugins_module.get_plugins(reload=True)


def test_a_plugin_that_exits_at_import_is_named_and_the_others_load(sandbox):
    fake_dist(sandbox, "fakeplug_exits", "import sys\nsys.exit(3)\n")
    with pytest.warns(RuntimeWarning, match=r"plugin 'fakeplug_exits' failed to import: .*sys.exit\(3\)"):
        plugins = Plugins()
    assert "grpo" in plugins.algorithms and "string" in plugins.tasks
