"""String programs: a chain of operations on a symbol string.

Prompt ``S:ABCDE|rev,rot+shl\\n``; the trace writes the string after each step
(``rev:EDCBA``, ``rot+shl:EDCBF``...) and the answer is the final string.
"""

from __future__ import annotations

import random

from .base import TaskFamily
from .steps import AxisRanges, StepSpace, step_name

ID_ALPHABET = "ABCDEFGH"
# Isomorphic remap for ``ood_repr``: same size, same cyclic order, symbols that no
# ID problem of any shipped family uses.
REPR_ALPHABET = "QRSTUVWX"


def _rot(s: str, alphabet: str) -> str:
    return "".join(alphabet[(alphabet.index(c) + 1) % len(alphabet)] for c in s)


PRIMITIVES = {
    "rot": _rot,  # every symbol to the next one in the alphabet, cyclically
    "rev": lambda s, a: s[::-1],
    "shl": lambda s, a: s[1:] + s[:1],  # rotate the string left by one
    "swp": lambda s, a: s[1] + s[0] + s[2:],  # swap the first two symbols
}

# Position permutations that do not commute, so the held-out pair is a new function.
STEPS = StepSpace(
    primitives=tuple(PRIMITIVES),
    held_out_pairs=frozenset({("rev", "shl"), ("shl", "swp"), ("swp", "rev")}),
)
RANGES = AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(3, 6), ood_length=(8, 10))


def apply_step(step: tuple[str, ...], s: str, alphabet: str) -> str:
    for op in step:
        s = PRIMITIVES[op](s, alphabet)
    return s


class StringProgram(TaskFamily):
    name = "string"
    version = 1
    tag = "S"
    description = "apply a chain of rot/rev/shl/swp (or fused pairs like rev+shl) to a string"

    def _generate(self, split: str, rng: random.Random):
        depth, length = RANGES.draw(split, rng)
        alphabet = REPR_ALPHABET if split == "ood_repr" else ID_ALPHABET
        state = "".join(rng.choice(alphabet) for _ in range(length))
        program = STEPS.sample(rng, depth, held_out=split == "ood_comp")
        names = [step_name(s) for s in program]
        prompt = f"{self.tag}:{state}|{','.join(names)}\n"
        lines = []
        for step, name in zip(program, names):
            state = apply_step(step, state, alphabet)
            lines.append(f"{name}:{state}")
        meta = {"depth": depth, "length": length, "steps": names}
        return prompt, lines, state, meta
