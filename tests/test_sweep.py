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
