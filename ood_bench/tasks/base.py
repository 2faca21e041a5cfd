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
    answer: bool
    trace: bool


def parse_completion(text: str) -> tuple[list[str], str | None]:
    """Split a model completion into its step lines and its answer (None if absent)."""
    body, sep, answer = text.rpartition("#")
    if not sep:
        return [line for line in text.split("\n") if line], None
    steps = [line for line in body.split("\n") if line]
    return steps, answer.strip("\n")


class TaskFamily(ABC):
    """A seeded procedural generator with an exact verifier.

    Subclasses set ``name``, ``version`` and ``tag`` and implement ``_generate``.
    Bump ``version`` whenever the generated items change: the golden-hash test
    fails otherwise, and leaderboards are keyed by it.
    """

    name: str = ""
    version: int = 0
    tag: str = ""  # one-character prefix of every prompt, so the model knows the family
    description: str = ""
    splits: tuple[str, ...] = SPLITS

    def generate(self, split: str, seed: int, index: int) -> Problem:
        if split not in self.splits:
            from ..errors import OodBenchError

            raise OodBenchError(
                f"unknown split {split!r} for family {self.name!r} (choose from {', '.join(self.splits)})"
            )
        rng = random.Random(derive_seed(self.name, self.version, split, seed, index))
        prompt, steps, answer, meta = self._generate(split, rng)
        return Problem(self.name, self.version, split, seed, index, prompt, tuple(steps), answer, meta)

    @abstractmethod
    def _generate(self, split: str, rng: random.Random) -> tuple[str, list[str], str, dict]:
        """Return (prompt, step lines, answer, meta) for one problem of ``split``."""

    def score(self, problem: Problem, completion: str) -> Score:
        """Exact verification: the answer, and separately every step of the trace.

        The families shipped here are deterministic (one correct trace), so a
        step is correct exactly when it equals the gold step; a family with
        several valid traces overrides this with a semantic check.
        """
        steps, answer = parse_completion(completion)
        return Score(answer=answer == problem.answer, trace=tuple(steps) == problem.steps)

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "description": self.description}
