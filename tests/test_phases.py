"""The phase clock (ood_bench.phases): each phase is charged its own time only, so phases add up to the time
they cover; boundary-only code (Lightning's hooks) switches between siblings."""

from __future__ import annotations

import pytest

from ood_bench import phases


@pytest.fixture
def clock(monkeypatch):
    """A fresh clock whose time moves only when the test says."""
    now = [100.0]
    monkeypatch.setattr(phases.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(phases, "_seconds", phases.defaultdict(float))
    monkeypatch.setattr(phases, "_stack", [])
    monkeypatch.setattr(phases, "_mark", now[0])

    def tick(s: float) -> None:
        now[0] += s

    return tick


def test_a_nested_phase_is_taken_out_of_its_parent(clock):
    with phases.phase("eval"):
        clock(1.0)
        with phases.phase("eval.sampling"):
            clock(3.0)
        clock(0.5)
    clock(10.0)  # outside every phase: nobody's
    assert phases.seconds() == {"eval": 1.5, "eval.sampling": 3.0}


def test_the_same_phase_opened_twice_adds_up(clock):
    for _ in range(3):
        with phases.phase("io"):
            clock(0.25)
    assert phases.seconds() == {"io": 0.75}


def test_since_gives_what_each_phase_gained_and_leaves_out_the_rest(clock):
    with phases.phase("pretrain"):
        clock(2.0)
    before = phases.seconds()
    with phases.phase("eval"):
        clock(1.0)
    assert phases.since(before) == {"eval": 1.0}


def test_switch_moves_between_siblings_and_the_parent_closes_the_last(clock):
    with phases.phase("pretrain"):
        clock(1.0)  # setup
        for _ in range(2):
            phases.switch("pretrain.forward")
            clock(2.0)
            phases.switch("pretrain.backward")
            clock(3.0)
            phases.switch("pretrain.data")
            clock(0.5)
        # no closing switch: a run stopped by a signal never reaches on_train_end
    assert phases.seconds() == {
        "pretrain": 1.0,
        "pretrain.forward": 4.0,
        "pretrain.backward": 6.0,
        "pretrain.data": 1.0,
    }
    assert phases._stack == []


def test_leaving_a_phase_that_is_not_the_innermost_is_a_bug_that_raises(clock):
    phases.enter("a")
    phases.enter("b")
    with pytest.raises(RuntimeError, match="phase 'a' left while 'b' is open"):
        phases.leave("a")


def test_an_exception_inside_a_phase_still_closes_it(clock):
    with pytest.raises(ValueError):
        with phases.phase("posttrain"):
            clock(1.0)
            raise ValueError
    clock(5.0)
    assert phases.seconds() == {"posttrain": 1.0}


def test_a_profiles_shares_come_from_the_seconds_measured_not_the_seconds_shown():
    """Fifteen phases of 0.149 s: shown as 0.1 s each, yet each is a fifteenth of the wall time."""
    from ood_bench.suite.profile import profile_rows

    totals = {f"plugin.phase{i}": 0.149 for i in range(15)}
    rows = profile_rows(totals, wall=15 * 0.149)
    assert [r["seconds"] for r in rows] == [0.1] * 15
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=0.0005 * 15)
