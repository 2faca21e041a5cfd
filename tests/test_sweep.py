"""`ood-bench sweep`: a grid of post-training runs from one base, measured the way boards judge runs."""

import pandas as pd
import pytest

from ood_bench.cli import main

from .conftest import TINY_OVERRIDES

POINT = [
    "prompts_per_step=2",
    "budget.grad_steps=4",
    "ckpt_every=2",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    assert main(["pretrain", "--no-progress", f"out_dir={out}", *TINY_OVERRIDES]) == 0
    return out / "base.ckpt"


def test_a_sweep_runs_every_point_once_and_tables_what_it_measured(tiny_base, tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", "--algo", "sft", "--base", str(tiny_base), "--out", str(out), "--no-progress"]
    argv += ["--grid", "algo.lr=1e-12,3e-3", *POINT]
    assert main(argv) == 0
    table = pd.read_csv(out / "sweep.csv")
    assert list(table["point"]) == ["lr1e-12", "lr3e-3"] and set(table["grad_steps"]) == {4}
    assert (table["objective"] == "loss").all()  # SFT is judged by its gold NLL
    frozen, moving = table.iloc[0], table.iloc[1]
    assert abs(moving["change"]) > abs(frozen["change"])  # lr 3e-3 moves the NLL; 1e-12 does not
    readme = (out / "README.md").read_text()
    assert "| lr1e-12 |" in readme and "curves.png" in readme and (out / "curves.png").stat().st_size > 1000
    assert "sweep: 2 points" in capsys.readouterr().out
    # run again: both points are finished, so nothing trains and the table is the same
    stamp = (out / "runs" / "lr3e-3" / "posttrained.ckpt").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "runs" / "lr3e-3" / "posttrained.ckpt").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "sweep.csv").drop(columns="wall_s_this_session"), table.drop(columns="wall_s_this_session")
    )


@pytest.mark.parametrize(
    "grid,message",
    [
        ("algo.lr", "invalid --grid 'algo.lr'"),
        ("algo.lr=1e-4,x", "sweep point lrx: invalid config value algo.lr='x'"),
        ("algo.nope=1", "unknown config key 'algo.nope'"),
        ("budget.stop=soon", "budget.stop='soon'"),
    ],
)
def test_a_bad_grid_is_one_line_and_exit_2_before_any_run(grid, message, tiny_base, tmp_path, capsys):
    argv = ["sweep", "--algo", "grpo", "--base", str(tiny_base), "--out", str(tmp_path / "sw"), "--grid", grid]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "sw").exists()


def test_the_positive_control_needs_a_rise_its_interval_above_zero_and_a_heldout_gain():
    from ood_bench.suite.sweep import positive_control

    def table(first, change, held):
        return pd.DataFrame({"first_tenth": first, "change": change, "heldout_change": held})

    ok = positive_control(table([0.70, 0.72, 0.68], [0.12, 0.10, 0.14], [0.05, 0.03, 0.04]))
    assert ok["passed"] and ok["needed"] == pytest.approx(0.10) and ok["low"] > 0
    # near the top the bar is a third of the distance to 1: 0.02 here
    assert positive_control(table([0.94, 0.94, 0.94], [0.03, 0.025, 0.035], [0.01] * 3))["passed"]
    assert not positive_control(table([0.7] * 3, [0.05, 0.06, 0.04], [0.02] * 3))["passed"]  # too small a rise
    assert not positive_control(table([0.7] * 3, [0.3, -0.1, 0.15], [0.02] * 3))["passed"]  # interval spans 0
    assert not positive_control(table([0.7] * 3, [0.12, 0.10, 0.14], [-0.01] * 3))["passed"]  # held-out fell
    assert not positive_control(table([0.7], [0.2], [0.1]))["passed"]  # one base: no interval over seeds


def test_the_committed_sweep_tables_match_their_csv_and_an_edit_is_caught(tmp_path, capsys):
    import shutil
    from pathlib import Path

    committed = Path(__file__).resolve().parent.parent / "leaderboards" / "sweeps"
    assert main(["leaderboard", str(committed), "--check"]) == 0
    shutil.copytree(committed, tmp_path / "sweeps")
    readme = tmp_path / "sweeps" / "grpo" / "README.md"
    readme.write_text(readme.read_text().replace("| 0.633 |", "| 0.733 |", 1))
    assert main(["leaderboard", str(tmp_path / "sweeps"), "--check"]) == 2
    assert "grpo/README.md" in capsys.readouterr().err
