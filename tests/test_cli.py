"""End to end through the CLI: a tiny pretrain, evaluation, resume, and bad input."""

import copy
import json
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from ood_bench.cli import main
from ood_bench.model.kernels import engine
from ood_bench.plugins import get_tasks

from .conftest import TINY_OVERRIDES, TINY_SUITE


def tiny(**train) -> list[str]:
    """The tiny overrides with some ``train.*`` values replaced (an override may be given once)."""
    keep = [o for o in TINY_OVERRIDES if o.split("=")[0].removeprefix("train.") not in train]
    return keep + [f"train.{k}={v}" for k, v in train.items()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    rc = main(["pretrain", "--no-progress", f"out_dir={out}", *TINY_OVERRIDES])
    assert rc == 0
    return out


def test_pretrain_writes_checkpoint_logs_and_record(tiny_run):
    assert (tiny_run / "base.ckpt").is_file()
    assert (tiny_run / "checkpoints" / "last.ckpt").is_file()
    metrics = (tiny_run / "logs" / "version_0" / "metrics.csv").read_text()
    assert "train/loss" in metrics and "train/tokens_per_s" in metrics
    record = json.loads((tiny_run / "pretrain_record.json").read_text())
    assert record["global_step"] == 4
    assert record["config"]["model"]["n_embd"] == 16
    assert "torch" in record["packages"] and record["code_version"]


def test_evaluate_prints_a_table_and_writes_counts(tiny_run, capsys):
    out = tiny_run / "ev"
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(tiny_run / "base.ckpt"),
            "--splits",
            "id",
            "ood_repr",
            "--n",
            "3",
            "--n-test",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "pass@1" in printed and "ood_repr" in printed
    res = json.loads((out / "eval.json").read_text())
    rows = {(r["family"], r["split"]) for r in res["results"]}
    assert rows == {(f, s) for f in ("string", "graph") for s in ("id", "ood_repr")}
    assert res["task_versions"] == {f: get_tasks().get(f).version for f in ("string", "graph")}
    assert res["engine"] == engine()  # which decode path sampled: eager unless OOD_BENCH_ENGINE says otherwise
    lines = (out / "samples" / "graph__ood_repr.jsonl").read_text().splitlines()
    assert len(lines) == 5
    rec = json.loads(lines[0])
    assert rec["n"] == 3 and 0 <= rec["c"] <= 3
    assert rec["gold_logprob"] < 0  # an untrained model puts little mass on the gold trace


def test_evaluation_is_reproducible(tiny_run):
    a, b = tiny_run / "a", tiny_run / "b"
    for out in (a, b):
        assert (
            main(
                [
                    "evaluate",
                    "--checkpoint",
                    str(tiny_run / "base.ckpt"),
                    "--splits",
                    "id",
                    "--n",
                    "4",
                    "--n-test",
                    "6",
                    "--out",
                    str(out),
                    "--no-progress",
                    "--temperature",
                    "2.0",
                ]
            )
            == 0
        )
    assert (a / "samples" / "string__id.jsonl").read_text() == (b / "samples" / "string__id.jsonl").read_text()


class Crash(Callback):
    """Dies at the start of a given step, after that step's checkpoint was written."""

    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path):
    from ood_bench.config import load_config
    from ood_bench.training.pretrain import PretrainConfig, pretrain

    def cfg(out):
        return load_config(PretrainConfig, "quick", [f"out_dir={out}", *TINY_OVERRIDES])

    straight = pretrain(cfg(tmp_path / "straight"), progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(cfg(tmp_path / "resumed"), progress=False, callbacks=[Crash(at_step=2)])
    assert not (tmp_path / "resumed" / "base.ckpt").exists()
    assert torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
    resumed = pretrain(cfg(tmp_path / "resumed"), progress=False)
    a = torch.load(straight, weights_only=False)
    b = torch.load(resumed, weights_only=False)
    assert a["global_step"] == b["global_step"] == 4
    for k in a["state_dict"]:
        assert torch.allclose(a["state_dict"][k], b["state_dict"][k], atol=1e-6), k


class Slow(Callback):
    """Sleeps before each step: a session whose training takes a known least time."""

    def __init__(self, seconds):
        self.seconds = seconds

    def on_train_batch_start(self, *args):
        time.sleep(self.seconds)


def test_a_resumed_run_records_the_training_time_of_every_session(tmp_path):
    """The first session spends at least 2 x 0.3 s on the two steps it checkpoints before it dies; the
    resumed one sleeps not at all. The record must count the first session's time, not only the last's."""
    from ood_bench.config import load_config
    from ood_bench.training.pretrain import PretrainConfig, pretrain

    cfg = load_config(PretrainConfig, "quick", [f"out_dir={tmp_path}", *TINY_OVERRIDES])
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(cfg, progress=False, callbacks=[Slow(0.3), Crash(at_step=2)])
    pretrain(cfg, progress=False)
    record = json.loads((tmp_path / "pretrain_record.json").read_text())
    assert record["train_seconds_earlier"] >= 0.6  # the first session, up to its checkpoint at step 2
    assert record["train_seconds"] > record["train_seconds_earlier"]  # and this one's two steps on top


class CrashAtEnd(Callback):
    """Dies after the last step's checkpoint, before the final checkpoint is saved."""

    def on_train_end(self, *args):
        raise RuntimeError("simulated crash at the end")


def test_training_time_survives_a_resume_that_trains_nothing_and_a_rebuilt_record(tmp_path):
    """A run killed after its last step's checkpoint resumes with nothing left to train, and a finished run
    whose record was lost gets it rebuilt from its checkpoint: both must keep the first session's time."""
    from ood_bench.config import load_config
    from ood_bench.training.pretrain import PretrainConfig, pretrain

    cfg = load_config(PretrainConfig, "quick", [f"out_dir={tmp_path}", *TINY_OVERRIDES])
    with pytest.raises(RuntimeError, match="simulated crash at the end"):
        pretrain(cfg, progress=False, callbacks=[Slow(0.2), CrashAtEnd()])
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    pretrain(cfg, progress=False)
    record = json.loads((tmp_path / "pretrain_record.json").read_text())
    assert record["train_seconds"] == record["train_seconds_earlier"] >= 0.8  # 4 steps of 0.2 s, all earlier
    (tmp_path / "pretrain_record.json").unlink()
    pretrain(cfg, progress=False)
    rebuilt = json.loads((tmp_path / "pretrain_record.json").read_text())
    assert rebuilt["record_rebuilt_from"] and rebuilt["train_seconds"] == record["train_seconds"]


def test_finished_run_is_skipped(tiny_run, capsys):
    before = (tiny_run / "base.ckpt").stat().st_mtime_ns
    assert main(["pretrain", "--no-progress", f"out_dir={tiny_run}", *TINY_OVERRIDES]) == 0
    assert (tiny_run / "base.ckpt").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pretrain", "mixture.exposure.comp=-0.5"], "mixture.exposure.comp=-0.5"),
        (["pretrain", "mixture.families.string=0.2"], "sum to 0.7"),
        (["pretrain", "mixture.families={string: 0.5, sudoku: 0.5}"], "unknown task family 'sudoku'"),
        (["pretrain", "--config", "missing.yaml"], "missing.yaml"),
        (["evaluate", "--checkpoint", "/nonexistent/base.ckpt"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ood-bench: error:") and message in err and "\n" not in err


def test_evaluate_takes_eval_overrides(tiny_run, tmp_path, capsys):
    out = tmp_path / "ev"
    # the override may also follow a list option that would otherwise swallow it
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tiny_run / "base.ckpt"),
                "--n",
                "2",
                "--n-test",
                "2",
                "--out",
                str(out),
                "--no-progress",
                "--splits",
                "id",
                "eval.top_p=0.9",
                "eval.max_new_tokens=16",
            ]
        )
        == 0
    )
    cfg = json.loads((out / "eval.json").read_text())["eval_config"]
    assert cfg["top_p"] == 0.9 and cfg["max_new_tokens"] == 16 and cfg["splits"] == ["id"]


def test_a_problems_samples_do_not_depend_on_its_batch(tiny_run, tmp_path):
    """The same problem gets the same samples whether 3 or 7 problems are evaluated, in batches of any
    size; before, the random draws depended on which problems shared a batch."""
    ck = str(tiny_run / "base.ckpt")
    runs = {}
    for name, n_test, batch in (("small", 3, 512), ("large", 7, 8)):
        out = tmp_path / name
        assert (
            main(
                [
                    "evaluate",
                    "--checkpoint",
                    ck,
                    "--splits",
                    "id",
                    "ood_length",
                    "--n",
                    "4",
                    "--n-test",
                    str(n_test),
                    "--out",
                    str(out),
                    "--no-progress",
                    f"eval.batch_size={batch}",
                ]
            )
            == 0
        )
        runs[name] = {
            f.name: [json.loads(line) for line in f.read_text().splitlines()] for f in (out / "samples").glob("*.jsonl")
        }
    keys = ("uid", "c", "trace_c", "full_c", "sample")
    for name, small in runs["small"].items():
        large = runs["large"][name][:3]
        assert [[r[k] for k in keys] for r in small] == [[r[k] for k in keys] for r in large]
    assert len({r["sample"] for rows in runs["large"].values() for r in rows}) > 4  # real, varied samples


def test_bad_split_family_and_k_on_evaluate(tiny_run, capsys):
    ck = str(tiny_run / "base.ckpt")
    for argv, message in (
        (["--splits", "ood_nope"], "ood_nope"),
        (["--families", "chess"], "unknown task family 'chess'"),
        (["--n", "4", "--k", "8"], "n >= k"),
        (["eval.nosuch=1"], "unknown config key 'eval.nosuch'"),
        (["--k", "0"], "k=0: must be >= 1"),
        (["--seed", "-5"], "--seed=-5"),
        (["--splits", "id", "id"], "a name is given twice"),
        (["--base-eval", "nosuch"], "is not an evaluation folder"),
        (["eval.top_p=0"], "eval.top_p"),
        (["train.lr=1"], "only eval.KEY=VALUE overrides"),
    ):
        assert main(["evaluate", "--checkpoint", ck, *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err


def test_corrupt_checkpoint_is_refused_and_left_alone(tiny_run, tmp_path, capsys):
    bad = tmp_path / "base.ckpt"
    bad.write_bytes((tiny_run / "base.ckpt").read_bytes()[:1000])
    assert main(["evaluate", "--checkpoint", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert bad.stat().st_size == 1000


def test_console_script_exits_2_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ood_bench.cli", "evaluate", "--checkpoint", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_python_dash_m_ood_bench_is_the_cli():
    proc = subprocess.run([sys.executable, "-m", "ood_bench", "plugins"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "plugin API" in proc.stdout and "grpo" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "ood_bench", "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and "ood-bench" in bad.stderr


def test_tasks_command_lists_families_and_examples(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    versions = [f"{f.name} v{f.version}" for f in get_tasks()]
    for word in (*versions, "ood_comp", "ood_repr", "edge"):
        assert word in out
    assert main(["tasks", "--json", "--family", "graph"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["name"] == "graph" and set(data[0]["examples"]) == set(data[0]["splits"])


def test_print_config_shows_the_resolved_config_and_runs_nothing(tmp_path, capsys):
    import yaml

    assert main(["pretrain", "--print-config", f"out_dir={tmp_path / 'x'}", "train.max_steps=7"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["train"]["max_steps"] == 7 and cfg["model"]["n_layer"] == 4 and cfg["trainer"]["logger"] == "csv"
    assert not (tmp_path / "x").exists()
    assert main(["posttrain", "--print-config", "--algo", "grpo", "--base", "b.ckpt", "algo.beta=0.1"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["algo"]["beta"] == 0.1 and cfg["algo"]["eps_high"] == 0.2 and cfg["budget"]["grad_steps"] == 100


def test_two_bases_never_share_a_default_posttrain_folder(capsys):
    """``runs/a/base.ckpt`` and ``runs/b/base.ckpt`` once both defaulted to ``runs/grpo-id-s0``."""
    import yaml

    outs = []
    for base in ("runs/a/base.ckpt", "runs/b/base.ckpt"):
        assert main(["posttrain", "--print-config", "--algo", "grpo", "--base", base]) == 0
        outs.append(yaml.safe_load(capsys.readouterr().out)["out_dir"])
    assert outs == ["runs/a/posttrain/grpo-id-s0", "runs/b/posttrain/grpo-id-s0"]


def test_algorithms_name_documents_each_knob(capsys):
    assert main(["algorithms", "grpo"]) == 0
    out = capsys.readouterr().out
    assert "algo.beta" in out and "KL-to-reference coefficient" in out and "ppo" not in out.split("\n")[0]
    assert main(["algorithms", "nosuch"]) == 2
    assert "unknown algorithm 'nosuch'" in capsys.readouterr().err


def test_plugin_names_that_match_nothing_are_warned_about(monkeypatch, capsys):
    import ood_bench.plugins as plugins_module

    monkeypatch.setenv("OOD_BENCH_LOAD_PLUGINS", "grpo,grpoo")
    try:
        plugins_module._PLUGINS = None
        assert main(["plugins"]) == 0
        err = capsys.readouterr().err
        assert "ood-bench: warning: OOD_BENCH_LOAD_PLUGINS names 'grpoo', which matches no installed plugin" in err
    finally:
        monkeypatch.delenv("OOD_BENCH_LOAD_PLUGINS")
        plugins_module.get_plugins(reload=True)


def test_a_logger_that_is_not_installed_is_a_config_error(capsys):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    assert main(["pretrain", "--print-config", "trainer.logger=wandb"]) == 2
    assert "trainer.logger='wandb'" in capsys.readouterr().err
    assert main(["pretrain", "--print-config", "trainer.logger=nosuch"]) == 2


def test_a_checkpoint_whose_family_is_missing_names_what_it_needs(tiny_run, tmp_path, capsys):
    import torch

    # a family no plugin here provides (not the example family's name: CI installs that one)
    ckpt = torch.load(tiny_run / "base.ckpt", weights_only=False)
    ckpt["hyper_parameters"]["config"]["mixture"]["families"] = {"nowhere": 1.0}
    ckpt["hyper_parameters"]["task_sources"] = {
        "nowhere": {"version": 3, "plugin": "nowhere", "distribution": "ood-bench-nowhere"}
    }
    torch.save(ckpt, tmp_path / "needs.ckpt")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "needs.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "task family 'nowhere'" in err and "'ood-bench-nowhere'" in err and err.count("\n") == 1


def test_adam_betas_are_knobs_not_constants():
    from ood_bench.training.algorithms import AlgorithmConfig
    from ood_bench.training.pretrain import TrainConfig

    assert TrainConfig().adam_beta2 == 0.95 and AlgorithmConfig().adam_beta2 == 0.99
    assert main(["pretrain", "--print-config", "train.adam_beta2=1.5"]) == 2


def test_a_diverging_run_stops_with_one_line_and_saves_nothing_non_finite(tmp_path, capsys):
    out = tmp_path / "nan"
    argv = ["pretrain", "--no-progress", f"out_dir={out}", *tiny(ckpt_every=1, lr=1e30, warmup_steps=0)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no longer finite" in err and err.count("\n") == 1
    assert not (out / "base.ckpt").exists()
    for ckpt in (out / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, weights_only=False)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values()), ckpt
    for bad in ("train.lr=inf", "train.lr=nan"):
        assert main(["pretrain", "--print-config", bad]) == 2
    assert main(["posttrain", "--print-config", "--algo", "grpo", "--base", "b.ckpt", "algo.temperature=inf"]) == 2


def test_a_plugin_whose_loss_turns_nan_never_reaches_the_weights(tiny_run):
    from ood_bench.api import standalone
    from ood_bench.data import PromptStream
    from ood_bench.errors import NonFiniteError
    from ood_bench.training.pretrain import load_base

    model, cfg, _ = load_base(tiny_run / "base.ckpt")
    fams = [get_tasks().get("string")]
    sft = standalone(__import__("ood_bench.plugins", fromlist=["x"]).get_plugins().algorithm("sft"), model, fams)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real = sft.ctx.logprobs

    def poisoned(*a, **k):
        lp = real(*a, **k)
        return lp._replace(logp=lp.logp * float("nan"))

    sft.ctx.logprobs = poisoned
    with pytest.raises(NonFiniteError, match="loss is nan"):
        sft.step(PromptStream(fams, "id", 0, 2).batch(0))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_re_evaluating_into_a_folder_replaces_it_whole(tiny_run, capsys):
    out = tiny_run / "eval-replace"
    ckpt = str(tiny_run / "base.ckpt")
    assert (
        main(["evaluate", "--checkpoint", ckpt, "--splits", "id", "ood_comp", "--out", str(out), "--no-progress"]) == 0
    )
    assert (out / "samples" / "string__ood_comp.jsonl").is_file()
    (out / "support.json").write_text("{}")  # something a later compare wrote
    assert main(["evaluate", "--checkpoint", ckpt, "--splits", "id", "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["graph__id.jsonl", "string__id.jsonl"]
    assert not (out / "support.json").exists()
    assert not list(tiny_run.glob(".eval-replace*"))  # no partial or old folder left behind
    capsys.readouterr()


@pytest.mark.parametrize("sig,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_training_saves_a_checkpoint_and_exits_with_its_status(tmp_path, sig, code):
    import signal
    import time

    out = tmp_path / "sig"
    overrides = [f"out_dir={out}", *tiny(max_steps=1_000_000, ckpt_every=1_000_000)]  # never ends by itself
    proc = subprocess.Popen(
        [sys.executable, "-m", "ood_bench.cli", "pretrain", "--no-progress", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / "logs").is_dir() and time.time() < deadline and proc.poll() is None:  # training is under way
        time.sleep(0.1)
    time.sleep(1.5)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    line = [ln for ln in err.splitlines() if ln.startswith("ood-bench:")]
    assert len(line) == 1 and f"interrupted by {sig} at step" in line[0] and "run the same command again" in line[0]
    step = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert step > 0 and not (out / "base.ckpt").exists()
    if sig == "SIGTERM":  # the same config resumes from that step (stopped here after two more)
        from ood_bench.config import load_config
        from ood_bench.training.pretrain import PretrainConfig, pretrain

        class TwoMore(Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step >= step + 2:
                    trainer.should_stop = True

        final = pretrain(load_config(PretrainConfig, "quick", overrides), progress=False, callbacks=[TwoMore()])
        assert torch.load(final, weights_only=False)["global_step"] == step + 2


def test_a_run_folder_has_one_writer_at_a_time(tmp_path, capsys):
    from ood_bench.training.training import run_folder_lock

    out = tmp_path / "locked"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / ".last.ckpt.abc.tmp").write_text("half a save")
    with run_folder_lock(out):
        assert not (out / "checkpoints" / ".last.ckpt.abc.tmp").exists()  # orphan cleaned
        assert main(["pretrain", "--no-progress", f"out_dir={out}", *TINY_OVERRIDES]) == 2
        err = capsys.readouterr().err
        assert f"run folder {str(out)!r} is in use by process" in err and err.count("\n") == 1
    # released on exit: the same run now goes through
    assert main(["pretrain", "--no-progress", f"out_dir={out}", *TINY_OVERRIDES]) == 0


def test_a_lock_left_by_a_killed_run_is_not_stale(tmp_path):
    out = tmp_path / "killed"
    code = (
        "import os, sys; from ood_bench.training.training import run_folder_lock\n"
        f"cm = run_folder_lock(__import__('pathlib').Path({str(out)!r})); cm.__enter__(); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert (out / ".lock").exists()
    from ood_bench.training.training import run_folder_lock

    with run_folder_lock(out):
        pass


@pytest.mark.parametrize(
    "argv,message",
    [
        (["pretrain", "--print-config", "seed=-1"], "seed=-1"),
        (["pretrain", "--print-config", "eval.splits=[]"], "name at least one split"),
        (["pretrain", "--print-config", "train.max_steps=5", "train.max_steps=6"], "given twice"),
        (["pretrain", "--print-config", "mixture.families={}"], "name at least one family"),
        (["pretrain", "--print-config", "model.block_size=8"], "string id test problems need up to"),
        (["tasks", "--check", "--check-problems", "0"], "--check-problems=0"),
        (["pretrain", "--print-config", "mixture.families={string: 0.45, graph: 0.55, graph: 0.55}"], "given twice"),
        (["pretrain", "--print-config", "train.lr=" + "[" * 3000], "nested too deeply"),
        (["pretrain", "--no-progress", "out_dir=/", *TINY_OVERRIDES], "out_dir '/' is the root"),
    ],
)
def test_more_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bad_yaml_files_are_one_line(tmp_path, capsys):
    cases = {
        "empty.yaml": (b"", "is empty"),
        "binary.yaml": (b"\xff\xfe\x00\x01", "is not text"),
        "dupes.yaml": (b"seed: 1\nseed: 2\n", "'seed' is given twice"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert main(["pretrain", "--print-config", "--config", str(tmp_path / name)]) == 2, name
        assert message in capsys.readouterr().err, name


def test_tasks_prints_on_an_ascii_terminal():
    env = {**__import__("os").environ, "PYTHONIOENCODING": "ascii"}
    run = subprocess.run([sys.executable, "-m", "ood_bench.cli", "tasks"], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "\\n#" in run.stdout, run.stderr[-500:]


def test_a_path_an_ascii_terminal_cannot_show_is_escaped_not_a_traceback(tiny_run, tmp_path):
    env = {**__import__("os").environ, "PYTHONIOENCODING": "ascii"}
    out = tmp_path / "\u00e9vals"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ood_bench.cli",
            "evaluate",
            "--checkpoint",
            str(tiny_run / "base.ckpt"),
            "--splits",
            "id",
            "--n",
            "2",
            "--n-test",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and "\\xe9vals" in run.stdout, run.stderr[-500:]


def test_a_killed_evaluation_leaves_no_partial_folder_behind(tiny_run, capsys):
    out = tiny_run / "eval-killed"
    stale = tiny_run / ".eval-killed.partial-999999999"  # a pid no process has
    (stale / "samples").mkdir(parents=True)
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tiny_run / "base.ckpt"),
                "--splits",
                "id",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert not stale.exists() and (out / "eval.json").is_file()
    capsys.readouterr()


@pytest.mark.parametrize(
    "override,message",
    [
        ("trainer.precision=bogus", "trainer.precision='bogus'"),
        ("trainer.devices=0", "trainer.devices=0"),
        # what only Lightning knows, asked of Lightning before any compute
        ("trainer.strategy=nosuch", "invalid strategy name"),
        ("trainer.accelerator=tpu", "torch_xla"),
        ("trainer.precision=transformer-engine", "transformer_engine"),
    ],
)
def test_trainer_settings_are_checked_before_any_compute(override, message, capsys):
    assert main(["pretrain", "--print-config", override]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    if not torch.cuda.is_available():
        assert main(["pretrain", "--print-config", "trainer.accelerator=gpu"]) == 2
        assert "no CUDA GPU is visible" in capsys.readouterr().err


def test_the_leaderboard_of_a_renamed_records_folder_is_still_current(tmp_path):
    import shutil

    records = __import__("pathlib").Path(__file__).resolve().parents[1] / "leaderboards" / "records"
    shutil.copytree(records / "quick" / "base-id500", tmp_path / "a" / "base-id500")
    assert main(["leaderboard", str(tmp_path / "a")]) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "renamed")
    assert main(["leaderboard", str(tmp_path / "renamed"), "--check"]) == 0


def test_a_checkpoint_whose_weights_changed_on_disk_is_named_corrupt(tiny_run, tmp_path, capsys):
    ckpt = torch.load(tiny_run / "base.ckpt", weights_only=False)
    assert "state_dict_sha256" in ckpt
    name = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][name] = ckpt["state_dict"][name].clone()
    ckpt["state_dict"][name].view(-1)[0] += 1.0  # one weight flipped, the file still loads
    torch.save(ckpt, tmp_path / "tampered.ckpt")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "tampered.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "is corrupt: its weights do not match the checksum" in err and err.count("\n") == 1


def test_unwritable_output_folders_are_refused_before_any_compute(tiny_run, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    too_long = tmp_path / ("x" * 300)
    ck = str(tiny_run / "base.ckpt")
    for argv, message in (
        (["pretrain", "--no-progress", f"out_dir={a_file}", *TINY_OVERRIDES], "is a file"),
        (["pretrain", "--no-progress", f"out_dir={a_file / 'sub'}", *TINY_OVERRIDES], "is a file"),
        (["pretrain", "--no-progress", f"out_dir={too_long}", *TINY_OVERRIDES], "cannot write to out_dir"),
        (["evaluate", "--checkpoint", ck, "--out", str(a_file), "--no-progress"], "is a file"),
        (["evaluate", "--checkpoint", ck, "--out", str(too_long / "ev"), "--no-progress"], "cannot write"),
        (["run", str(TINY_SUITE), "--work-root", str(a_file), "--publish-root", str(tmp_path / "p")], "is a file"),
        (["run", str(TINY_SUITE), "--work-root", str(tmp_path / "w"), "--publish-root", str(a_file)], "is a file"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "w").exists() and not (tmp_path / "p").exists()  # refused before making any folder


def test_a_full_disk_during_evaluation_is_one_line_and_keeps_the_previous_evaluation(
    tiny_run, tmp_path, capsys, monkeypatch
):
    import errno

    import ood_bench.storage.eval_records as results

    out = tmp_path / "ev"
    argv = [
        "evaluate",
        "--checkpoint",
        str(tiny_run / "base.ckpt"),
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
    assert main(argv) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results, "atomic_write_json", full)
    capsys.readouterr()
    assert main([*argv, "--seed", "1"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and err.count("\n") == 1
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    assert main([*argv, "--seed", "1"]) == 0
    assert not list(tmp_path.glob(".ev.partial-*"))  # the dead attempt's folder is gone


def test_checkpoints_with_a_broken_config_or_state_are_one_line(tiny_run, tmp_path, capsys):
    ckpt = torch.load(tiny_run / "base.ckpt", weights_only=False)
    broken = {
        "n_head-0": lambda c: c["hyper_parameters"]["config"]["model"].update(n_head=0),
        "state-string": lambda c: c.update(state_dict="weights"),
        "config-string": lambda c: c["hyper_parameters"].update(config="quick"),
        "hparams-none": lambda c: c.update(hyper_parameters=None),
        "not-a-dict": None,
    }
    for name, damage in broken.items():
        c = copy.deepcopy(ckpt)
        if damage is None:
            c = ["a list, not a checkpoint"]
        else:
            damage(c)
            c.pop("state_dict_sha256", None)  # damaged by hand, not on disk: only the content is wrong
        path = tmp_path / f"{name}.ckpt"
        torch.save(c, path)
        assert main(["evaluate", "--checkpoint", str(path), "--no-progress"]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("ood-bench: error:") and err.count("\n") == 1, (name, err)


def test_a_finished_base_without_its_record_gets_the_record_back(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--no-progress", f"out_dir={out}", *TINY_OVERRIDES]) == 0
    record = (out / "pretrain_record.json").read_text()
    (out / "pretrain_record.json").unlink()
    assert main(["pretrain", "--no-progress", f"out_dir={out}", *TINY_OVERRIDES]) == 0
    assert json.loads((out / "pretrain_record.json").read_text())["global_step"] == json.loads(record)["global_step"]


def test_overrides_may_follow_options(capsys):
    import yaml

    assert (
        main(
            [
                "posttrain",
                "--print-config",
                "--algo",
                "grpo",
                "--base",
                "b.ckpt",
                "families=[string]",
                "--out",
                "x",
                "budget.grad_steps=2",
                "prompts_per_step=4",
            ]
        )
        == 0
    )
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["budget"]["grad_steps"] == 2 and cfg["prompts_per_step"] == 4 and cfg["families"] == ["string"]
    assert main(["tasks", "foo=1"]) == 2  # a command without overrides still refuses them
    assert "unrecognized arguments: foo=1" in capsys.readouterr().err


def test_posttrain_print_config_shows_every_key_without_a_base(capsys):
    import yaml

    assert main(["posttrain", "--algo", "dapo", "--print-config"]) == 0
    captured = capsys.readouterr()
    cfg = yaml.safe_load(captured.out)
    assert cfg["algorithm"] == "dapo" and cfg["base"] == "" and cfg["out_dir"] == ""
    assert {"eps_high", "lr", "group_size"} <= set(cfg["algo"]) and "grad_steps" in cfg["budget"]
    assert "no --base given" in captured.err
    assert main(["posttrain", "--algo", "dapo"]) == 2  # a run still needs one
    assert "give the base checkpoint (--base)" in capsys.readouterr().err


def test_a_family_whose_plugin_failed_is_not_called_unknown(monkeypatch, capsys):
    import ood_bench.plugins as plugins_module

    plugins = plugins_module.get_plugins()
    monkeypatch.setitem(
        plugins.info,
        "revlist",
        plugins_module.PluginInfo(
            name="revlist",
            module="revlist",
            error="plugin 'revlist' failed to register (register_tasks): ContractError: bad prompt",
        ),
    )
    assert main(["tasks", "--family", "revlist", "--check"]) == 2
    err = capsys.readouterr().err
    assert "plugin 'revlist' failed to load, as warned above" in err and err.count("\n") == 1


def test_an_algorithm_whose_plugin_failed_is_not_called_unknown(monkeypatch, capsys):
    """A stale install (the package pointing at a checkout that moved) fails to import the built-in
    plugins: the error must name them, not print "unknown algorithm 'grpo' (available: none)" alone."""
    import ood_bench.plugins as plugins_module

    plugins = plugins_module.get_plugins()
    monkeypatch.setattr(plugins, "algorithms", {k: v for k, v in plugins.algorithms.items() if k != "grpo"})
    monkeypatch.setitem(
        plugins.info,
        "grpo",
        plugins_module.PluginInfo(
            name="grpo",
            module="ood_bench_algorithms.grpo",
            error="plugin 'grpo' failed to import: ModuleNotFoundError: No module named 'ood_bench_algorithms'",
        ),
    )
    assert main(["posttrain", "--algo", "grpo", "--base", "missing.ckpt"]) == 2
    err = capsys.readouterr().err
    assert "unknown algorithm 'grpo'" in err and "plugin 'grpo' failed to load, as warned above" in err
    assert err.count("\n") == 1


def test_evaluate_never_replaces_a_folder_that_is_not_an_evaluation(tiny_run, tmp_path, capsys, monkeypatch):
    """An evaluation replaces its output folder whole; a folder of other files was once deleted with it."""
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    ck = str(tiny_run / "base.ckpt")
    assert main(["evaluate", "--checkpoint", ck, "--out", str(precious), "--no-progress"]) == 2
    assert "holds other files and no eval.json" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "years of work"
    monkeypatch.chdir(tmp_path)
    for out in (".", "/"):
        assert main(["evaluate", "--checkpoint", ck, "--out", out, "--no-progress"]) == 2
        assert "would replace this directory or the root" in capsys.readouterr().err


def test_a_base_too_short_for_a_split_is_refused_before_training_or_sampling(tmp_path, capsys):
    out = tmp_path / "short"
    overrides = [o for o in TINY_OVERRIDES if not o.startswith(("model.block_size", "eval.splits"))]
    assert (
        main(["pretrain", "--no-progress", f"out_dir={out}", *overrides, "model.block_size=100", "eval.splits=[id]"])
        == 0
    )  # ID fits in 100 tokens; ood_depth (up to 151) does not
    ck = str(out / "base.ckpt")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", ck, "--splits", "ood_depth", "--no-progress"]) == 2
    assert "the checkpoint's model.block_size=100: too small: string ood_depth" in capsys.readouterr().err
    assert (
        main(
            [
                "posttrain",
                "--algo",
                "grpo",
                "--base",
                ck,
                "--rl-split",
                "ood_depth",
                "--out",
                str(tmp_path / "p"),
                "--no-progress",
                "budget.grad_steps=1",
            ]
        )
        == 2
    )
    assert "for --rl-split ood_depth" in capsys.readouterr().err
    assert not (tmp_path / "p" / "checkpoints").exists()


def test_a_config_section_of_the_wrong_type_is_not_dropped(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("model: [1, 2]\n")
    assert main(["pretrain", "--print-config", "--config", str(tmp_path / "bad.yaml"), "model.n_layer=2"]) == 2
    assert "config key 'model' is [1, 2], not a section" in capsys.readouterr().err


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    """torch reports a full disk during a save as a RuntimeError; the run stops with one line."""
    import ood_bench.storage.checkpoints as checkpoints

    def full(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 88192 vs 88080")

    monkeypatch.setattr(checkpoints.torch, "save", full)
    assert main(["pretrain", "--no-progress", f"out_dir={tmp_path / 'r'}", *TINY_OVERRIDES]) == 1
    err = capsys.readouterr().err
    assert "could not write checkpoint" in err and err.count("\n") == 1


def test_post_training_on_a_family_the_base_never_saw_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    assert (
        main(
            [
                "pretrain",
                "--no-progress",
                f"out_dir={out}",
                *TINY_OVERRIDES,
                "mixture.families={string: 1.0}",
                "eval.families=[string]",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "posttrain",
                "--algo",
                "grpo",
                "--base",
                str(out / "base.ckpt"),
                "--out",
                str(tmp_path / "p"),
                "--no-progress",
                "families=[graph]",
            ]
        )
        == 2
    )
    assert "pretrained on string only, not on 'graph'" in capsys.readouterr().err


def test_sigterm_during_an_evaluation_is_one_line_and_exit_143(tiny_run, tmp_path):
    import signal
    import time

    out = tmp_path / "ev"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ood_bench.cli",
            "evaluate",
            "--checkpoint",
            str(tiny_run / "base.ckpt"),
            "--n",
            "64",
            "--n-test",
            "200",
            "--out",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not list(tmp_path.glob(".ev.partial-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)  # the evaluation is under way once its partial folder exists
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-800:]
    assert err.strip() == "ood-bench: interrupted by SIGTERM; run the same command again to resume"
    assert not out.exists()  # nothing half-written in place


def test_a_sigterm_whose_exception_python_drops_still_stops_the_command():
    """A SIGTERM handled while a weakref callback runs raises inside it, and Python drops that exception
    ("Exception ignored in ..."): in CI the evaluation above then ran on to exit 0. The signal comes again."""
    script = textwrap.dedent(
        """
        import os, signal, sys, time, weakref
        from ood_bench.cli import Terminated, _sigterm_like_ctrl_c
        _sigterm_like_ctrl_c()
        class Thing:
            pass
        def callback(_):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(200_000):  # the handler runs in here, and what it raises is dropped
                pass
        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing
        try:
            time.sleep(20)
        except Terminated:
            sys.exit(143)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 143 and not run.stderr, run.stderr[-800:]


def _published(tiny_run, folder):
    """The tiny base published as a suite publishes its bases: ``<suite>/bases/<base>.safetensors``."""
    from ood_bench.storage.run_records import save_weights

    weights = folder / "tiny" / "bases" / "base-e0-s0.safetensors"
    save_weights(tiny_run / "base.ckpt", weights)
    return weights


def test_published_weights_evaluate_like_their_checkpoint(tiny_run, tmp_path, monkeypatch):
    weights = _published(tiny_run, tmp_path)
    args = ["--splits", "id", "--n", "3", "--n-test", "4", "--no-progress"]
    assert main(["evaluate", "--checkpoint", str(tiny_run / "base.ckpt"), "--out", str(tmp_path / "ckpt"), *args]) == 0
    monkeypatch.chdir(tmp_path)  # the default folder of published weights is the suite's work folder of the base
    assert main(["evaluate", "--checkpoint", str(weights), *args]) == 0
    out = tmp_path / "runs" / "tiny" / "base-e0-s0" / "eval"
    for name in ("string__id.jsonl", "graph__id.jsonl"):
        assert (out / "samples" / name).read_text() == (tmp_path / "ckpt" / "samples" / name).read_text()
    a, b = (json.loads((f / "eval.json").read_text()) for f in (out, tmp_path / "ckpt"))
    assert a["checkpoint_sha256"] == b["checkpoint_sha256"] is not None
    assert not (weights.parent / "eval").exists()  # nothing written into the committed folder


def test_published_weights_that_do_not_match_their_sha256_or_are_cut_short_are_one_line(tiny_run, tmp_path, capsys):
    weights = _published(tiny_run, tmp_path)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of the last tensor flipped: the file still reads, its weights changed
    weights.write_bytes(bytes(data))
    cut = weights.with_name("cut.safetensors")
    cut.write_bytes(bytes(data[:1000]))
    for path, message in ((weights, "do not match their sha256"), (cut, "are unreadable")):
        for argv in (
            ["evaluate", "--checkpoint", str(path), "--out", str(tmp_path / "ev")],
            ["posttrain", "--algo", "sft", "--base", str(path), "--out", str(tmp_path / "po")],
        ):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert message in err and err.count("\n") == 1, err
            assert not (tmp_path / "ev").exists() and not (tmp_path / "po").exists()  # refused before any work


def test_posttraining_starts_from_published_weights(tiny_run, tmp_path, capsys):
    import yaml

    weights = _published(tiny_run, tmp_path)
    assert main(["posttrain", "--print-config", "--algo", "sft", "--base", str(weights)]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["out_dir"] == "runs/tiny/base-e0-s0/posttrain/sft-id-s0"
    post = [
        "--algo",
        "sft",
        "--no-progress",
        "prompts_per_step=2",
        "budget.grad_steps=1",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
    ]
    assert main(["posttrain", "--base", str(weights), "--out", str(tmp_path / "a"), *post]) == 0
    assert main(["posttrain", "--base", str(tiny_run / "base.ckpt"), "--out", str(tmp_path / "b"), *post]) == 0
    a, b = (torch.load(tmp_path / d / "posttrained.ckpt", weights_only=False) for d in ("a", "b"))
    assert a["hyper_parameters"]["base_sha256"] == b["hyper_parameters"]["base_sha256"] is not None
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])
