"""Task families: determinism, golden hashes, verifiers, and axis structure."""

import hashlib
import json
from pathlib import Path

import pytest

from ood_bench.model.tokenizer import TOKENIZER
from ood_bench.tasks.base import SPLITS, parse_completion

GOLDEN = Path(__file__).with_name("golden_hashes.json")
N_GOLDEN = 50


def family_digest(family) -> str:
    h = hashlib.sha256()
    for split in family.splits:
        for i in range(N_GOLDEN):
            p = family.generate(split, 0, i)
            h.update(f"{split}\x1f{p.prompt}\x1f{p.completion}\x1e".encode())
    return h.hexdigest()


def test_generation_is_deterministic(families):
    for fam in families:
        for split in fam.splits:
            a = [fam.generate(split, 7, i) for i in range(20)]
            b = [fam.generate(split, 7, i) for i in range(20)]
            assert a == b
            assert len({p.prompt for p in a}) > 15, "indices must give different problems"
            assert fam.generate(split, 8, 0) != fam.generate(split, 7, 0)


def test_golden_hashes_force_a_version_bump(families):
    golden = json.loads(GOLDEN.read_text())
    for fam in families:
        if fam.name not in golden:
            continue  # a plugin family: its own package keeps its golden hash
        entry = golden[fam.name]
        assert entry["version"] == fam.version, (
            f"{fam.name} is now v{fam.version}; regenerate tests/golden_hashes.json for it"
        )
        assert family_digest(fam) == entry["sha256"], (
            f"the items of {fam.name} v{fam.version} changed: bump its version and update the golden hash"
        )


def test_every_builtin_family_has_a_golden_hash(tasks):
    golden = json.loads(GOLDEN.read_text())
    assert {"string", "graph"} <= set(golden)


@pytest.mark.parametrize("split", SPLITS)
def test_gold_scores_one_and_corruptions_fail(families, split):
    for fam in families:
        for i in range(30):
            p = fam.generate(split, 1, i)
            s = fam.score(p, p.completion)
            assert s.answer and s.trace
            # wrong answer, right trace
            bad_answer = p.completion[:-1] + ("A" if p.completion[-1] != "A" else "B")
            s = fam.score(p, bad_answer)
            assert not s.answer and s.trace
            # corrupted step, right answer
            steps = list(p.steps)
            head, _, tail = steps[0].partition(":")
            steps[0] = head + ":" + tail[::-1] + "Z"
            s = fam.score(p, "".join(x + "\n" for x in steps) + "#" + p.answer)
            assert s.answer and not s.trace
            # a missing answer line is wrong, not a crash
            assert not fam.score(p, "".join(x + "\n" for x in p.steps)).answer
            assert not fam.score(p, "").answer


def test_every_symbol_is_in_the_vocabulary(families):
    for fam in families:
        for split in fam.splits:
            for i in range(50):
                p = fam.generate(split, 0, i)
                assert TOKENIZER.decode(TOKENIZER.encode(p.text)) == p.text
                assert len(TOKENIZER.encode(p.text)) + 2 <= 256


def test_axes_move_only_their_own_coordinate(families):
    for fam in families:
        ranges = fam.ranges
        for i in range(100):
            idp = fam.generate("id", 0, i).meta
            assert ranges.id_depth[0] <= idp["depth"] <= ranges.id_depth[1]
            assert ranges.id_length[0] <= idp["length"] <= ranges.id_length[1]
            d = fam.generate("ood_depth", 0, i).meta
            assert d["depth"] > ranges.id_depth[1] and d["length"] <= ranges.id_length[1]
            ln = fam.generate("ood_length", 0, i).meta
            assert ln["length"] > ranges.id_length[1] + 1 and ln["depth"] <= ranges.id_depth[1]
            e = fam.generate("edge", 0, i).meta
            assert (e["depth"], e["length"]).count(None) == 0
            assert e["depth"] == ranges.edge_depth or e["length"] == ranges.edge_length


def test_composition_split_holds_out_pairs_that_id_never_uses(families):
    for fam in families:
        steps_mod = __import__(type(fam).__module__, fromlist=["STEPS"])
        held = {"+".join(p) for p in steps_mod.STEPS.held_out_pairs}
        for i in range(200):
            id_steps = set(fam.generate("id", 0, i).meta["steps"])
            assert not (id_steps & held)
            comp_steps = set(fam.generate("ood_comp", 0, i).meta["steps"])
            assert comp_steps & held


def _id_texts(families, n=200):
    return [
        fam.generate(split, 0, i)
        for fam in families
        for split in ("id", "ood_depth", "ood_length", "ood_comp", "edge")
        for i in range(n)
    ]


def test_repr_split_renames_the_state_symbols_with_trained_tokens(families):
    """ood_repr symbols never play the state/node role in ID, yet every one is written in ID text."""
    id_problems = _id_texts(families)
    id_text = set("".join(p.text for p in id_problems))
    id_answers = set("".join(p.answer for p in id_problems))
    for fam in families:
        repr_symbols = set("".join(fam.generate("ood_repr", 0, i).answer for i in range(200)))
        assert not (repr_symbols & id_answers), fam.name
        assert repr_symbols <= id_text, (fam.name, repr_symbols - id_text)


def test_string_prompt_states_the_alphabet_rot_uses(tasks):
    fam = tasks.get("string")
    for split in ("id", "ood_repr"):
        for i in range(50):
            p = fam.generate(split, 0, i)
            alphabet, start = p.prompt[2:].split("|")[:2]
            assert set(start) <= set(alphabet) and len(set(start)) == len(start)
            if p.meta["steps"][0] == "rot":
                assert p.steps[0].split(":")[1] == "".join(
                    alphabet[(alphabet.index(c) + 1) % len(alphabet)] for c in start
                )


def test_composition_needs_no_character_sequence_id_never_writes(families):
    for fam in families:
        id_bigrams = {t[i : i + 2] for p in _id_texts([fam]) for t in [p.completion] for i in range(len(t) - 1)}
        for i in range(200):
            c = fam.generate("ood_comp", 0, i).completion
            assert {c[j : j + 2] for j in range(len(c) - 1)} <= id_bigrams, (fam.name, c)


def test_composition_holds_out_a_subset_whose_hops_each_occur_in_id_pairs(families):
    for fam in families:
        space = __import__(type(fam).__module__, fromlist=["STEPS"]).STEPS
        id_pairs = set(space.id_pairs)
        assert space.held_out_pairs and len(space.held_out_pairs) < len(id_pairs)
        for a, b in space.held_out_pairs:
            assert any(p[0] == a for p in id_pairs) and any(p[1] == b for p in id_pairs)


def test_a_part_of_a_held_out_pair_never_gives_the_answer(families, tasks):
    """Chance on ood_comp: the pair in the other order, or one hop of it, never hits the gold answer."""
    from ood_bench.data import held_out_problems
    from ood_bench.tasks.chance import chance_rate, chance_share, lucky

    for fam in families:
        problems = held_out_problems(fam, "ood_comp", 300)
        assert chance_share(fam, problems) == 0.0, fam.name
        # and a familiar step in place of each held-out one is right at most 10% of the time
        assert chance_rate(fam, problems) <= 0.10, fam.name
    string = tasks.get("string")  # built-in behaviour: the built-in family, by name
    assert chance_share(string, held_out_problems(string, "ood_comp", 300), broad=True) == 0.0
    # and the check itself can fire: a 3-symbol string makes rev+shl equal swp
    p = string.generate("ood_comp", 0, 0)
    bad = type(p)(
        p.family,
        p.version,
        p.split,
        p.seed,
        p.index,
        "S:ABCDEFGHIJ|ABC|rev+shl\n",
        ("rev+shl:CBA",),
        "CBA",
        {"program": [("rev", "shl")]},
    )
    assert string.run_program(bad, [("rev", "shl")]) == "BAC"
    bad = type(p)(
        p.family,
        p.version,
        p.split,
        p.seed,
        p.index,
        bad.prompt,
        ("rev+shl:BAC",),
        "BAC",
        {"program": [("rev", "shl")]},
    )
    assert lucky(string, bad, broad=True)


def test_unknown_split_is_a_clear_error(families):
    from ood_bench.errors import OodBenchError

    with pytest.raises(OodBenchError, match="unknown split 'ood_banana'"):
        families[0].generate("ood_banana", 0, 0)


def test_parse_completion():
    assert parse_completion("a:B\nc:D\n#XY") == (["a:B", "c:D"], "XY")
    assert parse_completion("a:B\n") == (["a:B"], None)


def test_graph_trace_lines_follow_the_prompt_edges(tasks):
    """An independent check of the graph generator: replay every trace line on the edge list."""
    fam = tasks.get("graph")
    for split in SPLITS:
        for i in range(100):
            p = fam.generate(split, 3, i)
            start, route, edge_text = p.prompt.strip()[2:].split("|")
            edges = {(e[0], e[1]): e[2] for e in edge_text.split()}
            back = {(e[2], e[1]): e[0] for e in edge_text.split()}
            node = start
            for line, step in zip(p.steps, route.split(",")):
                assert line == node + step + line[-1]
                for hop in step.split("+"):
                    node = back[(node, hop[1])] if hop.startswith("-") else edges[(node, hop)]
                assert line[-1] == node
            assert p.answer == "".join(line[-1] for line in p.steps)


def test_graph_forward_hop_is_written_like_its_edge(tasks):
    p = next(
        p
        for p in (tasks.get("graph").generate("id", 0, i) for i in range(100))
        if any(s in ("x", "y") for s in p.meta["steps"])
    )
    step = p.meta["steps"].index("x") if "x" in p.meta["steps"] else p.meta["steps"].index("y")
    assert p.steps[step] in p.prompt.split("|")[2].split()


def test_graph_composition_uses_held_out_pairs_only_out_of_distribution(tasks):
    from ood_bench.tasks.graph_route import HELD_OUT

    fam = tasks.get("graph")
    held = {"+".join(p) for p in HELD_OUT}
    for split, expect in (("id", False), ("ood_comp", True)):
        for i in range(200):
            steps = set(fam.generate(split, 0, i).meta["steps"])
            assert bool(steps & held) == expect


def _flip(hop: str) -> str:
    return hop[1:] if hop.startswith("-") else "-" + hop


def _sign_or_order_variants(pair: tuple[str, str]) -> set[tuple[str, str]]:
    """The familiar pairs a held-out pair becomes with a hop's sign flipped, both, or the order changed:
    pairs that ID trains (neither held out nor undoing themselves)."""
    from ood_bench.tasks.graph_route import HELD_OUT

    a, b = pair
    flipped = {(x, y) for x in (a, _flip(a)) for y in (b, _flip(b))}
    every = flipped | {(y, x) for x, y in flipped}
    undoes = {v for v in every if v[0].lstrip("-") == v[1].lstrip("-") and v[0] != v[1]}  # x+-x: never generated
    return every - undoes - HELD_OUT - {pair}


def _graph_comp_solved_by_variants(problem) -> tuple[bool, bool]:
    """Replayed on the prompt's edge list, independently of the generator: (every held-out step of the
    problem lands on its gold node when a sign-flipped or reordered familiar pair stands in, so that
    familiar pairs give the whole answer; some held-out step does)."""
    from ood_bench.tasks.graph_route import HELD_OUT

    _, route, edge_text = problem.prompt.strip()[2:].split("|")
    edges = {(e[0], e[1]): e[2] for e in edge_text.split()}
    back = {(e[2], e[1]): e[0] for e in edge_text.split()}

    def hop(node, h):
        return back[(node, h[1])] if h.startswith("-") else edges[(node, h)]

    hits = []
    for line, step in zip(problem.steps, route.split(",")):
        pair = tuple(step.split("+"))
        if pair in HELD_OUT:
            source, target = line[0], line[-1]
            hits.append(any(hop(hop(source, a), b) == target for a, b in _sign_or_order_variants(pair)))
    assert hits, problem.prompt
    return all(hits), any(hits)


def test_no_familiar_pair_with_a_sign_flipped_or_its_order_changed_solves_graph_comp(tasks):
    """A held-out pair done as a familiar pair with a sign flipped (x+-y as x+y or -x+-y) or with the
    order changed too (y+x) must not land where the held-out pair does: else ood_comp is solved
    without composing anything new. Graph v4 left 59% of its test problems solvable that way."""
    from ood_bench.data import held_out_problems

    fam = tasks.get("graph")
    assert _sign_or_order_variants(("x", "-y")) == {("x", "y"), ("-x", "-y"), ("-y", "x"), ("y", "x"), ("y", "-x")}
    for problems in (held_out_problems(fam, "ood_comp", 300), [fam.generate("ood_comp", 0, i) for i in range(300)]):
        solved = [_graph_comp_solved_by_variants(p) for p in problems]
        whole = sum(w for w, _ in solved) / len(solved)
        part = sum(a for _, a in solved) / len(solved)
        assert whole == 0.0, f"{whole:.1%} of graph ood_comp problems are solved by sign-flipped or reordered pairs"
        assert part == 0.0, f"in {part:.1%} of graph ood_comp problems such a pair stands in for a held-out step"


def test_no_string_ood_repr_answer_depends_on_an_order_of_its_symbols(tasks):
    """Pretraining shows one alphabet order (A-J); an ood_repr op that follows the order of the new symbols
    (rot) asks for an order it never saw. The answer must be the same whatever their order."""
    import dataclasses
    import random

    from ood_bench.data import held_out_problems

    fam = tasks.get("string")
    rng = random.Random(0)
    changed = []
    for p in held_out_problems(fam, "ood_repr", 300):
        alphabet = p.meta["alphabet"]
        orders = [alphabet[::-1], alphabet[3:] + alphabet[:3], "".join(rng.sample(alphabet, len(alphabet)))]
        reordered = [dataclasses.replace(p, prompt=p.prompt.replace(alphabet, o, 1)) for o in orders]
        changed.append(any(fam.run_program(q, list(p.meta["program"])) != p.answer for q in reordered))
    share = sum(changed) / len(changed)
    assert share == 0.0, f"{share:.1%} of string ood_repr answers change with the order of the alphabet"


def test_ranges_and_step_spaces_refuse_what_would_not_be_ood():
    import random

    from ood_bench.tasks.steps import AxisRanges, StepSpace

    with pytest.raises(ValueError, match="ood_length=\\(6, 7\\) must start past id_length"):
        AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(4, 6), ood_length=(6, 7))
    with pytest.raises(ValueError, match="1 <= lo <= hi"):
        AxisRanges(id_depth=(3, 1), ood_depth=(5, 6), id_length=(4, 6), ood_length=(8, 9))
    with pytest.raises(ValueError, match="both held out and excluded"):
        StepSpace(("a", "b"), frozenset({("a", "b")}), excluded_pairs=frozenset({("a", "b")}))
    space = StepSpace(
        ("a", "b"), frozenset({("a", "b")}), fused_fraction=1.0, excluded_pairs=frozenset({("a", "a"), ("b", "b")})
    )
    rng = random.Random(0)
    drawn = {s for _ in range(200) for s in space.sample(rng, 3, held_out=0)}
    assert drawn == {("b", "a")}  # the identity pairs never, the held-out pair only when asked


def test_the_contract_check_finds_an_ood_split_that_overlaps_id():
    from types import SimpleNamespace

    from ood_bench.tasks.contract import ContractError, _check_axes_separate

    def problems(depths):
        return lambda family, split, n: [
            SimpleNamespace(meta={"depth": d, "length": 5}) for d in depths[split if split in depths else "id"]
        ]

    family = SimpleNamespace(name="fake")
    fine = {"id": [1, 2, 3], "ood_depth": [5, 6], "ood_length": [1, 2]}
    _check_axes_separate(
        family,
        lambda f, s, n: [SimpleNamespace(meta={"depth": d, "length": 9 if s == "ood_length" else 5}) for d in fine[s]],
        3,
    )
    with pytest.raises(ContractError, match="ood_depth problems reach down to depth 3"):
        _check_axes_separate(family, problems({"id": [1, 2, 3], "ood_depth": [3, 6]}), 3)


# ----------------------------------------------------------------------------- the contract

# The tests above that take every installed family: the rules a family must keep (`tasks --check` checks each)
FAMILY_RULES = [
    f
    for name, f in list(globals().items())
    if name.startswith("test_") and "families" in __import__("inspect").signature(f).parameters
]


def _example_family(**overrides):
    """The shipped example family, as if pip-installed (the shared environment untouched); ``overrides``
    replace its methods, to break one rule at a time."""
    import importlib
    import sys

    path = str(Path(__file__).resolve().parents[1] / "plugins" / "example-family")
    sys.path.insert(0, path)
    try:
        cls = importlib.import_module("ood_bench_modsum").ModSum
    finally:
        sys.path.remove(path)
    return type("Broken", (cls,), overrides)() if overrides else cls()


def test_the_family_rules_hold_with_the_example_family_installed(families, tasks):
    import inspect

    assert len(FAMILY_RULES) >= 10
    with_example = families + [_example_family()]
    for test in FAMILY_RULES:
        params = inspect.signature(test).parameters
        for split in SPLITS if "split" in params else [None]:
            kwargs = {"families": with_example, "tasks": tasks, "split": split}
            test(**{k: v for k, v in kwargs.items() if k in params})


def test_every_installed_family_and_the_example_keep_the_full_contract(families):
    from ood_bench.data import held_out_problems
    from ood_bench.tasks.contract import check_family_fully

    everyone = families + [_example_family()]
    for fam in everyone:
        assert check_family_fully(fam, held_out_problems, per_split=50, others=[f for f in everyone if f is not fam])[
            "ok"
        ]


def _gold_scorer(self, p, c):
    return type(self).__mro__[1].score(self, p, c)


@pytest.mark.parametrize(
    "score, message",
    [
        (
            lambda self, p, c: _gold_scorer(self, p, c[0] + c[1:]),  # assumes a non-empty completion
            r"score\(\) raised IndexError: string index out of range on an empty completion ''; fix: return a Score",
        ),
        (lambda self, p, c: 1.0, r"score\(\) returned 1.0 on the gold completion"),
        (
            lambda self, p, c: _gold_scorer(
                self, p, c.split("#")[0] + "#" + p.answer
            ),  # reads the answer from the problem
            r"score\(\) calls a wrong answer .* right; fix: compare the text after the last '#'",
        ),
    ],
)
def test_the_contract_catches_a_scorer_that_raises_or_lies(score, message):
    from ood_bench.tasks.contract import ContractError, check_family

    with pytest.raises(ContractError, match=r"^task family 'modsum', split 'id', problem 0: " + message):
        check_family(_example_family(score=score))


def test_the_contract_catches_a_family_missing_a_required_meta_key(families):
    from ood_bench.data import held_out_problems
    from ood_bench.tasks.contract import ContractError, check_family_fully

    def _generate(self, split, rng):
        prompt, steps, answer, meta = type(self).__mro__[1]._generate(self, split, rng)
        return prompt, steps, answer, {k: v for k, v in meta.items() if k != "program"}

    with pytest.raises(
        ContractError,
        match="^task family 'modsum', split 'id', problem 0: meta lacks program; fix: "
        "return meta with depth, length, steps, program",
    ):
        check_family_fully(_example_family(_generate=_generate), held_out_problems, per_split=20, others=families)


def test_the_contract_catches_ood_repr_symbols_another_family_answers_with(families):
    """The example family before it was fixed wrote ood_repr digits as A-J, the string family's ID answers."""
    from ood_bench.data import held_out_problems
    from ood_bench.tasks.contract import ContractError, check_family_fully

    def _generate(self, split, rng):
        prompt, steps, answer, meta = type(self).__mro__[1]._generate(self, split, rng)
        if split != "ood_repr":
            return prompt, steps, answer, meta
        table = str.maketrans("cehilnrstv", "ABCDEFGHIJ")
        tag, _, rest = prompt.partition(":")
        return tag + ":" + rest.translate(table), steps, answer.translate(table), meta

    with pytest.raises(
        ContractError, match="split 'ood_repr', problem 0: answer symbol '.' is an ID answer symbol of family 'string'"
    ):
        check_family_fully(_example_family(_generate=_generate), held_out_problems, per_split=20, others=families)


def test_the_contract_catches_a_step_pattern_that_refuses_the_family_s_own_lines():
    from ood_bench.tasks.contract import ContractError, check_family

    with pytest.raises(ContractError, match=r"problem 0: step '.*' does not match the family's step_pattern 'inc'"):
        check_family(_example_family(step_pattern="inc"))


def test_the_contract_says_how_to_fix_a_held_out_pair_whose_hop_no_id_pair_has(families):
    """shl+rev held out and every other pair starting with shl excluded: shl starts no ID pair."""
    from ood_bench.data import held_out_problems
    from ood_bench.tasks.contract import ContractError, check_family_fully
    from ood_bench.tasks.steps import StepSpace

    space = StepSpace(
        primitives=("inc", "tri", "rev", "shl"),
        held_out_pairs=frozenset({("inc", "tri"), ("shl", "rev")}),
        excluded_pairs=frozenset(
            {("rev", "rev"), ("rev", "inc"), ("rev", "tri"), ("shl", "inc"), ("shl", "tri"), ("shl", "shl")}
        ),
    )
    with pytest.raises(
        ContractError,
        match=r"held-out pair shl\+rev: shl must start and rev end some ID pair; fix: hold out or exclude "
        r"other pairs, so that shl starts and rev ends some ID pair$",
    ):
        check_family_fully(_example_family(steps_space=space), held_out_problems, per_split=20, others=families)
