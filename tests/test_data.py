"""The pretraining stream: mixture shares, exposure, determinism, and test disjointness."""

from collections import Counter

import pytest

from ood_bench.data import (
    TEST_SEED,
    Mixture,
    MixtureConfig,
    collate,
    collate_packed,
    encode_problem,
    held_out_problems,
    reserved_uids,
)
from ood_bench.errors import ConfigError
from ood_bench.tasks.base import AXES


def test_stream_is_deterministic():
    a, b = Mixture(MixtureConfig(), 3), Mixture(MixtureConfig(), 3)
    assert [a.problem(i) for i in range(50)] == [b.problem(i) for i in range(50)]
    assert [a.problem(i) for i in range(50)] != [Mixture(MixtureConfig(), 4).problem(i) for i in range(50)]


def test_shares_and_exposure_are_respected():
    spec = MixtureConfig(
        families={"string": 0.75, "graph": 0.25}, exposure={"depth": 0.1, "length": 0.0, "repr": 0.05, "comp": 0.0}
    )
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
def test_test_problems_never_enter_the_pretraining_stream(families, axis):
    exposure = {a: 0.0 for a in AXES}
    exposure[axis] = 0.5
    m = Mixture(MixtureConfig(exposure=exposure), 0)  # the default mixture: the built-in families
    reserved = set().union(*(reserved_uids(f) for f in families))
    stream = {m.problem(i).uid for i in range(3000)}
    assert not (stream & reserved)


def test_the_filter_is_doing_real_work(tasks):
    # Without the filter, a plain ID stream does collide with the reserved test set:
    # short ID problems are few enough to be drawn twice.
    fam = tasks.get("string")
    raw = {fam.generate("id", 0, i).uid for i in range(20000)}
    assert raw & reserved_uids(fam), "expected raw collisions; the disjointness test would be vacuous"


def test_test_sets_are_distinct_and_stable(families):
    for fam in families:
        for split in fam.splits:
            probs = held_out_problems(fam, split, 100)
            assert len({p.uid for p in probs}) == 100
            assert all(p.seed == TEST_SEED for p in probs)
            assert probs[:10] == held_out_problems(fam, split, 10)


def test_a_test_set_prefix_is_generated_only_as_far_as_asked_and_is_the_same_problems(families):
    """A check of the first hundred test problems (every suite's context check) must not generate all of
    them; a later, longer request continues the same stream."""
    from ood_bench.data import TEST_SET_SIZE
    from ood_bench.tasks.builtin import GraphRoute

    class Counting(GraphRoute):
        calls = 0

        def generate(self, split, seed, index):
            Counting.calls += 1
            return super().generate(split, seed, index)

    fam = Counting()
    first = held_out_problems(fam, "ood_length", 100)
    assert Counting.calls < 2 * 100  # a few duplicates skipped, never the whole reserved set
    whole = held_out_problems(fam, "ood_length", TEST_SET_SIZE)
    assert whole[:100] == first and len({p.uid for p in whole}) == TEST_SET_SIZE
    graph = next(f for f in families if f.name == "graph")
    assert [p.uid for p in whole] == [p.uid for p in held_out_problems(graph, "ood_length", TEST_SET_SIZE)]


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
    assert kept == ex[row].ids[ex[row].prompt_len :]  # exactly the completion and <eos>
    full = collate(ex, loss_on_prompt=True)["y"]
    assert (full[row] != -100).sum() == len(ex[row].ids) - 1


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_packed_rows_compute_each_example_exactly_as_alone(tasks, pos):
    """Packing changes only the layout: every example's logits and targets are those it has unpacked."""
    import torch

    from ood_bench.model.model import GPT, ModelConfig

    ex = [encode_problem(tasks.get(f).generate("id", 0, i), 256) for i in range(7) for f in ("string", "graph")]
    packed = collate_packed(ex, row_len=128)
    plain = collate(ex)
    assert packed["x"].shape[0] < plain["x"].shape[0]  # fewer rows: that is the point
    assert packed["x"].shape[1] <= 128
    assert int((packed["y"] != -100).sum()) == int((plain["y"] != -100).sum())
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=128, pos_encoding=pos)).eval()
    with torch.no_grad():
        alone = model(plain["x"])
        together = model(packed["x"], packed["positions"], packed["attn_mask"])
    # Find each example in the packed rows by its position-0 <bos> and compare token by token.
    starts = (packed["positions"] == 0) & (packed["x"] != 0)
    found = 0
    for r, c in starts.nonzero().tolist():
        n = 1 + int((packed["positions"][r, c + 1 :] > 0).int().cumprod(0).sum())
        i = next(
            i for i, e in enumerate(ex) if len(e.ids) - 1 == n and e.ids[:-1] == packed["x"][r, c : c + n].tolist()
        )
        assert torch.allclose(together[r, c : c + n], alone[i, :n], atol=1e-4)
        assert torch.equal(packed["y"][r, c : c + n], plain["y"][i, :n])
        found += 1
    assert found == len(ex)


def test_position_skip_moves_positions_past_the_id_lengths_without_changing_the_text(tasks):
    import random

    from ood_bench.data import skipped_positions

    rng = random.Random(0)
    seen_max = 0
    for _ in range(200):
        n = rng.randint(20, 90)
        pos = skipped_positions(n, 256, 128, rng)
        steps = [b - a for a, b in zip(pos, pos[1:])]
        assert pos[0] == 0 and len(pos) == n and max(pos) < 256
        assert all(s >= 1 for s in steps) and sum(s > 1 for s in steps) <= 1  # one forward jump at most
        seen_max = max(seen_max, pos[-1])
    assert seen_max > 150  # positions far past the longest ID example are trained
    assert skipped_positions(40, 256, 0, rng) == list(range(40))


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_skipped_positions_keep_the_convolution_inside_each_packed_example(tasks, pos):
    """With skipped positions, a packed example still computes exactly as alone at the same positions:
    the convolution finds document starts by token index, not by position."""
    import torch

    from ood_bench.model.model import GPT, ModelConfig

    ex = [encode_problem(tasks.get(f).generate("id", 0, i), 256) for i in range(4) for f in ("string", "graph")]
    for k, e in enumerate(ex):  # a jump right after <bos>: position alone would let the conv see the row before
        n = len(e.ids) - 1
        e.positions = [t if t < 1 + k % 3 else t + 60 for t in range(n)]
    packed = collate_packed(ex, row_len=200)
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=256, pos_encoding=pos)).eval()
    with torch.no_grad():
        together = model(packed["x"], packed["positions"], packed["attn_mask"], doc_index=packed["doc_index"])
        for e in ex:
            n = len(e.ids) - 1
            alone = model(torch.tensor([e.ids[:-1]]), torch.tensor([e.positions]))
            r, c = next(
                (r, c)
                for r, c in ((packed["doc_index"] == 0) & (packed["x"] != 0)).nonzero().tolist()
                if packed["x"][r, c : c + n].tolist() == e.ids[:-1]
            )
            assert torch.allclose(together[r, c : c + n], alone[0], atol=1e-4)
