"""Suites, the runner and the suite leaderboard: the grid, its keys, shards, skipping, resuming, Ray, --with,
and the published tables and plots (golden, and --check)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ood_bench.cli import main
from ood_bench.suite.suite import RESULTS_VERSION, expand, load_suite, shard

from .conftest import TINY_SUITE

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "data" / "golden_suite_README.md"


def run_tiny(work: Path, publish: Path, *extra: str) -> int:
    return main(
        ["run", str(TINY_SUITE), "--work-root", str(work), "--publish-root", str(publish), "--no-progress", *extra]
    )


@pytest.fixture(scope="session")
def tiny_board(tmp_path_factory):
    """The tiny suite run once with the local launcher: (work root, publish root)."""
    root = tmp_path_factory.mktemp("tiny")
    assert run_tiny(root / "runs", root / "lb", "--profile", str(root / "profile.md")) == 0
    return root / "runs", root / "lb"


def per_problem_hashes(publish: Path) -> dict:
    """Every record's per-problem files by sha256, from the manifests (which `load_counts` verifies)."""
    out = {}
    for rec in sorted((publish / "tiny" / "records").glob("*/record.json")):
        for sub in ("eval", "null"):
            path = rec.parent / sub / "eval.json"
            if path.is_file():
                out[f"{rec.parent.name}/{sub}"] = {
                    k: v["sha256"] for k, v in json.loads(path.read_text())["files"].items()
                }
    return out


# `pytest -n 2` runs these on one worker: one of them edits the committed quick README for a moment, the
# others read it
ON_THE_QUICK_README_WORKER = pytest.mark.xdist_group("committed-quick-readme")


def shard_one_hashes(publish: Path) -> dict:
    """``per_problem_hashes`` of the runs in the tiny suite's shard 1/2: its first base and the runs from it."""
    runs = {s.name for s in shard(expand(load_suite(str(TINY_SUITE))), 1, 2)}
    assert len(runs) == 5
    return {k: v for k, v in per_problem_hashes(publish).items() if k.split("/")[0] in runs}


# ----------------------------------------------------------------------------- the suites and their grid


@pytest.mark.parametrize("name", ["quick", "standard", "paper"])
def test_every_embedded_suite_resolves_and_validates(name):
    suite = load_suite(name)
    specs = expand(suite)
    kinds = [s.kind for s in specs]
    assert kinds == sorted(kinds)  # bases first: "base" < "post"
    names = [s.name for s in specs]
    assert len(set(names)) == len(names) and len({s.key for s in specs}) == len(specs)
    bases = {s.name for s in specs if s.kind == "base"}
    assert all(s.base in bases for s in specs if s.kind == "post")
    assert suite.description and suite.left_out


def test_the_quick_suite_covers_exposure_zero_and_above_grpo_and_its_control_on_id_and_ood():
    suite = load_suite("quick")
    levels = [sum(e.values()) for e in suite.bases.exposures.values()]
    assert 0 in levels and any(v > 0 for v in levels)
    assert {r.algorithm for r in suite.posttrain.rows} >= {"grpo", "sft"}
    assert "id" in suite.posttrain.splits and any(s.startswith("ood_") for s in suite.posttrain.splits)


def test_the_standard_suite_has_every_axis_three_exposures_and_five_seeds_where_a_verdict_rests():
    suite = load_suite("standard")
    specs = expand(suite)
    assert len(suite.bases.exposures) >= 3 and "e0" in suite.bases.exposures
    trained = {s.split for s in specs if s.kind == "post"}
    assert trained == {"id", "ood_depth", "ood_length", "ood_repr", "ood_comp"}
    # the cells a verdict rests on have five seeds: the null (the bases of the level the rows train from),
    # GRPO on ID and each OOD axis, SFT on each OOD axis; three elsewhere
    seeds = lambda **kw: {s.seed for s in specs if all(getattr(s, k) == v for k, v in kw.items())}  # noqa: E731
    level = suite.positive_control.exposures[0]
    assert {s.exposure for s in specs if s.kind == "post"} == {level}
    assert len(seeds(kind="base", exposure=level)) >= 5
    assert all(len(seeds(kind="base", exposure=e)) >= 3 for e in suite.bases.exposures)
    for split in trained:
        assert len(seeds(row="grpo", split=split)) >= 5
    for split in trained - {"id"}:
        assert len(seeds(row="sft", split=split)) >= 5 and len(seeds(row="grpo_trace", split=split)) >= 3
    assert suite.positive_control.row == "grpo" and suite.positive_control.split in trained


def test_the_standard_suite_plans_at_most_eight_hours_at_the_rates_measured_for_it():
    """The budget in the suite file's header, at the step times measured on this machine (a 2,000-step base:
    907 s and two evaluations of ~30 s; a GRPO step of 32 prompts: 5.0 s; an evaluation: ~25 s): the grid
    it names fits 8 hours, one run after another."""
    from ood_bench.suite import estimates

    rates = {"pretrain_step": 907 / 2000, "post_step": 5.0, "sft_step": 0.3, "eval_sample": 0.0031, "overhead": 6.0}
    specs = expand(load_suite("standard"))
    total = estimates.plan_seconds([(s, "todo") for s in specs], rates)
    assert total <= 8 * 3600, estimates.clock(total)


BAD_SUITES = {
    "an unknown algorithm": ("posttrain:\n  rows:\n    - {name: x, algorithm: nosuch}\n", "nosuch"),
    "an unknown split": ("posttrain:\n  splits: [id, ood_nowhere]\n", "ood_nowhere"),
    "an unknown key": ("bases:\n  exposure: {e0: {}}\n", "exposure"),
    "an unknown knob": ("posttrain:\n  rows:\n    - {name: g, algorithm: grpo, algo: {betta: 1}}\n", "betta"),
    "an exposure above 1": ("bases:\n  exposures: {e0: {}, big: {depth: 1.5}}\n", "depth"),
    "two rows of one name": (
        "posttrain:\n  rows:\n    - {name: g, algorithm: grpo}\n    - {name: g, algorithm: sft}\n",
        "two rows share",
    ),
    "a seed given twice": ("bases:\n  seeds: [0, 0]\n", "seed is given twice"),
    "a control on a split its row does not train on": (
        "positive_control: {row: grpo, split: ood_length}\n",
        "positive_control.split='ood_length': row grpo trains on id, ood_depth only",
    ),
    "a control on a row the suite lacks": ("positive_control: {row: ppo}\n", "positive_control.row='ppo': no such row"),
    "a control on an exposure no base has": (
        "positive_control: {exposures: [e9]}\n",
        "positive_control.exposures='e9': not an exposure level",
    ),
    "a row on a seed no base has": (
        "posttrain:\n  rows:\n    - {name: g, algorithm: grpo, seeds: [7]}\n",
        "posttrain.rows.g.seeds=7: not a seed of the bases",
    ),
    "a row on an exposure level no base has": (
        "posttrain:\n  rows:\n    - {name: g, algorithm: grpo, exposures: [e9]}\n",
        "posttrain.rows.g.exposures='e9': not an exposure level of the bases",
    ),
    "seeds for an exposure level the bases lack": (
        "bases:\n  exposure_seeds: {e9: [0]}\n",
        "bases.exposure_seeds.e9=[0]: no such exposure level",
    ),
    "a level's seed outside bases.seeds": (
        "bases:\n  seeds: [0, 1]\n  exposure_seeds: {e0: [0, 5]}\n",
        "bases.exposure_seeds.e0=5: not one of bases.seeds",
    ),
    "a level with no seeds": ("bases:\n  exposure_seeds: {e0: []}\n", "a non-empty list of pretraining seeds"),
}


def test_a_level_with_fewer_seeds_and_a_row_on_one_level_make_only_those_runs_and_keep_every_key(tmp_path):
    """bases.exposure_seeds gives a level fewer pretraining seeds and a row's exposures limit it to some levels;
    neither changes the key of any run both grids share."""
    every = tmp_path / "every.yaml"
    levels = "  seeds: [0, 1, 2]\n"  # the tiny suite's levels: e0 and e5
    rows = "    - {name: g, algorithm: grpo}\n    - {name: s, algorithm: sft}\n"
    every.write_text(f"extends: {TINY_SUITE}\nname: cut\nbases:\n{levels}posttrain:\n  rows:\n{rows}")
    cut = tmp_path / "cut.yaml"
    cut.write_text(
        every.read_text()
        .replace("  seeds: [0, 1, 2]\n", "  seeds: [0, 1, 2]\n  exposure_seeds: {e0: [0]}\n")
        .replace("{name: s, algorithm: sft}", "{name: s, algorithm: sft, exposures: [e5]}")
    )
    specs = expand(load_suite(str(cut)))
    bases = {(s.exposure, s.seed) for s in specs if s.kind == "base"}
    assert bases == {("e0", 0), ("e5", 0), ("e5", 1), ("e5", 2)}
    sft = {(s.exposure, s.seed) for s in specs if s.row == "s"}
    assert sft == {("e5", 0), ("e5", 1), ("e5", 2)}
    grpo = {(s.exposure, s.seed) for s in specs if s.row == "g"}
    assert grpo == bases
    keys = {s.name: s.key for s in expand(load_suite(str(every)))}
    assert all(keys[s.name] == s.key for s in specs)


def test_a_row_with_seeds_post_trains_only_those_seeds_bases_and_the_others_keep_their_keys(tmp_path):
    path = tmp_path / "seeds.yaml"
    rows = "    - {name: g, algorithm: grpo}\n    - {name: s, algorithm: sft, seeds: [1]}\n"
    path.write_text(f"extends: {TINY_SUITE}\nname: seeds\nbases:\n  seeds: [0, 1]\nposttrain:\n  rows:\n{rows}")
    specs = expand(load_suite(str(path)))
    posts = {(s.row, s.seed) for s in specs if s.kind == "post"}
    assert {("g", 0), ("g", 1), ("s", 1)} <= posts and ("s", 0) not in posts
    every = tmp_path / "every.yaml"
    every.write_text(path.read_text().replace(", seeds: [1]", ""))
    keys = {s.name: s.key for s in expand(load_suite(str(every)))}
    assert all(keys[s.name] == s.key for s in specs)


@pytest.mark.parametrize("case", list(BAD_SUITES))
def test_a_bad_suite_is_one_line_exit_2_and_runs_nothing(case, tmp_path, capsys):
    text, words = BAD_SUITES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: {TINY_SUITE}\nname: bad\n{text}")
    assert main(["run", str(path), "--work-root", str(tmp_path / "w"), "--publish-root", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ood-bench: error:") and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "w").exists() and not (tmp_path / "p").exists()


def test_a_suite_that_extends_itself_is_one_line(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text(f"extends: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"extends: {tmp_path / 'a.yaml'}\n")
    assert main(["run", str(tmp_path / "a.yaml"), "--dry-run"]) == 2
    assert "extends itself" in capsys.readouterr().err


def test_keys_change_with_what_decides_the_numbers_and_nothing_else(monkeypatch):
    import ood_bench.suite.suite as suite_mod

    keys = {s.name: s.key for s in expand(load_suite(str(TINY_SUITE)))}
    # a GRPO knob re-keys the GRPO runs only
    knob = {
        s.name: s.key
        for s in expand(
            load_suite(
                str(TINY_SUITE),
                [
                    "posttrain.rows="
                    + json.dumps(
                        [
                            {"name": "sft", "algorithm": "sft"},
                            {
                                "name": "grpo",
                                "algorithm": "grpo",
                                "algo": {"group_size": 2, "max_new_tokens": 24, "beta": 0.1},
                            },
                        ]
                    )
                ],
            )
        )
    }
    changed = {n for n in keys if keys[n] != knob[n]}
    assert changed == {n for n in keys if n.startswith("grpo-")}
    # an exposure level re-keys its base and the runs that start from it
    exp = {s.name: s.key for s in expand(load_suite(str(TINY_SUITE), ["bases.exposures.e5.depth=0.06"]))}
    assert {n for n in keys if keys[n] != exp[n]} == {n for n in keys if n.endswith("-e5-s0")}
    # devices and where runs are written are not part of a key
    same = {
        s.name: s.key
        for s in expand(
            load_suite(
                str(TINY_SUITE), ["bases.overrides.trainer.devices=auto", "bases.overrides.trainer.precision=32"]
            )
        )
    }
    assert same == keys
    # a numeric precision other than fp32 does decide the numbers: the bases and every run on them
    bf16 = {
        s.name: s.key for s in expand(load_suite(str(TINY_SUITE), ["bases.overrides.trainer.precision=bf16-mixed"]))
    }
    assert all(bf16[n] != keys[n] for n in keys)
    rows = [
        {"name": "sft", "algorithm": "sft"},
        {"name": "grpo", "algorithm": "grpo", "overrides": {"trainer": {"precision": "bf16-mixed"}}},
    ]
    post = {s.name: s.key for s in expand(load_suite(str(TINY_SUITE), ["posttrain.rows=" + json.dumps(rows)]))}
    assert {n for n in keys if keys[n] != post[n]} == {n for n in keys if n.startswith("grpo-")}
    # a declared change of results re-keys everything
    monkeypatch.setattr(suite_mod, "RESULTS_VERSION", suite_mod.RESULTS_VERSION + 1)
    bumped = {s.name: s.key for s in expand(load_suite(str(TINY_SUITE)))}
    assert all(bumped[n] != keys[n] for n in keys)


@pytest.mark.parametrize("name", [str(TINY_SUITE), "standard", "paper"])
def test_shards_partition_the_grid_and_keep_each_run_with_its_base(name):
    specs = expand(load_suite(name))
    for count in range(1, 6):
        parts = [shard(specs, i, count) for i in range(1, count + 1)]
        seen = [s.name for part in parts for s in part]
        assert sorted(seen) == sorted(s.name for s in specs)  # every run in exactly one shard
        for part in parts:
            names = {s.name for s in part}
            assert all(s.base in names for s in part if s.kind == "post")


@pytest.mark.parametrize("text", ["0/2", "3/2", "x", "1/0", "1-2"])
def test_a_bad_shard_is_one_line(text, capsys):
    assert main(["run", str(TINY_SUITE), "--shard", text, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--shard" in err and err.count("\n") == 1


def test_dry_run_prints_the_grid_what_is_skipped_and_an_estimate(tiny_board, capsys):
    work, publish = tiny_board
    assert main(["run", str(TINY_SUITE), "--work-root", str(work), "--publish-root", str(publish), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "10 runs: 0 to do, 10 to skip (10 done here" in out and "estimated wall time" in out
    assert main(["run", "standard", "--work-root", str(work), "--publish-root", str(publish), "--dry-run"]) == 0
    out = capsys.readouterr().out
    n = len(expand(load_suite("standard")))
    assert f"{n} runs: {n} to do" in out


# ----------------------------------------------------------------------------- running


def test_a_finished_suite_trains_and_evaluates_nothing_when_run_again(tiny_board, monkeypatch, capsys):
    import ood_bench.suite.eval_run
    import ood_bench.training.posttrain
    import ood_bench.training.pretrain

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was started again")

    for module, name in (
        (ood_bench.training.pretrain, "pretrain"),
        (ood_bench.training.posttrain, "posttrain"),
        (ood_bench.suite.eval_run, "evaluate_checkpoint"),
    ):
        monkeypatch.setattr(module, name, refuse)
    assert run_tiny(*tiny_board) == 0
    assert "10 runs, 0 to do, 10 skipped" in capsys.readouterr().out


def test_a_run_named_in_reuse_runs_comes_from_its_committed_record_and_the_rest_reproduce(
    tiny_board, tmp_path, monkeypatch, capsys
):
    """The quick suite's reuse_runs: the named base is neither pretrained nor evaluated again, its runs start
    from its committed weights and give the same records, and the other base is pretrained again."""
    import ood_bench.training.pretrain

    lb = tmp_path / "lb"
    shutil.copytree(tiny_board[1], lb)
    pretrained = []
    real = ood_bench.training.pretrain.pretrain
    monkeypatch.setattr(
        ood_bench.training.pretrain, "pretrain", lambda cfg, **kw: pretrained.append(cfg.out_dir) or real(cfg, **kw)
    )
    assert run_tiny(tmp_path / "runs", lb, "reuse_runs=[base-e0-s0]") == 0
    out = capsys.readouterr().out
    assert "10 runs, 9 to do, 1 skipped" in out
    assert "reused from the committed records (the suite's reuse_runs): base-e0-s0" in out
    assert [Path(p).name for p in pretrained] == ["base-e5-s0"]
    assert not (tmp_path / "runs" / "tiny" / "base-e0-s0" / "eval").exists()
    assert per_problem_hashes(lb) == per_problem_hashes(tiny_board[1])


def test_a_reused_run_that_is_not_in_the_grid_is_one_line_and_exit_2(capsys):
    assert main(["run", str(TINY_SUITE), "reuse_runs=[base-e9-s0]", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reuse_runs='base-e9-s0'" in err and "not a run of this suite" in err


def test_a_record_holds_what_a_reader_needs_and_no_sample_texts(tiny_board):
    from ood_bench.evaluation.support import load_counts
    from ood_bench.storage.checkpoints import CHECKSUM_KEY, read_checkpoint
    from ood_bench.storage.run_records import restore_checkpoint

    work, publish = tiny_board
    records = publish / "tiny" / "records"
    post = json.loads((records / "grpo-ood_depth-e5-s0" / "record.json").read_text())
    for key in (
        "key",
        "identity",
        "config",
        "seed",
        "sampling_seeds",
        "task_versions",
        "git_commit",
        "git_dirty",
        "packages",
        "plugin",
        "plugin_api",
        "counters",
        "timings",
        "metrics",
        "results_version",
    ):
        assert key in post, key
    assert post["plugin"]["name"] == "grpo" and post["counters"]["grad_steps"] == 2 and post["base"] == "base-e5-s0"
    header = (
        (records / "grpo-ood_depth-e5-s0" / "eval" / "samples" / "string__ood_depth.csv").read_text().splitlines()[0]
    )
    assert "gold_logprob" in header and "prompt" not in header and "sample" not in header.split(",")
    assert len(load_counts(records / "grpo-ood_depth-e5-s0" / "eval")) == 2 * 2 * 4  # families x splits x n_test
    assert (records / "grpo-ood_depth-e5-s0" / "curves.csv").read_text().startswith("step,reward")
    # the published weights rebuild the base checkpoint exactly
    restored = work.parent / "restored.ckpt"
    restore_checkpoint(publish / "tiny" / "bases" / "base-e5-s0.safetensors", restored)
    assert (
        read_checkpoint(restored)[CHECKSUM_KEY]
        == read_checkpoint(work / "tiny" / "base-e5-s0" / "base.ckpt")[CHECKSUM_KEY]
    )


def test_each_record_says_where_its_time_went_and_profile_adds_the_runs_up(tiny_board):
    work, publish = tiny_board
    records = publish / "tiny" / "records"
    base = json.loads((records / "base-e5-s0" / "record.json").read_text())["timings"]
    grpo = json.loads((records / "grpo-ood_depth-e5-s0" / "record.json").read_text())["timings"]
    step = {"pretrain.forward", "pretrain.backward", "pretrain.optimizer", "pretrain.data"}
    evaluation = {"eval", "eval.sampling", "eval.scoring", "eval.support"}
    assert step | evaluation | {"records", "io"} <= set(base["phases"])
    assert {"posttrain.rollouts", "posttrain.rewards", "posttrain.update"} | evaluation <= set(grpo["phases"])
    assert not step & set(grpo["phases"])  # a post-training step times its own parts
    for t in (base, grpo):
        # each phase is charged its own time only: the run's phases add up to its training and evaluation
        # and the publishing after them, never to more
        timed = sum(v for k, v in t["phases"].items() if k.split(".")[0] in ("pretrain", "posttrain", "eval"))
        assert 0.8 * (t["train"] + t["eval"]) <= timed <= t["train"] + t["eval"] + 0.05
    table = (publish.parent / "profile.md").read_text()
    assert table.startswith("# Where `ood-bench run") and "| `eval.sampling` |" in table and "| board |" in table
    shares = [float(line.split("|")[3].strip().rstrip("%")) for line in table.splitlines() if line.startswith("| `")]
    # the phases and "other" make the whole wall time: each share shown is within 0.05 points of its own
    assert abs(sum(shares) - 100) <= 0.05 * len(shares) + 1e-6, shares


def test_each_record_keeps_a_few_sample_texts_marked_as_its_counts_say(tiny_board):
    from ood_bench.evaluation.examples import EXAMPLES, PER_SPLIT, read_examples
    from ood_bench.evaluation.support import load_counts

    work, publish = tiny_board
    records = publish / "tiny" / "records"
    uids = {}
    for name in ("base-e5-s0", "grpo-ood_depth-e5-s0"):
        kept = read_examples(records / name / EXAMPLES)
        counts = load_counts(records / name / "eval").set_index(["family", "split", "uid"])
        assert len(kept) == PER_SPLIT * counts.reset_index()[["family", "split"]].drop_duplicates().shape[0]
        for e in kept:
            c = counts.loc[(e["family"], e["split"], e["uid"])]
            assert e["prompt"] and e["gold"]
            # the first sample's verdict agrees with the problem's counts where they decide it
            if c["c"] in (0, c["n"]):
                assert e["answer_ok"] == (c["c"] == c["n"]), (name, e)
            if c["trace_c"] in (0, c["n"]):
                assert e["trace_ok"] == (c["trace_c"] == c["n"]), (name, e)
        uids[name] = [(e["family"], e["split"], e["uid"]) for e in kept]
    assert uids["base-e5-s0"] == uids["grpo-ood_depth-e5-s0"]  # the same problems for every run
    page = (publish / "tiny" / "index.html").read_text()
    assert 'id="board-examples"' in page and json.dumps(kept[0]["sample"])[1:-1] in page


@pytest.mark.parametrize("name", ["profile.txt", "a-file/profile.md"])
def test_a_bad_profile_file_is_one_line_and_exit_2_before_anything_runs(tmp_path, capsys, name):
    (tmp_path / "a-file").write_text("in the way\n")
    args = [
        "--work-root",
        str(tmp_path / "w"),
        "--publish-root",
        str(tmp_path / "p"),
        "--profile",
        str(tmp_path / name),
    ]
    assert main(["run", str(TINY_SUITE), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "profile" in err[0]
    assert not (tmp_path / "w").exists() and not (tmp_path / "p").exists()


def test_a_killed_suite_resumes_and_finishes_with_the_same_records(tiny_board, tmp_path):
    argv = [
        sys.executable,
        "-m",
        "ood_bench.cli",
        "run",
        str(TINY_SUITE),
        "--work-root",
        str(tmp_path / "runs"),
        "--publish-root",
        str(tmp_path / "lb"),
        "--no-progress",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "lb" / "tiny" / "records" / "base-e5-s0" / "record.json"
    deadline = time.time() + 120
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list((tmp_path / "lb" / "tiny" / "records").glob("*/record.json")))
    assert finished < 10, "the suite finished before it could be killed"
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{10 - finished} to do" in done.stdout
    assert per_problem_hashes(tmp_path / "lb") == per_problem_hashes(tiny_board[1])


def test_a_run_trained_by_an_earlier_invocation_counts_that_training_in_its_wall_time(tmp_path):
    """Killed after its training finished but before its record was published, a run is evaluated again
    and its training skipped: its record and the leaderboard's wall column must still count that training.
    (Its own suite, not a copy of ``tiny_board``: a post run's work folder names its base by path.)"""
    work, lb = tmp_path / "runs", tmp_path / "lb"
    assert run_tiny(work, lb) == 0
    name = "sft-id-e0-s0"
    shutil.rmtree(lb / "tiny" / "records" / name)  # trained and evaluated, never published
    trained = json.loads((work / "tiny" / name / "posttrain_record.json").read_text())["train_seconds"]
    assert run_tiny(work, lb) == 0
    timings = json.loads((lb / "tiny" / "records" / name / "record.json").read_text())["timings"]
    assert timings["train_earlier"] == trained > 0
    board = json.loads((lb / "tiny" / "leaderboard.json").read_text())
    walls = [
        r["wall_s"]
        for r in board["headline"]
        if r["row"] == "sft" and r["exposure"] == "e0" and r["trained_on"] == "id"
    ]
    assert walls and all(w == pytest.approx(timings["train"] + trained + timings["eval"], abs=0.02) for w in walls)
    # its checkpoints gone too, the run trains again here, over the stale record: nothing of it is earlier
    (work / "tiny" / name / "posttrained.ckpt").unlink()
    shutil.rmtree(work / "tiny" / name / "checkpoints")
    shutil.rmtree(lb / "tiny" / "records" / name)
    assert run_tiny(work, lb) == 0
    timings = json.loads((lb / "tiny" / "records" / name / "record.json").read_text())["timings"]
    assert timings["train_earlier"] == 0.0


def test_a_run_counts_as_done_only_once_its_own_record_is_published(tiny_board, tmp_path):
    """A run killed after it wrote its record in its work folder but before it published it must run again,
    even where an older record of the same key is published (the committed quick records, say)."""
    from ood_bench.suite import places

    work, lb = tmp_path / "runs", tmp_path / "lb"
    shutil.copytree(tiny_board[0], work)
    shutil.copytree(tiny_board[1], lb)
    suite = load_suite(str(TINY_SUITE))
    where = places.Places(work / "tiny", lb / "tiny")
    spec = next(s for s in expand(suite) if s.name == "sft-id-e0-s0")
    assert places.status(spec, where, reuse_published=False) == "done"
    published = lb / "tiny" / "records" / spec.name / "record.json"
    older = json.loads(published.read_text())
    older["created"] = "2000-01-01T00:00:00+00:00"  # the same key, published by an earlier run
    published.write_text(json.dumps(older))
    assert places.status(spec, where, reuse_published=False) == "todo"
    assert places.status(spec, where, reuse_published=True) == "published"


def test_the_ray_launcher_gives_the_same_records_as_the_local_one(tiny_board, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ood-bench[ray]')")
    try:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # a machine where Ray cannot start its local cluster (no shared memory, ...)
        pytest.skip(f"Ray cannot start a local instance here: {type(exc).__name__}: {exc}")
    try:
        # one shard (a base and its four runs): what the launcher does, at half the cost of the whole suite
        assert run_tiny(tmp_path / "runs", tmp_path / "lb", "--launcher", "ray", "--shard", "1/2") == 0
    finally:
        ray.shutdown()
    assert per_problem_hashes(tmp_path / "lb") == shard_one_hashes(tiny_board[1])
    # the same keys, so the local launcher sees the Ray records as done
    local = json.loads((tiny_board[1] / "tiny" / "records" / "sft-id-e0-s0" / "record.json").read_text())
    remote = json.loads((tmp_path / "lb" / "tiny" / "records" / "sft-id-e0-s0" / "record.json").read_text())

    def numbers(record):  # the summary metrics, less how long each split took
        return [{k: v for k, v in row.items() if k != "seconds"} for row in record["metrics"]]

    assert local["key"] == remote["key"] and numbers(local) == numbers(remote)


def test_with_adds_a_third_party_row_against_the_published_bases(tiny_board, tmp_path):
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
    publish = tmp_path / "lb"
    shutil.copytree(tiny_board[1], publish)  # a fresh clone: the published records and base weights, no runs/
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ood_bench.cli",
            "run",
            str(TINY_SUITE),
            "--with",
            "reinforce",
            "algo.max_new_tokens=24",
            "--work-root",
            str(tmp_path / "runs"),
            "--publish-root",
            str(publish),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "6 runs, 4 to do, 2 skipped" in run.stdout  # two shared bases, four new runs
    records = publish / "tiny" / "records"
    new = sorted(p.parent.name for p in records.glob("reinforce*/record.json"))
    assert len(new) == 4, new
    assert not list((tmp_path / "runs").rglob("pretrain_record.json"))  # no base was pretrained again
    board = (publish / "tiny" / "README.md").read_text()
    assert all(f"| {row}" in board for row in ("grpo |", "sft |", "reinforce_"))


def test_a_suite_that_extends_another_reuses_its_published_bases_and_runs(tiny_board, tmp_path, monkeypatch, capsys):
    """``extends: tiny`` with tiny's base recipe: tiny's published bases (weights, evaluations) and runs are
    this suite's too, so it pretrains nothing and estimates no time for them; only its own row runs."""
    import ood_bench.training.pretrain

    publish = tmp_path / "lb"
    shutil.copytree(tiny_board[1] / "tiny", publish / "tiny")  # a fresh clone: the parent's published folder
    child = tmp_path / "child.yaml"
    child.write_text(
        f"extends: {TINY_SUITE}\nposttrain:\n  add_rows:\n"
        "    - {name: rloo, algorithm: rloo, splits: [id], algo: {group_size: 2, max_new_tokens: 24}}\n"
    )
    assert load_suite(str(child)).parents == ["tiny"]
    args = ["run", str(child), "--work-root", str(tmp_path / "runs"), "--publish-root", str(publish)]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    plan = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.startswith(("base-", "sft-"))}
    assert plan and set(plan.values()) == {"parent"}, out  # every base and every run tiny published
    assert "12 runs: 2 to do, 10 to skip" in out and "10 published by the suite it extends" in out
    from ood_bench.suite import estimates, places

    suite = load_suite(str(child))
    rloo = [s for s in expand(suite) if s.row == "rloo"]
    estimate = sum(
        estimates.estimate_seconds(s, estimates.measured_rates(places.places(suite, tmp_path, publish))) for s in rloo
    )
    assert f"estimated wall time on this machine {estimates.clock(estimate)}" in out  # the two rloo runs alone

    def refuse(*a, **k):
        raise AssertionError("a base the parent published was pretrained again")

    monkeypatch.setattr(ood_bench.training.pretrain, "pretrain", refuse)
    assert main([*args, "--no-progress"]) == 0
    assert "12 runs, 2 to do, 10 skipped" in capsys.readouterr().out
    mine, theirs = publish / "child", publish / "tiny"
    for base in ("base-e0-s0", "base-e5-s0"):
        assert (mine / "bases" / f"{base}.safetensors").read_bytes() == (
            theirs / "bases" / f"{base}.safetensors"
        ).read_bytes()
        record = json.loads((mine / "records" / base / "record.json").read_text())
        assert record["suite"] == "child" and record["adopted_from"] == "tiny"
        for sub in ("eval", "null"):  # its evaluations are the parent's
            assert (mine / "records" / base / sub / "eval.json").read_bytes() == (
                theirs / "records" / base / sub / "eval.json"
            ).read_bytes()
    assert sorted(p.parent.name for p in (mine / "records").glob("rloo-*/record.json")) == [
        "rloo-id-e0-s0",
        "rloo-id-e5-s0",
    ]
    board = (mine / "README.md").read_text()
    assert all(f"| {row} |" in board for row in ("grpo", "sft", "rloo"))
    assert main(["leaderboard", str(mine), "--check", "--allow-dirty"]) == 0

    # another base recipe gives other keys: those bases are this suite's to pretrain
    changed = tmp_path / "changed.yaml"
    changed.write_text(f"extends: {TINY_SUITE}\nbases:\n  overrides:\n    train: {{max_steps: 5}}\n")
    assert (
        main(["run", str(changed), "--work-root", str(tmp_path / "runs"), "--publish-root", str(publish), "--dry-run"])
        == 0
    )
    out = capsys.readouterr().out
    assert "10 runs: 10 to do" in out


@pytest.mark.parametrize("native", [True, False])
def test_a_suite_that_extends_quick_reuses_its_bases_whatever_auto_gives_on_this_cpu(
    native, tmp_path, monkeypatch, capsys
):
    """A suite extending quick reuses quick's published runs on any kind of CPU (quick names 32-true, so no
    CPU's auto moves its keys), and --dry-run estimates no pretraining."""
    import ood_bench.training.precision as precision

    if not (ROOT / "leaderboards" / "quick" / "records").is_dir():
        pytest.skip("no published quick records in this checkout")
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(
        precision,
        "cpu_info",
        lambda: {"capability": "AVX512" if native else "AVX2", "bf16_native": native, "model": "x"},
    )
    child = tmp_path / "mine.yaml"
    child.write_text("extends: quick\nposttrain:\n  add_rows:\n    - {name: rloo, algorithm: rloo}\n")
    args = ["run", str(child), "--work-root", str(tmp_path), "--publish-root", str(ROOT / "leaderboards")]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    statuses = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.startswith(("base-", "grpo-"))}
    assert statuses and set(statuses.values()) == {"parent"}, out
    assert "14 runs: 4 to do, 10 to skip" in out


# ----------------------------------------------------------------------------- the leaderboard


def write_record(root: Path, name: str, kind: str, problems: dict, null: dict | None = None, **fields) -> None:
    """A run record as the runner writes it, from per-(family, split) lists of per-problem rows."""
    import pandas as pd

    from ood_bench.storage.eval_records import manifest

    folder = root / "records" / name
    for sub, rows in (("eval", problems), ("null", null)):
        if rows is None:
            continue
        (folder / sub / "samples").mkdir(parents=True)
        for stem, lines in rows.items():
            (folder / sub / "samples" / f"{stem}.csv").write_text(pd.DataFrame(lines).to_csv(index=False))
        (folder / sub / "eval.json").write_text(
            json.dumps({"kind": "evaluate", "seed": 0, "results": [], "files": manifest(folder / sub)})
        )
    record = {
        "kind": kind,
        "name": name,
        "key": hashlib.sha256(name.encode()).hexdigest()[:16],
        "suite": "golden",
        "git_commit": "0" * 40,
        "git_dirty": False,
        "counters": {},
        "timings": {},
        **fields,
    }
    (folder / "record.json").write_text(json.dumps(record))


def golden_records(root: Path, lifts: dict | None = None, reward_rise: float = 0.2) -> None:
    """Two exposure levels x three pretraining seeds; GRPO (a pure +1.5-nat tilt) and SFT (which also lifts
    problems from outside the support) on ID and on ood_depth; every number drawn from a fixed seed.
    ``lifts``: each row's extra log-odds on the outside problems of the split it trains on (default GRPO 0,
    SFT 12). GRPO's training reward (its ``curves.csv``) rises from 0.5 by ``reward_rise`` over 20 steps,
    with noise: the board's positive control."""
    lifts = {"grpo": 0.0, "sft": 12.0, **(lifts or {})}
    rng = np.random.default_rng(7)
    splits = ["id", "ood_depth"]

    def rows(logprobs: dict, seed: int) -> dict:
        draw = np.random.default_rng(seed)
        out = {}
        for split, lp in logprobs.items():
            q = np.exp(lp)
            trace = draw.binomial(8, q)
            out[f"string__{split}"] = [
                {
                    "family": "string",
                    "version": 2,
                    "split": split,
                    "uid": f"{split}{i:03d}",
                    "n": 8,
                    "c": int(t),
                    "trace_c": int(t),
                    "full_c": int(t),
                    "gold_logprob": float(v),
                }
                for i, (t, v) in enumerate(zip(trace, lp))
            ]
        return out

    for exposure, frac in (("e0", 0.0), ("e5", 0.05)):
        for seed in (0, 1, 2):
            base_lp = {"id": -rng.exponential(0.5, 40), "ood_depth": -rng.exponential(25 - 300 * frac, 40)}
            base = f"base-{exposure}-s{seed}"
            config = {"mixture": {"exposure": {"depth": frac, "length": frac, "repr": frac, "comp": frac}}}
            write_record(
                root,
                base,
                "base",
                rows(base_lp, 10 * seed + 1),
                rows(base_lp, 10 * seed + 2),
                exposure=exposure,
                seed=seed,
                config=config,
                base="",
                row="",
                split="",
            )
            for row, lift in lifts.items():
                for trained in splits:
                    post_lp = {}
                    for split in splits:
                        logit = base_lp[split] - np.log1p(-np.exp(np.minimum(base_lp[split], -1e-9)))
                        # the lift reaches the problems outside the base's support (Q < 1e-6) alone: new support,
                        # where a reweighting would have moved every problem alike
                        outside = base_lp[split] < np.log(1e-6)
                        shifted = logit + 1.5 + (lift * outside if split == trained else 0.0)
                        post_lp[split] = -np.log1p(np.exp(-shifted))
                    name = f"{row}-{trained}-{exposure}-s{seed}"
                    write_record(
                        root,
                        name,
                        "post",
                        rows(post_lp, 10 * seed + 3),
                        exposure=exposure,
                        seed=seed,
                        base=base,
                        row=row,
                        split=trained,
                        algorithm=row,
                        config={},
                        counters={"rollouts": 1280 if row == "grpo" else 0, "train_tokens": 5000, "grad_steps": 10},
                        timings={"train": 30.0, "eval": 6.0},
                    )
                    if row == "grpo":
                        steps = np.arange(20)
                        reward = 0.5 + reward_rise * steps / 19 + np.random.default_rng(100 + seed).normal(0, 0.03, 20)
                        curve = "step,reward\n" + "".join(f"{a},{b:.4f}\n" for a, b in zip(steps, reward))
                        (root / "records" / name / "curves.csv").write_text(curve)


def test_the_leaderboard_of_fixed_records_matches_its_golden_file(tmp_path):
    from ood_bench.board import suite_board

    golden_records(tmp_path)
    texts, _ = suite_board.render(tmp_path)
    if os.environ.get("OOD_BENCH_WRITE_GOLDEN"):  # regenerate after a deliberate change, then review the diff
        GOLDEN.write_text(texts["README.md"])
    assert texts["README.md"] == GOLDEN.read_text()
    head = json.loads(texts["leaderboard.json"])["headline"]
    sft_depth = [r for r in head if r["row"] == "sft" and r["trained_on"] == "ood_depth" and r["split"] == "ood_depth"]
    assert all(r["expanded"] > 0 and r["expansion"] > 0 for r in sft_depth)  # the control expands
    grpo = [r for r in head if r["row"] == "grpo" and r["outside"]]
    assert all(r["expanded"] == 0 and r["expansion_hi"] > 0 for r in grpo)  # a pure tilt never does; the bound shows
    assert all(r["interval"].startswith(("seeds, problems and samples", "sampling noise")) for r in head)
    # every headline row carries its q-value and minimum detectable effect, under fixed keys
    assert all({"q", "mde", "d_trace_p", "d_trace_se"} <= set(r) for r in head)
    assert all(r["mde"] is not None and r["mde"] > 0 for r in head)
    assert all((r["q"] is None) == (r["d_trace_p"] is None) for r in head)


@pytest.mark.parametrize(
    "lifts, verdict",
    [
        ({"sft": 0.0}, "inconclusive"),  # no effect anywhere: the detector shows no power, so nothing to say
        ({}, "supported"),  # the control leaves the support, GRPO (a pure tilt) does not
        ({"grpo": 12.0}, "contradicted"),  # planted: GRPO lifts outside problems beyond its tilt
    ],
)
def test_a_planted_effect_flips_the_generated_verdict(tmp_path, lifts, verdict):
    from ood_bench.board import suite_board

    golden_records(tmp_path, lifts)
    found = json.loads(suite_board.render(tmp_path)[0]["leaderboard.json"])["verdicts"]
    first = found[0]
    assert first["claim"].startswith("GRPO is a conservative reweighting") and first["verdict"] == verdict
    assert first["rule"] and first["numbers"]


def test_the_control_is_the_row_split_and_exposures_the_suite_file_names(tmp_path, monkeypatch):
    from ood_bench.board import suite_board

    golden_records(tmp_path)
    control = {"row": "grpo", "split": "ood_depth", "exposures": ["e5"]}
    monkeypatch.setattr("ood_bench.suite.suite.read_suite_file", lambda name: {"positive_control": control})
    texts = suite_board.render(tmp_path)[0]
    board = json.loads(texts["leaderboard.json"])
    assert [(c["exposure"], c["status"]) for c in board["positive_control"]] == [("e5", "passed")]
    assert "(`positive_control`: row `grpo`, split `ood_depth`)" in texts["README.md"]


def test_a_board_whose_positive_control_fails_says_so_first_and_publishes_no_verdict(tmp_path):
    from ood_bench.board import suite_board

    golden_records(tmp_path)  # GRPO's reward rises by 0.2 at every seed: the control passes
    texts = suite_board.render(tmp_path)[0]
    board = json.loads(texts["leaderboard.json"])
    assert {c["status"] for c in board["positive_control"]} == {"passed"} and board["verdicts"]
    readme = texts["README.md"]
    assert readme.index("## Positive control") < readme.index("<!-- verdicts:") < readme.index("## Change in")

    flat = tmp_path / "flat"
    golden_records(flat, reward_rise=0.0)  # the same board where GRPO's training reward never rose
    texts, extra = suite_board.render(flat)
    board = json.loads(texts["leaderboard.json"])
    assert {c["status"] for c in board["positive_control"]} == {"failed"} and board["verdicts"] == []
    assert "**No verdicts on the `golden` board:** the RL positive control failed" in texts["README.md"]
    assert "Verdicts on the `golden` board" not in texts["README.md"]
    # the page says why its verdict list is empty, as the README does
    page = suite_board._page(extra, {n: b"" for n in suite_board.PLOTS})
    verdict_list = page[page.index('<ul class="verdicts">') : page.index("</ul>", page.index('<ul class="verdicts">'))]
    assert (
        "<strong>No verdicts on the <code>golden</code> board:</strong> the RL positive control failed" in verdict_list
    )
    # and, before the verdicts, the control's own section: its rule, its status and its table per exposure level
    control = page[page.index("<h2>Positive control") : page.index("<h2>Verdicts")]
    assert "<strong>Failed</strong>" in control and '<table class="control">' in control
    assert '<th scope="col">reward at start</th>' in control and control.count("<tr>") == 1 + len(
        board["positive_control"]
    )


def test_check_catches_a_stale_table_and_a_stale_plot(tmp_path, capsys):
    from ood_bench.board import suite_board

    golden_records(tmp_path)
    suite_board.write(tmp_path)
    assert main(["leaderboard", str(tmp_path), "--check"]) == 0
    capsys.readouterr()
    readme = tmp_path / "README.md"
    good = readme.read_bytes()
    readme.write_text(good.decode().replace("+0.", "+0.9", 1))
    assert main(["leaderboard", str(tmp_path), "--check"]) == 2
    assert "README.md" in capsys.readouterr().err
    readme.write_bytes(good)
    plot = tmp_path / "gain_vs_exposure.png"
    shutil.copy(tmp_path / "pass_at_k.png", plot)  # a plot of other data
    assert main(["leaderboard", str(tmp_path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "gain_vs_exposure.png" in err and err.count("\n") == 1
    page = tmp_path / "index.html"
    good_page = page.read_text()
    page.write_text(good_page.replace("<td>grpo</td>", "<td>grpo-edited</td>", 1))
    assert main(["leaderboard", str(tmp_path), "--check"]) == 2
    assert "index.html" in capsys.readouterr().err
    page.write_text(good_page)
    # a record changed after publishing makes everything drawn from it stale
    suite_board.write(tmp_path)
    rec = tmp_path / "records" / "grpo-id-e0-s1" / "record.json"
    data = json.loads(rec.read_text())
    data["counters"]["rollouts"] = 999
    rec.write_text(json.dumps(data))
    assert main(["leaderboard", str(tmp_path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "run records changed after the leaderboard was made: grpo-id-e0-s1" in err and err.count("\n") == 1


def test_records_from_a_modified_checkout_are_refused_unless_allowed(tmp_path, capsys):
    golden_records(tmp_path)
    rec = tmp_path / "records" / "sft-id-e5-s0" / "record.json"
    rec.write_text(rec.read_text().replace('"git_dirty": false', '"git_dirty": true'))
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "modified checkout" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path), "--allow-dirty"]) == 0
    assert "uncommitted code changes" in (tmp_path / "README.md").read_text()


def test_index_html_is_one_self_contained_sortable_page(tiny_board, tmp_path):
    from html.parser import HTMLParser

    from ood_bench.board import suite_board

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_board[1] / "tiny", folder)
    suite_board.write(folder, allow_dirty=True)
    page = (folder / "index.html").read_text()

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.refs, self.tables = [], 0

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.tables += tag == "table" and "sortable" in (attrs.get("class") or "")
            self.refs += [v for k, v in attrs.items() if k in ("src", "href") and v]

    parsed = Collect()
    parsed.feed(page)
    assert parsed.tables == 2
    assert len(parsed.refs) == 4 and all(r.startswith("data:image/png;base64,") for r in parsed.refs)
    import base64

    assert all(base64.b64decode(r.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n" for r in parsed.refs)
    from .browser import chromium_page

    with chromium_page() as (page_, errors):
        page_.goto((folder / "index.html").as_uri())
        shot = page_.screenshot(full_page=True)
    assert not errors, errors
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000


def test_a_record_whose_key_the_suite_no_longer_gives_is_refused_not_mixed_in(tiny_board, capsys):
    from ood_bench.board import suite_board
    from ood_bench.errors import OodBenchError

    grid = {s.name: s.key for s in expand(load_suite(str(TINY_SUITE), ["posttrain.budget.grad_steps=3"]))}
    with pytest.raises(OodBenchError, match="is stale"):
        suite_board.Records(tiny_board[1] / "tiny", allow_dirty=True, expected=grid)
    # the same change makes the runner see those runs as to do
    assert run_tiny(*tiny_board, "posttrain.budget.grad_steps=3", "--dry-run") == 0
    assert "10 runs: 8 to do, 2 to skip" in capsys.readouterr().out


def test_a_board_whose_every_record_predates_the_code_stands_for_them_and_says_so(tiny_board, tmp_path):
    """A changed family version (or results version) moves every key: the board renders the records as they
    are, opening with a line that says they are superseded and how to renew them, rather than refusing."""
    import shutil

    from ood_bench.board import suite_board

    board = tmp_path / "tiny"
    shutil.copytree(tiny_board[1] / "tiny", board)
    grid = {s.name: s.key for s in expand(load_suite(str(TINY_SUITE)))}
    assert suite_board.Records(board, allow_dirty=True, expected=grid).superseded is None
    moved = {name: "0" * 16 for name in grid}  # what a family version bump does to every key
    rec = suite_board.Records(board, allow_dirty=True, expected=moved)
    assert rec.superseded["records"] == len(grid) and rec.superseded["results_versions"] == [RESULTS_VERSION]
    texts, extra = suite_board.render(board, allow_dirty=True, expected=moved)
    first = next(p for p in texts["README.md"].split("\n\n") if p.startswith("**Superseded"))
    assert first.startswith("**Superseded records.**") and "`ood-bench run tiny` renews them" in first
    assert texts["README.md"].index(first) < texts["README.md"].index("## ")  # before every table
    assert "Superseded records." in suite_board.headline_text(board, expected=moved)
    page = suite_board._page(extra, {n: b"" for n in suite_board.PLOTS})
    assert '<p class="superseded" role="note"><strong>Superseded records.</strong>' in page


def test_a_superseded_board_says_its_suite_text_is_the_files_now_and_not_its_records():
    """The description and the left-out line come from the suite file, which may have changed since the
    records were made (standard's grid was cut after version 1 ran): on a superseded board they say so."""
    from types import SimpleNamespace

    from ood_bench.board.readme import suite_text

    now = suite_text(SimpleNamespace(suite="standard", superseded=None))
    assert now["description"] == load_suite("standard").description
    old = suite_text(SimpleNamespace(suite="standard", superseded={"records": 3}))
    for key in ("description", "left_out"):
        assert old[key].startswith("(the suite file now, not these records: ") and old[key] != now[key]


def test_a_post_record_from_another_base_is_refused(tmp_path):
    from ood_bench.board import suite_board
    from ood_bench.errors import OodBenchError

    golden_records(tmp_path)
    rec = tmp_path / "records" / "grpo-id-e0-s1" / "record.json"
    data = json.loads(rec.read_text())
    data["identity"] = {"base_key": "0" * 16}
    rec.write_text(json.dumps(data))
    with pytest.raises(OodBenchError, match="another 'base-e0-s1'"):
        suite_board.Records(tmp_path)


def test_with_refuses_suite_overrides_and_a_taken_row_name(capsys):
    assert main(["run", str(TINY_SUITE), "--with", "grpo", "--dry-run"]) == 2
    assert "already has a row named 'grpo'" in capsys.readouterr().err
    assert (
        main(["run", str(TINY_SUITE), "--with", "grpo", "algo.beta=0.1", "posttrain.budget.grad_steps=5", "--dry-run"])
        == 2
    )
    err = capsys.readouterr().err
    assert "only algo.KEY=VALUE" in err and err.count("\n") == 1
    assert main(["run", str(TINY_SUITE), "--with", "grpo", "algo.beta=0.1", "--dry-run"]) == 0
    assert "grpo_" in capsys.readouterr().out


def test_a_suite_file_names_itself_and_finds_its_parent_beside_it(tmp_path):
    shutil.copy(TINY_SUITE, tmp_path / "parent.yaml")
    (tmp_path / "child.yaml").write_text(
        "extends: parent.yaml\nposttrain:\n  add_rows:\n"
        "    - {name: rloo, algorithm: rloo, algo: {group_size: 2, max_new_tokens: 24}}\n"
    )
    suite = load_suite(str(tmp_path / "child.yaml"))
    assert suite.name == "child"  # not the parent's "tiny": its records go to a folder of their own
    assert [r.name for r in suite.posttrain.rows] == ["sft", "grpo", "rloo"]


@ON_THE_QUICK_README_WORKER
def test_results_in_leaderboards_do_not_make_the_checkout_dirty(tmp_path):
    from ood_bench.training.provenance import code_version

    if subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip():
        pytest.skip("the checkout has uncommitted changes already")
    board = ROOT / "leaderboards" / "quick" / "README.md"
    text = board.read_bytes()
    try:
        board.write_bytes(text + b"\n")
        assert not code_version().endswith("-dirty")
    finally:
        board.write_bytes(text)


@ON_THE_QUICK_README_WORKER
@pytest.mark.parametrize("suite", ["quick", "standard"])
def test_the_published_leaderboards_match_their_committed_records(suite, capsys):
    """Every committed board is what its records render to. Records that predate the installed families (a
    family version changed and the suite has not run since) still check: the board says it is superseded."""
    if not (ROOT / "leaderboards" / suite / "records").is_dir():
        pytest.skip(f"no published {suite} records in this checkout")
    cwd = os.getcwd()
    os.chdir(ROOT)  # suite names resolve under ./leaderboards
    try:
        assert main(["leaderboard", suite, "--check"]) == 0, capsys.readouterr().err
    finally:
        os.chdir(cwd)


def test_the_slurm_launcher_gives_the_same_records_as_the_local_one(tiny_board, tmp_path, monkeypatch):
    """submitit's local cluster runs each job as a process of this machine, the way Slurm would run it on a
    node: bases as one wave, then their runs; the records equal the local launcher's."""
    submitit = pytest.importorskip("submitit", reason="submitit is not installed (pip install 'ood-bench[slurm]')")
    monkeypatch.setenv("OOD_BENCH_SUBMITIT_CLUSTER", "local")
    asked = []
    real = submitit.AutoExecutor.update_parameters
    monkeypatch.setattr(
        submitit.AutoExecutor, "update_parameters", lambda self, **kw: asked.append(kw) or real(self, **kw)
    )
    assert run_tiny(tmp_path / "runs", tmp_path / "lb", "--launcher", "slurm", "--shard", "1/2") == 0
    assert per_problem_hashes(tmp_path / "lb") == shard_one_hashes(tiny_board[1])
    assert list((tmp_path / "runs" / "tiny" / "slurm").iterdir())  # each job's logs
    # every job asks for a time limit its run fits in: submitit's own default (2 minutes on its local cluster,
    # 5 on Slurm) killed runs that took longer, such as these on a busy machine
    limits = [kw["timeout_min"] for kw in asked if "timeout_min" in kw]
    assert len(limits) == 5 and min(limits) >= 30, asked


def test_a_slurm_jobs_time_limit_is_three_times_its_estimate_and_at_least_half_an_hour():
    from ood_bench.suite.launchers import job_minutes

    assert job_minutes(5) == 30 and job_minutes(3600) == 180 and job_minutes(7.1 * 60) == 30


def test_the_slurm_launcher_says_in_one_line_what_it_cannot_do(tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'ood-bench[slurm]')")
    monkeypatch.setenv("OOD_BENCH_SUBMITIT_CLUSTER", "local")
    assert (
        run_tiny(tmp_path / "runs", tmp_path / "lb", "--launcher", "slurm", "resources.slurm.no_such_parameter=1") == 2
    )
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "warning: this checkout" not in ln]
    assert len(errors) == 1 and "no_such_parameter" in errors[0] and "resources.slurm" in errors[0], errors
    assert not (tmp_path / "lb" / "tiny" / "records").exists() or not any(
        (tmp_path / "lb" / "tiny" / "records").iterdir()
    )


def test_the_board_counts_a_trace_right_only_when_its_answer_is_right_too():
    """ "Trace pass@1" on the boards is documented as every step *and* the answer right (``full_c``), the
    sampled estimate of the exact trace mass. A sample whose steps match the gold ones but whose answer is
    wrong or missing (``trace_c`` counts it) must not count: on graph ``ood_depth`` that alone put the base's
    trace pass@1 at 0.143 against a trace mass of 0.041."""
    import pandas as pd

    from ood_bench.board import suite_board
    from ood_bench.evaluation.support import Thresholds

    def counts(trace_c, full_c):
        return pd.DataFrame(
            {
                "family": "graph",
                "version": 4,
                "split": "ood_depth",
                "uid": ["a", "b"],
                "n": 4,
                "c": full_c,
                "trace_c": trace_c,
                "full_c": full_c,
                "gold_logprob": [-1.0, -2.0],
            }
        )

    base = counts([4, 2], [0, 0])  # every step right, no answer right
    post = counts([4, 2], [4, 2])  # the same steps, now with their answers
    paired = suite_board._paired(base, post, "ood_depth")
    assert list(paired["d_trace"]) == [1.0, 0.5]
    cell = suite_board._cell([("run", paired, None)], Thresholds())
    assert cell["trace_base"] == 0.0 and cell["trace_post"] == 0.75


def test_a_readme_quoting_the_verdict_block_is_renewed_by_the_board_and_checked_for_drift(tmp_path, capsys):
    from ood_bench.board import suite_board, verdicts

    board = tmp_path / "leaderboards" / "golden"
    golden_records(board)
    project = tmp_path / "README.md"
    project.write_text(
        "# A project\n\nIntro.\n\n<!-- verdicts:golden:start -->\nold words\n<!-- verdicts:golden:end -->\n"
        "\nMore text.\n"
    )
    suite_board.write(board)
    quoted = verdicts.block_in(project.read_text(), "golden")
    assert quoted == verdicts.block_in((board / "README.md").read_text(), "golden")
    assert project.read_text().startswith("# A project\n\nIntro.\n\n") and project.read_text().endswith("More text.\n")
    assert main(["leaderboard", str(board), "--check"]) == 0
    capsys.readouterr()
    # a hand edit that makes a verdict read stronger than its rule gave is drift
    project.write_text(project.read_text().replace(": supported.**", ": supported beyond doubt.**", 1))
    assert main(["leaderboard", str(board), "--check"]) == 2
    assert "README.md" in capsys.readouterr().err


def test_the_board_reports_its_false_positive_rate_on_real_nulls_from_calibration_data(tmp_path):
    from ood_bench.board import suite_board
    from ood_bench.errors import OodBenchError
    from ood_bench.storage.eval_records import manifest

    golden_records(tmp_path)
    for base in ("base-e0-s0", "base-e0-s1", "base-e0-s2", "base-e5-s0", "base-e5-s1", "base-e5-s2"):
        for seed, source in ((2, "null"), (3, "eval")):
            shutil.copytree(tmp_path / "records" / base / source, tmp_path / "calibration" / base / f"s{seed}")
    cal = suite_board.calibration(suite_board.Records(tmp_path))
    assert set(cal["seeds"]) == {"0-1", "2-3"} and cal["tested"].sum() >= 4
    assert "null intervals exclude 0" in suite_board.render(tmp_path)[0]["README.md"]
    honest = int(cal["false_positive"].sum())
    # a re-sample that is not one (every count of seed 3 raised) is caught as the false positive it is
    for base in ("base-e0-s0", "base-e0-s1", "base-e0-s2"):
        folder = tmp_path / "calibration" / base / "s3"
        path = folder / "samples" / "string__id.csv"
        rows = pd.read_csv(path)
        rows["full_c"] = np.minimum(rows["full_c"] + 3, rows["n"])
        rows["c"] = rows["trace_c"] = rows["full_c"]
        path.write_text(rows.to_csv(index=False))
        record = json.loads((folder / "eval.json").read_text())
        record["files"] = manifest(folder)
        (folder / "eval.json").write_text(json.dumps(record))
    cal = suite_board.calibration(suite_board.Records(tmp_path))
    assert int(cal["false_positive"].sum()) > honest
    # a base pretrained again (other weights) cannot borrow the nulls of the old one: one line, not a mix
    folder = tmp_path / "calibration" / "base-e0-s0" / "s2"
    record = json.loads((folder / "eval.json").read_text())
    (folder / "eval.json").write_text(json.dumps({**record, "checkpoint_sha256": "0" * 64}))
    with pytest.raises(OodBenchError, match="scored other weights than the record of base 'base-e0-s0'"):
        suite_board.calibration(suite_board.Records(tmp_path))


def test_check_takes_a_fast_path_only_while_inputs_and_published_files_are_unchanged(tmp_path, monkeypatch):
    from ood_bench.board import suite_board

    golden_records(tmp_path)
    suite_board.write(tmp_path)

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    with monkeypatch.context() as m:
        m.setattr(suite_board, "render", no_render)
        assert suite_board.stale(tmp_path) == []  # nothing changed: no rendering needed
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("+0.", "+0.9", 1))  # a published file edited by hand
    assert suite_board.stale(tmp_path) == [readme]
    suite_board.write(tmp_path)
    (tmp_path / "records" / "grpo-id-e0-s1" / "curves.csv").write_text("step,reward\n0,0.1\n1,0.2\n2,0.3\n3,0.4\n")
    with monkeypatch.context() as m:  # an input changed: the fast path must not answer
        m.setattr(suite_board, "render", no_render)
        with pytest.raises(AssertionError, match="rendered again"):
            suite_board.stale(tmp_path)


# ----------------------------------------------------------------------------- calibration data


def test_calibrate_re_samples_each_published_base_as_its_null_does(tiny_board, tmp_path, capsys, monkeypatch):
    import ood_bench.suite.eval_run
    from ood_bench.evaluation.support import load_counts
    from ood_bench.suite.calibrate import evaluate_at, published_bases
    from ood_bench.suite.places import places

    publish = tmp_path / "lb"
    shutil.copytree(tiny_board[1], publish)
    argv = [
        "calibrate",
        str(TINY_SUITE),
        "--work-root",
        str(tmp_path / "runs"),
        "--publish-root",
        str(publish),
        "--no-progress",
        "--cpus",
        "1",
        "--sampling-seeds",
        "3",
        "2",
    ]
    assert main(argv) == 0
    assert "[4/4]" in capsys.readouterr().out
    cal = publish / "tiny" / "calibration"
    assert sorted(p.relative_to(cal).as_posix() for p in cal.glob("*/s*")) == [
        "base-e0-s0/s2",
        "base-e0-s0/s3",
        "base-e5-s0/s2",
        "base-e5-s0/s3",
    ]
    null = load_counts(publish / "tiny" / "records" / "base-e0-s0" / "null")
    for seed in (2, 3):
        counts = load_counts(cal / "base-e0-s0" / f"s{seed}")
        assert list(counts["uid"]) == list(null["uid"])  # the same problems; the exact masses do not depend
        assert np.allclose(counts["gold_logprob"], null["gold_logprob"])  # on the seed, the counts do
        assert json.loads((cal / "base-e0-s0" / f"s{seed}" / "eval.json").read_text())["seed"] == seed
    readme = (cal / "README.md").read_text()
    assert "ood-bench calibrate tiny --sampling-seeds 2 3" in readme and "| base-e5-s0 | 2 3 |" in readme
    assert not (tmp_path / "runs" / "tiny" / "base-e0-s0" / "calibration" / "s2").exists()  # the full copy is gone

    # the same code path as the null: at the null's seed, the very files the record holds
    where = places(load_suite(str(TINY_SUITE)), tmp_path / "runs", publish)
    base = published_bases(load_suite(str(TINY_SUITE)), where)[0]
    folder = evaluate_at(base, 1, load_suite(str(TINY_SUITE)), where, progress=False)
    files = lambda f: json.loads((f / "eval.json").read_text())["files"]  # noqa: E731
    assert files(folder) == files(publish / "tiny" / "records" / base.spec.name / "null")

    # resumable: what is done is skipped, a new seed is added
    def refuse(*a, **k):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(ood_bench.suite.eval_run, "evaluate_checkpoint", refuse)
    assert main(argv) == 0
    assert "4 already done" in capsys.readouterr().out


@pytest.mark.parametrize(
    "seeds, message",
    [
        (["0"], "sampling seed of every record's eval/"),
        (["1"], "null_seed"),
        (["2", "2"], "given twice"),
        (["-3"], "must be >= 0"),
        (["x"], "invalid int value"),
        (["2", "--cpus", "0"], "--cpus=0"),
    ],
)
def test_calibrate_refuses_bad_seeds_with_one_line(seeds, message, capsys):
    try:
        rc = main(["calibrate", str(TINY_SUITE), "--sampling-seeds", *seeds])
    except SystemExit as exc:  # argparse's own errors (not an integer) exit from the parser
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_calibrate_refuses_an_unknown_suite_or_one_without_published_bases(tmp_path, capsys):
    assert main(["calibrate", "nosuch", "--sampling-seeds", "2"]) == 2
    assert "no suite 'nosuch'" in capsys.readouterr().err
    assert main(["calibrate", str(TINY_SUITE), "--sampling-seeds", "2", "--publish-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no published bases" in err and err.count("\n") == 1
    assert not (tmp_path / "tiny").exists()


def test_a_base_without_its_null_evaluation_is_one_line_naming_it(tmp_path, capsys):
    golden_records(tmp_path)
    shutil.rmtree(tmp_path / "records" / "base-e0-s1" / "null")
    assert main(["leaderboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "base 'base-e0-s1' has no null evaluation" in err and err.count("\n") == 1


def test_the_estimate_reads_a_post_training_step_per_32_prompts_whatever_the_records_used(tmp_path):
    """Records made at 16 prompts per step take half as long per step as the same run at 32: the rate read
    from them is per 32 prompts, so a suite at 32 prompts is not estimated at half its time."""
    from types import SimpleNamespace

    from ood_bench.suite import estimates

    records = tmp_path / "records"
    for name, prompts, train in (("grpo-a", 16, 20.0), ("grpo-b", 32, 40.0), ("sft-a", 16, 2.0)):
        (records / name).mkdir(parents=True)
        record = {
            "key": name,
            "kind": "post",
            "algorithm": name.split("-")[0],
            "steps": 10,
            "timings": {"train": train},
            "config": {"prompts_per_step": prompts},
        }
        (records / name / "record.json").write_text(json.dumps(record))
    rates = estimates.measured_rates(SimpleNamespace(records=records, parents=[]))
    assert rates["post_step"] == pytest.approx(4.0)  # 2 s per 16-prompt step and 4 s per 32-prompt step
    assert rates["sft_step"] == pytest.approx(0.4)


def test_the_estimate_reads_this_results_versions_records_first_and_the_evaluation_time_from_records(tmp_path):
    """A version-1 GRPO record stepped at temperature 1.0 (cheaper than version 2's 1.3): once a record of the
    current version exists, its rate is the one used, and the source line says when a rate comes only from
    an earlier version. The seconds per evaluated sample come from the records' evaluation times."""
    from types import SimpleNamespace

    from ood_bench.suite import estimates
    from ood_bench.suite.suite import RESULTS_VERSION

    records = tmp_path / "records"
    ev = {"splits": ["id", "ood_depth"], "families": ["string"], "n_test": 10, "n_samples": 5}  # 100 samples

    def write(name, version, train, evals):
        (records / name).mkdir(parents=True)
        record = {
            "key": name,
            "kind": "post",
            "algorithm": "grpo",
            "steps": 10,
            "results_version": version,
            "timings": {"train": train, "eval": evals},
            "config": {"prompts_per_step": 32},
            "eval_config": ev,
        }
        (records / name / "record.json").write_text(json.dumps(record))

    where = SimpleNamespace(records=records, parents=[])
    write("grpo-old", RESULTS_VERSION - 1, 20.0, 1.0)
    rates = estimates.read_rates(where)
    assert rates.seconds["post_step"] == pytest.approx(2.0) and rates.older == ["post_step", "eval_sample"]
    assert rates.seconds["eval_sample"] == pytest.approx(0.01)
    assert "only from records of an earlier results version" in estimates.rates_source(rates)
    write("grpo-new", RESULTS_VERSION, 50.0, 3.0)
    rates = estimates.read_rates(where)
    assert rates.seconds["post_step"] == pytest.approx(5.0) and rates.older == []
    assert rates.seconds["eval_sample"] == pytest.approx(0.03)
    assert "earlier results version" not in estimates.rates_source(rates)


def test_the_estimate_of_runs_going_together_uses_their_own_thread_count(tmp_path):
    """Two runs at once on one thread each: the plan reads the one-thread records' rates where there are any
    (a one-thread run is slower than a two-thread one) and divides the serial sum by the runs going at once;
    one after another, or on a cluster this machine cannot see, is one at a time."""
    from types import SimpleNamespace

    from ood_bench.suite import estimates

    records = tmp_path / "records"
    for name, threads, train in (("base-a", 2, 100.0), ("base-b", 1, 160.0), ("base-c", None, 100.0)):
        (records / name).mkdir(parents=True)
        record = {"key": name, "kind": "base", "steps": 100, "timings": {"train": train}}
        if threads:
            record["threads"] = threads
        (records / name / "record.json").write_text(json.dumps(record))
    where = SimpleNamespace(records=records, parents=[])
    assert estimates.measured_rates(where)["pretrain_step"] == pytest.approx(1.2)  # every record
    assert estimates.measured_rates(where, threads=1)["pretrain_step"] == pytest.approx(1.6)  # one-thread only
    assert estimates.measured_rates(where, threads=4)["pretrain_step"] == pytest.approx(1.2)  # none: every record
    assert estimates.runs_at_once("ray", cpus=1, cores=2) == 2
    assert estimates.runs_at_once("ray", cpus=2, cores=2) == 1
    assert estimates.runs_at_once("local", cpus=1, cores=2) == 1
    spec = SimpleNamespace(
        kind="base", config={"train": {"max_steps": 100}}, eval={"splits": ["id"], "n_test": 1, "n_samples": 1}
    )
    one = estimates.plan_seconds([(spec, "todo"), (spec, "todo")], estimates.measured_rates(where, 1), 1)
    two = estimates.plan_seconds([(spec, "todo"), (spec, "todo")], estimates.measured_rates(where, 1), 2)
    assert two == pytest.approx(one / 2) and one > 2 * 160


def test_the_pages_verdicts_render_their_markdown_code_as_code():
    """A verdict names rows and splits in backticks (`grpo` on `ood_depth`): the page shows them as code, not as
    literal backticks, with the verdict word coloured."""
    from ood_bench.board import board_page, verdicts

    line = "- **Claim 1 (`grpo` on `ood_depth`): inconclusive.** *rule*: a *stated* rule"
    readme = f"<!-- verdicts:tiny:start (generated) -->\n{line}\n<!-- verdicts:tiny:end -->\n"
    assert verdicts.block_in(readme, "tiny")
    items = board_page._verdict_items(readme, "tiny")
    assert "`" not in items and "<code>grpo</code>" in items and "<code>ood_depth</code>" in items
    assert '<span class="verdict inconclusive">inconclusive</span>' in items and "<em>rule</em>" in items


def test_run_suite_is_the_public_entry_and_names_the_launchers_it_takes(tmp_path):
    """``launchers.run_suite`` runs a planned suite (the CLI calls it); an unknown launcher is one line."""
    from ood_bench.errors import OodBenchError
    from ood_bench.suite import estimates, places
    from ood_bench.suite.launchers import LAUNCHERS, run_suite

    suite = load_suite(str(TINY_SUITE))
    where = places.places(suite, tmp_path / "w", tmp_path / "p")
    grid = expand(suite)
    rows = estimates.plan(grid, where, reuse_published=False)
    assert set(LAUNCHERS) == {"local", "ray", "slurm"}
    with pytest.raises(OodBenchError, match="unknown launcher 'nope' \\(choose from local, ray, slurm\\)"):
        run_suite(suite, where, rows, grid, launcher="nope")
    assert not (tmp_path / "w").exists()


def test_the_in_progress_folder_checks_its_records_and_bases_without_a_board(capsys):
    """leaderboards/in-progress holds a suite being re-run (records and bases, no board): --check reads them and
    writes nothing, rather than treating the folder as one of evaluation folders and calling its tables stale."""
    root = ROOT / "leaderboards" / "in-progress"
    if not any(root.glob("*/records/*/record.json")):
        pytest.skip("no suite is being re-run")
    before = sorted(p.name for p in root.iterdir())
    assert main(["leaderboard", str(root), "--check"]) == 0
    assert "read (no board until a re-run ends)" in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == before
