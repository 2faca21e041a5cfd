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
- every step is non-empty and holds no newline and no ``#`` (the answer marker);
  the answer is non-empty and holds no newline;
- every symbol is in the shared vocabulary (``ood_bench.tokenizer.SYMBOLS``);
- the same (split, seed, index) gives the same problem (generators are pure);
- the gold completion scores 1.0, answer and trace;
- (full check) the test problems of ``id`` and of each other split never share
  a problem: an OOD test problem is not an ID one in disguise.

Each violation is one line naming the family, the split and what is wrong.
"""

from __future__ import annotations

from ..errors import OodBenchError
from ..tokenizer import SYMBOLS
from .base import SPLITS, TaskFamily

VOCABULARY = frozenset(SYMBOLS)


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
            if not p.answer or "\n" in p.answer:
                raise ContractError(f"{at}: answer {p.answer!r} must be non-empty, with no newline")
            unknown = sorted(set(p.text) - VOCABULARY)
            if unknown:
                raise ContractError(f"{at}: symbols {''.join(unknown)!r} are not in the vocabulary")
            if family.generate(split, 0, p.index) != p:
                raise ContractError(f"{at}: generating it twice gave two problems (use only the rng you are given)")
            score = family.score(p, p.completion)
            if not (score.answer and score.trace):
                raise ContractError(f"{at}: the gold completion does not score 1.0 ({score})")


def _check_axes_separate(family: TaskFamily, test_problems, n: int) -> None:
    """Where problems report ``depth`` / ``length`` in their meta, every ``ood_depth`` / ``ood_length``
    problem lies past every ID one on that axis."""
    for axis in ("depth", "length"):
        ident = [p.meta.get(axis) for p in test_problems(family, "id", n)]
        ood = [p.meta.get(axis) for p in test_problems(family, f"ood_{axis}", n)]
        if ident and ood and all(isinstance(v, int) for v in ident + ood) and min(ood) <= max(ident):
            raise ContractError(f"task family {family.name!r}: ood_{axis} problems reach down to {axis} {min(ood)}, "
                                f"but ID problems reach {max(ident)}: an OOD split must lie past everything ID produces")


def check_family_fully(family: TaskFamily, test_problems, per_split: int = 200,
                       others: list[TaskFamily] | None = None) -> dict:
    """``check_family`` on more problems, plus disjoint test splits; returns what was checked.

    ``test_problems(family, split, n)`` gives the held-out test problems (``data.held_out_problems``).
    """
    check_family(family, per_split, others)
    _check_axes_separate(family, test_problems, per_split)
    ids = {p.uid for p in test_problems(family, "id", per_split)}
    for split in SPLITS[1:]:
        shared = ids & {p.uid for p in test_problems(family, split, per_split)}
        if shared and split != "edge":
            raise ContractError(f"task family {family.name!r}: {len(shared)} test problems of {split!r} are also "
                                f"ID test problems")
    return {"family": family.name, "version": family.version, "problems_per_split": per_split, "ok": True}
