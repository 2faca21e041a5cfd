"""`ood-bench sweep`: a grid of post-training runs from one base, measured the way boards judge runs."""

import pandas as pd
import pytest

from ood_bench.cli import main
from ood_bench.suite.sweep import parse_grid

POINT = [
    "prompts_per_step=2",
    "budget.grad_steps=4",
    "ckpt_every=2",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


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
    again = pd.read_csv(out / "sweep.csv")
    pd.testing.assert_frame_equal(again.drop(columns="wall_s_this_session"), table.drop(columns="wall_s_this_session"))
    # the compute each point used survives the re-run that skipped it (this session's wall time does not)
    assert (again["train_s"] > 0).all() and list(again["train_s"]) == list(table["train_s"])


def test_a_grid_over_bases_gives_each_point_its_own_base(tiny_base, tmp_path):
    """The positive control's sweep: one point per pretraining seed's base (the --base given for the sweep
    must not be given a second time to each point)."""
    from ood_bench.suite.sweep import SweepSpec, points

    a, b = tmp_path / "base-s0.ckpt", tmp_path / "base-s1.ckpt"
    a.write_bytes(tiny_base.read_bytes())
    b.write_bytes(tiny_base.read_bytes())
    spec = SweepSpec(out=tmp_path / "sw", base=str(a), algorithm="grpo", grid=parse_grid([f"base={a},{b}"]))
    grid = points(spec)
    assert [p.name for p in grid] == ["base-s0", "base-s1"]
    assert [p.config.base for p in grid] == [str(a), str(b)]


def test_each_point_of_a_grid_over_bases_is_compared_with_its_own_base(tiny_base, tmp_path, monkeypatch):
    """heldout_change is the point's model against the base it started from, not against --base: with one
    base per pretraining seed, the sweep's --base is only the first of them."""
    import ood_bench.suite.sweep as sweep

    a, b = tmp_path / "base-s0.ckpt", tmp_path / "base-s1.ckpt"
    a.write_bytes(tiny_base.read_bytes())
    b.write_bytes(tiny_base.read_bytes())
    score = {str(a): 0.2, str(b): 0.6}  # what each base scores; a post-trained model scores 0.5
    monkeypatch.setattr(sweep, "heldout_pass", lambda ckpt, *args: score.get(str(ckpt), 0.5))
    spec = sweep.SweepSpec(
        out=tmp_path / "sw", base=str(a), algorithm="sft", grid=parse_grid([f"base={a},{b}"]), fixed=POINT, heldout=3
    )
    table = sweep.run_sweep(spec, ["sweep"], progress=False)
    assert list(table["heldout_base"]) == [0.2, 0.6]
    assert list(table["heldout_change"].round(6)) == [0.3, -0.1]


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


def test_the_positive_control_needs_a_base_in_the_band_a_rise_its_interval_above_zero_and_a_heldout_gain():
    from ood_bench.suite.sweep import positive_control

    def table(first, change, held):
        n = len(first)
        return pd.DataFrame(
            {
                "first_tenth": first,
                "change": change,
                "change_low": [-1] * n,
                "change_high": [1] * n,
                "heldout_change": held,
            }
        )

    def status(*args):
        return positive_control(table(*args))["status"]

    ok = positive_control(table([0.70, 0.72, 0.68], [0.12, 0.10, 0.14], [0.05, 0.03, 0.04]))
    assert ok["status"] == "passed" and ok["needed"] == pytest.approx(0.10) and ok["low"] > 0
    # near the top of the band the bar is a third of the distance to 1: 0.04 here
    assert status([0.88] * 3, [0.05, 0.045, 0.055], [0.01] * 3) == "passed"
    # a base that starts above 0.9 (or under 0.1) cannot show the control, whatever it does
    saturated = positive_control(table([0.94] * 3, [0.03, 0.025, 0.035], [0.01] * 3))
    assert saturated["status"] == "failed" and "outside [0.1, 0.9]" in saturated["reason"]
    assert status([0.7] * 3, [0.05, 0.06, 0.04], [0.02] * 3) == "failed"  # too small a rise
    assert status([0.7] * 3, [0.3, -0.1, 0.15], [0.02] * 3) == "failed"  # interval spans 0
    assert status([0.7] * 3, [0.12, 0.10, 0.14], [-0.01] * 3) == "failed"  # held-out fell
    assert status([0.7], [0.2], [0.1]) == "one seed"  # no interval over seeds: not judged


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
