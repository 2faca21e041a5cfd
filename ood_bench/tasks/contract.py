"""The contract every task family keeps, checked at registration and by ``ood-bench tasks --check``.

A family's ``_generate`` returns ``(prompt, steps, answer, meta)``; the core
builds the text ``prompt + step_1 + "\\n" + ... + step_d + "\\n#" + answer``.
What must hold, and why:

- ``name`` is set, ``tag`` is one symbol of the vocabulary and no other family's
  (the model tells families apart by it);
- ``version`` is a positive integer (records and leaderboards are keyed by it);
- ``splits`` are exactly ``id``, the four ``ood_*`` and ``edge``;
- the prompt is ``"<tag>:<query>\\n"``: it starts with the tag and a colon and
  ends with the only newline it holds (the core adds nothing);
- every step is non-empty and holds no newline and no ``#`` (the answer marker), and
  matches ``step_pattern`` where the family sets one (``ood_bench.evaluation.failures`` reads formats by it);
  the answer is non-empty and holds no newline;
- every symbol is in the shared vocabulary (``ood_bench.model.tokenizer.SYMBOLS``);
- the same (split, seed, index) gives the same problem (generators are pure);
- the gold completion scores 1.0, answer and trace; ``score`` returns a ``Score``
  for any text, without an exception (a model writes wrong, truncated, garbled
  and empty completions), and a wrong or missing answer scores 0;

and, with ``check_family_fully`` (``ood-bench tasks --check``), every rule the
project's own tests apply to all installed families (``tests/test_tasks.py``):

- the test problems of ``id`` and of each other split never share a problem: an
  OOD test problem is not an ID one in disguise;
- ``meta`` holds ``depth``, ``length``, ``steps`` and ``program``, and
  ``run_program(problem, meta["program"])`` gives the answer;
- each split moves only its own axis within ``family.ranges``;
- ``id`` never uses a held-out pair of ``family.steps_space``, ``ood_comp``
  always does, and each hop of a held-out pair occurs in ID pairs, in its place;
- ``ood_comp`` writes no character pair ``id`` never writes;
- on ``ood_comp``, no familiar wrong step in place of the held-out one gives the
  answer (``tasks.chance``), and one drawn at random at most 10% of the time;
- ``ood_repr`` answers use symbols that no family's ID answer uses, and that ID
  text of the installed families writes (trained tokens in another role);
- a problem with its gold trace fits the default model's context.

Each violation is one line naming the family, the split, the problem, what is
wrong and how to fix it.
"""

from __future__ import annotations

import re

from ..errors import OodBenchError
from ..model.tokenizer import SYMBOLS, TOKENIZER
from .base import SPLITS, Score, TaskFamily
from .chance import chance_rate, chance_share, steps_space

VOCABULARY = frozenset(SYMBOLS)
REQUIRED_META = ("depth", "length", "steps", "program")
CONTEXT = 256  # the default model's block_size (ModelConfig), which bos + problem + eos must fit
BIGRAM_REFERENCE = 200  # ID problems per split the ood_comp character-pair rule compares with, at least


class ContractError(OodBenchError):
    """A task family breaks the contract; the message names the family, the split, the problem and the fix.

    Example::

        try:
            check_family(MyFamily())
        except ContractError as exc:
            print(exc)
    """


def _problems(family: TaskFamily, split: str, n: int):
    return [family.generate(split, 0, i) for i in range(n)]


def check_family(family: TaskFamily, per_split: int = 3, others: list[TaskFamily] | None = None) -> None:
    """Raise ``ContractError`` on the first broken rule (cheap enough to run at registration).

    Checks ``per_split`` problems of every split; ``others`` are the families already registered
    (their tags must differ). Returns None.

    Example::

        check_family(MyFamily(), per_split=20)  # in your family's own tests
    """
    where = f"task family {family.name or type(family).__name__!r}"
    if not family.name:
        raise ContractError(f"{where} has no name")
    if not (isinstance(family.tag, str) and len(family.tag) == 1 and family.tag in VOCABULARY):
        raise ContractError(f"{where}: tag {family.tag!r} must be one symbol of the vocabulary")
    for other in others or []:
        if other.tag == family.tag:
            raise ContractError(f"{where}: tag {family.tag!r} is already the tag of family {other.name!r}")
    if not (isinstance(family.version, int) and family.version >= 1):
        raise ContractError(f"{where}: version {family.version!r} must be a positive integer")
    if tuple(family.splits) != SPLITS:
        raise ContractError(f"{where}: splits {tuple(family.splits)} must be exactly {SPLITS}")
    for split in SPLITS:
        for p in _problems(family, split, per_split):
            at = f"{where}, split {split!r}, problem {p.index}"
            if not p.prompt.startswith(f"{family.tag}:"):
                raise ContractError(f"{at}: the prompt must start with '{family.tag}:' (got {p.prompt[:12]!r})")
            if not p.prompt.endswith("\n") or p.prompt.count("\n") != 1:
                raise ContractError(f"{at}: the prompt must end with its only newline (got {p.prompt!r})")
            for step in p.steps:
                if not step or "\n" in step or "#" in step:
                    raise ContractError(f"{at}: step {step!r} must be non-empty, with no newline and no '#'")
                if family.step_pattern is not None and not re.fullmatch(family.step_pattern, step):
                    raise ContractError(
                        f"{at}: step {step!r} does not match the family's step_pattern "
                        f"{family.step_pattern!r}; fix: widen the pattern to every line the family writes"
                    )
            if not p.answer or "\n" in p.answer:
                raise ContractError(f"{at}: answer {p.answer!r} must be non-empty, with no newline")
            unknown = sorted(set(p.text) - VOCABULARY)
            if unknown:
                raise ContractError(f"{at}: symbols {''.join(unknown)!r} are not in the vocabulary")
            if family.generate(split, 0, p.index) != p:
                raise ContractError(f"{at}: generating it twice gave two problems (use only the rng you are given)")
            score = _score(family, p, p.completion, at, "the gold completion")
            if not (score.answer and score.trace):
                raise ContractError(
                    f"{at}: the gold completion does not score 1.0 ({score}); fix: score must "
                    f"accept the completion the problem itself gives (Problem.completion)"
                )
            _check_scorer(family, p, at)


def _score(family: TaskFamily, p, completion: str, at: str, what: str) -> Score:
    try:
        score = family.score(p, completion)
    except Exception as exc:  # a scorer that raises would end a training run in its middle
        raise ContractError(
            f"{at}: score() raised {type(exc).__name__}: {exc} on {what} {completion!r}; fix: "
            f"return a Score for any text (parse_completion never raises)"
        ) from exc
    if not (isinstance(score, Score) and isinstance(score.answer, bool) and isinstance(score.trace, bool)):
        raise ContractError(
            f"{at}: score() returned {score!r} on {what} {completion!r}; fix: return Score(answer=<bool>, trace=<bool>)"
        )
    return score


def _check_scorer(family: TaskFamily, p, at: str) -> None:
    """What a model writes when it is wrong: each scores without an exception, a wrong answer as wrong."""
    gold = p.completion
    body = gold[: gold.rindex("#")]
    other = "A" if p.answer[-1] != "A" else "B"
    wrong = {
        "a wrong answer": body + "#" + p.answer[:-1] + other,
        "a completion with no answer line": body,
        "an empty completion": "",
    }
    for what, text in wrong.items():
        if _score(family, p, text, at, what).answer:
            raise ContractError(
                f"{at}: score() calls {what} {text!r} right; fix: compare the text after the "
                f"last '#' with the answer, and score a missing answer as wrong"
            )
    garbled = {
        "a truncated completion": gold[: len(gold) // 2],
        "a garbled completion": gold[::-1],
        "a completion of stray symbols": "#\n#:+-|,\n" + "".join(sorted(VOCABULARY)),
    }
    for what, text in garbled.items():
        _score(family, p, text, at, what)


def _check_axes_separate(family: TaskFamily, test_problems, n: int) -> None:
    """Where problems report ``depth`` / ``length`` in their meta, every ``ood_depth`` / ``ood_length``
    problem lies past every ID one on that axis."""
    for axis in ("depth", "length"):
        ident = [p.meta.get(axis) for p in test_problems(family, "id", n)]
        ood = [p.meta.get(axis) for p in test_problems(family, f"ood_{axis}", n)]
        if ident and ood and all(isinstance(v, int) for v in ident + ood) and min(ood) <= max(ident):
            raise ContractError(
                f"task family {family.name!r}: ood_{axis} problems reach down to {axis} {min(ood)}, "
                f"but ID problems reach {max(ident)}: an OOD split must lie past everything ID produces"
            )


def check_family_fully(
    family: TaskFamily, test_problems, per_split: int = 200, others: list[TaskFamily] | None = None
) -> dict:
    """``check_family`` on more problems, plus disjoint test splits; returns what was checked.

    ``test_problems(family, split, n)`` gives the held-out test problems (``data.held_out_problems``).
    """
    check_family(family, per_split, others)
    _check_axes_separate(family, test_problems, per_split)
    _check_like_the_tests(family, test_problems, per_split, others or [])
    ids = {p.uid for p in test_problems(family, "id", per_split)}
    for split in SPLITS[1:]:
        shared = ids & {p.uid for p in test_problems(family, split, per_split)}
        if shared and split != "edge":
            raise ContractError(
                f"task family {family.name!r}: {len(shared)} test problems of {split!r} are also ID test problems"
            )
    return {"family": family.name, "version": family.version, "problems_per_split": per_split, "ok": True}


def _check_like_the_tests(family: TaskFamily, test_problems, n: int, others: list[TaskFamily]) -> None:
    """The rules ``tests/test_tasks.py`` applies to every installed family, so that a family passing this
    check leaves the project's own tests passing."""

    where = f"task family {family.name!r}"
    problems = {split: test_problems(family, split, n) for split in SPLITS}
    for split, ps in problems.items():
        for p in ps:
            at = f"{where}, split {split!r}, problem {p.index}"
            missing = [k for k in REQUIRED_META if k not in p.meta]
            if missing:
                raise ContractError(
                    f"{at}: meta lacks {', '.join(missing)}; fix: return meta with "
                    f"{', '.join(REQUIRED_META)} from _generate (see Problem)"
                )
            try:
                replayed = family.run_program(p, list(p.meta["program"]))
            except Exception as exc:
                raise ContractError(
                    f"{at}: run_program raised {type(exc).__name__}: {exc}; fix: implement "
                    f"TaskFamily.run_program for meta['program']"
                ) from exc
            if replayed != p.answer:
                raise ContractError(
                    f"{at}: run_program(problem, meta['program']) gives {replayed!r}, not the "
                    f"answer {p.answer!r}; fix: meta['program'] must be the steps the trace does"
                )
            if len(TOKENIZER.encode(p.text)) + 2 > CONTEXT:
                raise ContractError(
                    f"{at}: {len(p.text) + 2} tokens with bos and eos, more than the default "
                    f"context of {CONTEXT}; fix: shorten the longest problems"
                )
    _check_ranges(family, problems)
    space = steps_space(family)
    if space is None:
        raise ContractError(f"{where}: no steps_space; fix: set steps_space = StepSpace(...) on the class")
    held = {"+".join(pair) for pair in space.held_out_pairs}
    for split, expect in (("id", False), ("ood_comp", True)):
        for p in problems[split]:
            if bool(set(p.meta["steps"]) & held) != expect:
                raise ContractError(
                    f"{where}, split {split!r}, problem {p.index}: steps {p.meta['steps']} "
                    f"{'lack' if expect else 'use'} a held-out pair; fix: draw the program with "
                    f"steps_space.sample(rng, depth, held_out={int(expect)})"
                )
    for a, b in sorted(space.held_out_pairs):
        if not (any(q[0] == a for q in space.id_pairs) and any(q[1] == b for q in space.id_pairs)):
            raise ContractError(
                f"{where}: held-out pair {a}+{b}: {a} must start and {b} end some ID pair; fix: hold out or "
                f"exclude other pairs, so that {a} starts and {b} ends some ID pair"
            )
    # What ID writes, read off at least BIGRAM_REFERENCE problems per split: a pair of symbols ID writes
    # now and then (two nodes in a row of a path) is missing from a small sample by chance, and the rule
    # would then fire on a redraw of the same family (graph v5 at 50 problems per split).
    id_bigrams = {
        t[i : i + 2]
        for split in ("id", "ood_depth", "ood_length", "edge")
        for p in test_problems(family, split, max(n, BIGRAM_REFERENCE))
        for t in [p.completion]
        for i in range(len(t) - 1)
    }
    for p in problems["ood_comp"]:
        new = sorted({p.completion[i : i + 2] for i in range(len(p.completion) - 1)} - id_bigrams)
        if new:
            raise ContractError(
                f"{where}, split 'ood_comp', problem {p.index}: writes {new[0]!r}, which no ID "
                f"completion writes; fix: name steps so a held-out pair's name is made of ID text"
            )
    share, rate = chance_share(family, problems["ood_comp"]), chance_rate(family, problems["ood_comp"])
    if share > 0 or rate > 0.10:
        raise ContractError(
            f"{where}, split 'ood_comp': a familiar step in place of the held-out pair gives the "
            f"answer (chance share {share:.2f}, rate {rate:.2f}, at most 0 and 0.10); fix: hold out "
            f"pairs that do not commute, or redraw a problem a familiar step solves"
        )
    _check_repr(family, problems, [f for f in others if f.name != family.name], n)


def _check_ranges(family: TaskFamily, problems: dict) -> None:
    """Each split moves only its own axis: the meta's depth and length lie where ``family.ranges`` says."""
    r = family.ranges
    if r is None:
        raise ContractError(
            f"task family {family.name!r}: no ranges; fix: set ranges = AxisRanges(...) and draw "
            f"(depth, length) with ranges.draw(split, rng)"
        )
    id_d, id_l = r.id_depth[1], r.id_length[1]
    rules = {
        "id": lambda d, ln: r.id_depth[0] <= d <= id_d and r.id_length[0] <= ln <= id_l,
        "ood_depth": lambda d, ln: d > id_d and ln <= id_l,
        "ood_length": lambda d, ln: ln > id_l + 1 and d <= id_d,
        "edge": lambda d, ln: d == r.edge_depth or ln == r.edge_length,
    }
    for split, ok in rules.items():
        for p in problems[split]:
            if not ok(p.meta["depth"], p.meta["length"]):
                raise ContractError(
                    f"task family {family.name!r}, split {split!r}, problem {p.index}: depth "
                    f"{p.meta['depth']}, length {p.meta['length']} lie outside its place in {r}; "
                    f"fix: draw them with ranges.draw(split, rng)"
                )


def _check_repr(family: TaskFamily, problems: dict, others: list[TaskFamily], n: int) -> None:
    """``ood_repr`` answers use trained symbols in a new role: written by ID text, never an ID answer, across
    every installed family (the model is trained on their mixture)."""
    id_splits = ("id", "ood_depth", "ood_length", "ood_comp", "edge")
    id_problems = [p for f in others for split in id_splits for i in range(n) for p in [f.generate(split, 0, i)]]
    id_problems += [p for split in id_splits for p in problems[split]]
    id_text = set("".join(p.text for p in id_problems))
    id_answers = {c: p.family for p in id_problems for c in p.answer}
    for p in problems["ood_repr"]:
        at = f"task family {family.name!r}, split 'ood_repr', problem {p.index}"
        clash = sorted(set(p.answer) & set(id_answers))
        if clash:
            raise ContractError(
                f"{at}: answer symbol {clash[0]!r} is an ID answer symbol of family "
                f"{id_answers[clash[0]]!r}; fix: write ood_repr states with symbols that ID text "
                f"writes but no ID answer does"
            )
        unseen = sorted(set(p.answer) - id_text)
        if unseen:
            raise ContractError(
                f"{at}: answer symbol {unseen[0]!r} appears in no ID text, so its embedding is "
                f"untrained; fix: use symbols ID prompts or traces write (step names)"
            )
