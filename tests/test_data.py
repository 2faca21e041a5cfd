"""The pretraining stream: mixture shares, exposure, determinism, and test disjointness."""

from collections import Counter

import pytest

from ood_bench.config import MixtureConfig
from ood_bench.data import TEST_SEED, Mixture, collate, encode_problem, reserved_uids, held_out_problems
from ood_bench.errors import ConfigError
from ood_bench.tasks.base import AXES


def test_stream_is_deterministic():
    a, b = Mixture(MixtureConfig(), 3), Mixture(MixtureConfig(), 3)
    assert [a.problem(i) for i in range(50)] == [b.problem(i) for i in range(50)]
    assert [a.problem(i) for i in range(50)] != [Mixture(MixtureConfig(), 4).problem(i) for i in range(50)]


def test_shares_and_exposure_are_respected():
    spec = MixtureConfig(families={"string": 0.75, "graph": 0.25},
                         exposure={"depth": 0.1, "length": 0.0, "repr": 0.05, "comp": 0.0})
    m = Mixture(spec, 0)
    draws = [m.problem(i) for i in range(4000)]
    fam = Counter(p.family for p in draws)
    split = Counter(p.split for p in draws)
    assert abs(fam["string"] / 4000 - 0.75) < 0.03
    assert abs(split["ood_depth"] / 4000 - 0.10) < 0.02
    assert abs(split["ood_repr"] / 4000 - 0.05) < 0.015
    assert split["ood_length"] == split["ood_comp"] == 0


def test_exposure_zero_never_draws_ood():
    m = Mixture(MixtureConfig(), 0)
    assert {m.problem(i).split for i in range(3000)} == {"id"}


@pytest.mark.parametrize("axis", AXES)
def test_test_problems_never_enter_the_pretraining_stream(tasks, axis):
    exposure = {a: 0.0 for a in AXES}
    exposure[axis] = 0.5
    m = Mixture(MixtureConfig(exposure=exposure), 0)
    reserved = set().union(*(reserved_uids(f) for f in tasks))
    stream = {m.problem(i).uid for i in range(3000)}
    assert not (stream & reserved)


def test_the_filter_is_doing_real_work(tasks):
    # Without the filter, a plain ID stream does collide with the reserved test set:
    # short ID problems are few enough to be drawn twice.
    fam = tasks.get("string")
    raw = {fam.generate("id", 0, i).uid for i in range(20000)}
    assert raw & reserved_uids(fam), "expected raw collisions; the disjointness test would be vacuous"


def test_test_sets_are_distinct_and_stable(tasks):
    for fam in tasks:
        for split in fam.splits:
            probs = held_out_problems(fam, split, 100)
            assert len({p.uid for p in probs}) == 100
            assert all(p.seed == TEST_SEED for p in probs)
            assert probs[:10] == held_out_problems(fam, split, 10)


def test_reserved_seed_is_refused():
    with pytest.raises(ConfigError, match="reserved"):
        Mixture(MixtureConfig(), TEST_SEED)


def test_collate_masks_prompt_and_padding(tasks):
    p = tasks.get("string").generate("id", 0, 0)
    q = tasks.get("graph").generate("id", 0, 0)
    ex = [encode_problem(p, 256), encode_problem(q, 256)]
    batch = collate(ex)
    x, y = batch["x"], batch["y"]
    assert x.shape == y.shape
    row = 0
    kept = y[row][y[row] != -100].tolist()
    assert kept == ex[row].ids[ex[row].prompt_len:]  # exactly the completion and <eos>
    full = collate(ex, loss_on_prompt=True)["y"]
    assert (full[row] != -100).sum() == len(ex[row].ids) - 1
