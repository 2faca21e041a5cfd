"""String programs: a chain of operations on a string of distinct symbols.

Prompt ``S:ABCDEFGHIJ|EBJC|rev,rot+shl\\n``: the alphabet in its cyclic order, the
start string, the program. The trace writes the string after each step
(``rev:CJBE``, ``rot+shl:ACDF`` ...) and the answer is the final string.

The alphabet is written in every prompt because ``rot`` (every symbol to the
next one in the alphabet) needs its order. Every pretraining prompt states the
same order (A-J), so reading an order from the prompt is never trained: an
``ood_repr`` problem with ``rot`` would ask for the order of its new symbols,
something pretraining never showed. ``ood_repr`` therefore keeps to the ops that
move symbols by position (``rev``, ``shl``, ``swp`` and their pairs): the same
problems as ID programs without ``rot``, over another alphabet, whose answers do
not depend on that alphabet's order. The ``ood_repr`` symbols are the
lower-case letters of the op names (``rot``, ``rev``, ``shl``, ``swp``), which
every ID trace writes, so their embeddings are trained: a failure there is a
failure to re-bind roles, not an untrained token.

Strings never repeat a symbol, so two position permutations that differ give
different strings, and a familiar wrong program cannot hit the answer by luck
(measured per split by ``chance_share``).
"""

from __future__ import annotations

import random

from .base import TaskFamily
from .steps import AxisRanges, StepSpace, step_name

ID_ALPHABET = "ABCDEFGHIJ"
# Same size, an order of its own; each letter occurs in an op name of every ID trace.
REPR_ALPHABET = "ehloprstvw"


def _rot(s: str, alphabet: str) -> str:
    return "".join(alphabet[(alphabet.index(c) + 1) % len(alphabet)] for c in s)


PRIMITIVES = {
    "rot": _rot,  # every symbol to the next one in the alphabet, cyclically
    "rev": lambda s, a: s[::-1],
    "shl": lambda s, a: s[1:] + s[:1],  # rotate the string left by one
    "swp": lambda s, a: s[1] + s[0] + s[2:],  # swap the first two symbols
}
# The ops whose result depends on the alphabet's order; ood_repr, over an order pretraining never
# showed, leaves them out.
ORDERED_OPS = frozenset({"rot"})

# Position permutations that do not commute, so each held-out pair is a new
# function; from 4 symbols on, none equals a primitive or an ID pair (on 3
# symbols rev+shl would be swp, so strings have at least 4).
STEPS = StepSpace(
    primitives=tuple(PRIMITIVES),
    held_out_pairs=frozenset({("rev", "shl"), ("shl", "swp"), ("swp", "rev")}),
)
RANGES = AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(4, 6), ood_length=(8, 10))
_OP = f"(?:{'|'.join(PRIMITIVES)})"
# One trace line, whatever its symbols: an op or a fused pair of ops, a colon, the string (``rot+shl:ACDF``).
STEP_PATTERN = rf"{_OP}(?:\+{_OP})?:[A-Za-z]+"


def apply_step(step: tuple[str, ...], s: str, alphabet: str) -> str:
    for op in step:
        s = PRIMITIVES[op](s, alphabet)
    return s


class StringProgram(TaskFamily):
    name = "string"
    # v2: distinct symbols, at least 4; the alphabet stated in the prompt; ood_repr
    # over trained lower-case letters.
    # v3: ood_repr programs without rot (65% of the v2 test answers changed with the order of
    # the new alphabet, which pretraining never showed).
    version = 3
    tag = "S"
    steps_space = STEPS
    step_pattern = STEP_PATTERN
    description = "apply a chain of rot/rev/shl/swp (or fused pairs like rev+shl) to a string of distinct symbols"

    def __init__(self, ranges: AxisRanges = RANGES) -> None:
        # Difficulty ranges are a config, not constants: a suite may build the family with others
        # (the items change, so give such a family its own name or version).
        self.ranges = ranges

    def _generate(self, split: str, rng: random.Random):
        depth, length = self.ranges.draw(split, rng)
        alphabet = REPR_ALPHABET if split == "ood_repr" else ID_ALPHABET
        state = "".join(rng.sample(alphabet, length))
        program = STEPS.sample(rng, depth, held_out=split == "ood_comp")
        while split == "ood_repr" and any(op in ORDERED_OPS for step in program for op in step):
            # an ID program of the same depth without rot: redraw until there is none
            program = STEPS.sample(rng, depth, held_out=False)
        names = [step_name(s) for s in program]
        prompt = f"{self.tag}:{alphabet}|{state}|{','.join(names)}\n"
        lines = []
        for step, name in zip(program, names):
            state = apply_step(step, state, alphabet)
            lines.append(f"{name}:{state}")
        meta = {"depth": depth, "length": length, "steps": names, "program": program, "alphabet": alphabet}
        return prompt, lines, state, meta

    def run_program(self, problem, program: list[tuple[str, ...]]) -> str:
        """The answer ``program`` gives on ``problem``'s start string (for chance checks)."""
        alphabet, start = problem.prompt[2:].split("|")[:2]
        state = start
        for step in program:
            state = apply_step(step, state, alphabet)
        return state
