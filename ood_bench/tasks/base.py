"""The task API: a family is a seeded generator of verifiable problems.

Every family exposes the same named splits, one per out-of-distribution axis of
the design (depth, length, representation, compositionality), plus ``id`` and
``edge`` (just past the ID range, a natural place for RL prompts).

A problem is written as text in a fixed layout that every family shares::

    prompt      = "<family tag>:<query>\\n"
    completion  = "<step 1>\\n<step 2>\\n...<step d>\\n#<answer>"

so one verifier parser, one tokenizer and one evaluation loop serve all families.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ..faults import fault, plugin_call

AXES = ("depth", "length", "repr", "comp")
OOD_SPLITS = tuple(f"ood_{axis}" for axis in AXES)
SPLITS = ("id",) + OOD_SPLITS + ("edge",)


def ood_split(axis: str) -> str:
    return f"ood_{axis}"


def derive_seed(*parts: Any) -> int:
    """A stable 64-bit seed from any tuple of printable parts.

    Python's ``hash`` is salted per process, so it cannot key a generator that
    must give the same problem on every machine; sha256 can.
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


SEED_MODULUS = 2**63  # torch generators take seeds below this


def torch_seed(*parts: Any) -> int:
    """A torch generator seed from printable parts: ``derive_seed`` folded once, the same way everywhere."""
    return derive_seed(*parts) % SEED_MODULUS


@dataclass(frozen=True)
class Problem:
    """One generated problem; a family's ``generate(split, seed, index)`` returns it.

    ``prompt`` is ``"<tag>:<query>\\n"``, ``steps`` the gold trace lines, ``answer`` the gold answer;
    ``completion`` is the gold completion text and ``uid`` its identity. ``meta`` must hold ``depth``,
    ``length`` (ints), ``steps`` (the step names) and ``program`` (the steps as tuples of primitives,
    what ``TaskFamily.run_program`` replays).

    Example::

        p = family.generate("id", seed=0, index=3)
        family.score(p, p.completion)  # Score(answer=True, trace=True)
    """

    family: str
    version: int
    split: str
    seed: int
    index: int
    prompt: str
    steps: tuple[str, ...]
    answer: str
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def completion(self) -> str:
        """The gold completion: one line per reasoning step, then the answer line."""
        return "".join(step + "\n" for step in self.steps) + "#" + self.answer

    @property
    def text(self) -> str:
        return self.prompt + self.completion

    @property
    def uid(self) -> str:
        """Identity of the problem itself, independent of how it was drawn.

        Two draws with the same prompt are the same problem, whatever split or
        index produced them: this is what keeps test problems out of pretraining.
        """
        return hashlib.sha256(f"{self.family}\x1f{self.prompt}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Score:
    """The verifier's verdict on one completion: ``answer`` (the final answer is right) and
    ``trace`` (every step line is right). What ``TaskFamily.score`` must return.

    Example::

        Score(answer=True, trace=False)  # a right answer reached through a wrong trace
    """

    answer: bool
    trace: bool


def checked_score(family: TaskFamily, problem: Problem, completion: str) -> Score:
    """``family.score(problem, completion)``, a fault in it named (``PluginFault``), its result checked to be a
    ``Score``: what the core calls, so a plugin's scorer failing mid-run is one line naming it."""
    with plugin_call("task family", family.name, "score"):
        score = family.score(problem, completion)
    if not isinstance(score, Score):
        raise fault("task family", family.name, "score", f"it returned {type(score).__name__}, not a Score")
    return score


def parse_completion(text: str) -> tuple[list[str], str | None]:
    """Split a model completion into its step lines and its answer (None if absent).

    Returns ``(steps, answer)``: a list of the non-empty lines before the last ``#``, and the text
    after it (None when the completion has no ``#``, e.g. truncated). Never raises.

    Example::

        parse_completion("a:B\\nc:D\\n#XY")  # (["a:B", "c:D"], "XY")
        parse_completion("a:B\\n")         # (["a:B"], None)
    """
    body, sep, answer = text.rpartition("#")
    if not sep:
        return [line for line in text.split("\n") if line], None
    steps = [line for line in body.split("\n") if line]
    return steps, answer.strip("\n")


class TaskFamily(ABC):
    """A seeded procedural generator with an exact verifier.

    Subclasses set ``name``, ``version`` and ``tag`` and implement ``_generate``.
    Bump ``version`` whenever the generated items change: the golden-hash test
    fails otherwise, and leaderboards are keyed by it. Set ``ranges`` (an ``AxisRanges``)
    and ``steps_space`` (a ``StepSpace``), and implement ``run_program``; ``ood-bench tasks
    --check`` (``check_family``) says what else must hold.

    Example::

        class MyFamily(TaskFamily):
            name, version, tag = "mine", 1, "M"
            ranges, steps_space = RANGES, STEPS

            def _generate(self, split, rng):
                depth, length = self.ranges.draw(split, rng)
                ...
                return prompt, lines, answer, {"depth": depth, "length": length,
                                               "steps": names, "program": program}
    """

    name: str = ""
    version: int = 0
    tag: str = ""  # one-character prefix of every prompt, so the model knows the family
    description: str = ""
    splits: tuple[str, ...] = SPLITS
    ranges = None  # an AxisRanges: the depth and length of ID, edge and OOD problems
    steps_space = None  # a StepSpace: the primitives, the held-out and the excluded pairs
    # A regular expression one trace line of this family matches in full, whatever its content is
    # (``ood_bench.evaluation.failures`` tells a wrong step from a line in another family's format by it); None:
    # the family declares no line format, and its lines are never called malformed.
    step_pattern: str | None = None

    def generate(self, split: str, seed: int, index: int) -> Problem:
        """Problem ``index`` of ``split`` under ``seed``: the same arguments always give the same ``Problem``.

        Calls ``_generate(split, rng)`` with an ``rng`` seeded from them; do not override it.
        """
        if split not in self.splits:
            # late: the command line imports what a command needs only when it runs
            from ..errors import OodBenchError

            raise OodBenchError(
                f"unknown split {split!r} for family {self.name!r} (choose from {', '.join(self.splits)})"
            )
        rng = random.Random(derive_seed(self.name, self.version, split, seed, index))
        with plugin_call("task family", self.name, "_generate"):
            prompt, steps, answer, meta = self._generate(split, rng)
        return Problem(self.name, self.version, split, seed, index, prompt, tuple(steps), answer, meta)

    @abstractmethod
    def _generate(self, split: str, rng: random.Random) -> tuple[str, list[str], str, dict]:
        """Return (prompt, step lines, answer, meta) for one problem of ``split``."""

    def score(self, problem: Problem, completion: str) -> Score:
        """Exact verification: the answer, and separately every step of the trace. Returns a ``Score``.

        ``completion`` is whatever the model wrote (possibly empty, truncated or garbled): return
        a ``Score`` for any string, never raise.

        The families shipped here are deterministic (one correct trace), so a
        step is correct exactly when it equals the gold step; a family with
        several valid traces overrides this with a semantic check.
        """
        steps, answer = parse_completion(completion)
        return Score(answer=answer == problem.answer, trace=tuple(steps) == problem.steps)

    def run_program(self, problem: Problem, program: list[tuple[str, ...]]) -> str:
        """The answer ``program`` (a list of steps, each a tuple of primitives) gives on ``problem``'s input.

        Returns a str. The chance checks replay familiar wrong programs with it; on
        ``problem.meta["program"]`` it must give ``problem.answer``.

        Example::

            family.run_program(p, p.meta["program"]) == p.answer  # True
        """
        raise NotImplementedError(f"task family {self.name!r} does not implement run_program")

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "description": self.description}
