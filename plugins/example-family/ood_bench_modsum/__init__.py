"""An example third-party task family: strings of distinct digits, changed step by step.

Prompt ``M:0123456789|3071|inc,rev\\n`` (the tag, the digit order, the start
string, the program); trace ``inc:4182`` ``rev:2814``; answer ``#2814``.

Steps: ``inc`` adds 1 to every digit and ``tri`` multiplies it by 3 (both mod 10,
in the order the prompt states), ``rev`` reverses the string and ``shl`` rotates it
left by one. All four are one-to-one and the digits of a string are distinct, so two
different programs cannot give the same answer by a coincidence of digits.

The four axes, as every family must give them:

- depth: ID programs have 1-3 steps, ``ood_depth`` 5-6, ``edge`` 4;
- length: ID strings have 3-5 digits, ``ood_length`` 7-9, ``edge`` 6;
- representation: ``ood_repr`` writes the digits as the letters of the step names
  (trained symbols, which no ID answer uses), in the order the prompt states;
- compositionality: a step is a primitive or a fused pair done in one line
  (``inc+rev``); ``ood_comp`` puts a held-out pair in every problem.

``ood-bench tasks --family modsum --check`` checks every rule; bump ``version`` whenever
the items change, and keep a golden hash of them in your own tests, as ood-bench does
for its families (``tests/test_tasks.py``).
"""

from __future__ import annotations

import random

from ood_bench.api import AxisRanges, StepSpace, TaskFamily, hookimpl, step_name

DIGITS = "0123456789"
REPR_DIGITS = "cehilnrstv"  # the letters of inc, tri, rev and shl: trained, and never an ID answer


def _map(f):
    return lambda s, order: "".join(order[f(order.index(c)) % 10] for c in s)


PRIMITIVES = {
    "inc": _map(lambda d: d + 1),
    "tri": _map(lambda d: 3 * d),
    "rev": lambda s, order: s[::-1],
    "shl": lambda s, order: s[1:] + s[:1],
}
# Held out: pairs that do not commute, so neither the pair in the other order nor one hop of
# it gives the answer. Excluded: rev+rev (the identity) and a move then a digit map, which is
# the same function as the map then the move (an ID pair already); see StepSpace.
STEPS = StepSpace(
    primitives=tuple(PRIMITIVES),
    held_out_pairs=frozenset({("inc", "tri"), ("shl", "rev")}),
    excluded_pairs=frozenset({("rev", "rev"), ("rev", "inc"), ("rev", "tri"), ("shl", "inc"), ("shl", "tri")}),
)
RANGES = AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(3, 5), ood_length=(7, 9))
_STEP = f"(?:{'|'.join(PRIMITIVES)})"
# One trace line, whatever its digits (or ood_repr letters): a step or a fused pair, a colon, the string.
STEP_PATTERN = rf"{_STEP}(?:\+{_STEP})?:[0-9a-z]+"


def apply_step(step: tuple[str, ...], s: str, order: str) -> str:
    for op in step:
        s = PRIMITIVES[op](s, order)
    return s


class ModSum(TaskFamily):
    name = "modsum"
    version = 2  # v2: distinct digits, inc/tri/rev/shl, excluded pairs, ood_repr over trained letters
    tag = "M"
    description = "add 1 or multiply by 3 (mod 10) every digit, reverse or rotate, step by step"
    steps_space = STEPS
    step_pattern = STEP_PATTERN

    def __init__(self, ranges: AxisRanges = RANGES) -> None:
        self.ranges = ranges

    def _generate(self, split: str, rng: random.Random):
        depth, length = self.ranges.draw(split, rng)
        order = REPR_DIGITS if split == "ood_repr" else DIGITS
        state = "".join(rng.sample(order, length))
        program = STEPS.sample(rng, depth, held_out=1 if split == "ood_comp" else 0)
        names = [step_name(s) for s in program]
        prompt = f"{self.tag}:{order}|{state}|{','.join(names)}\n"
        lines = []
        for step, name in zip(program, names):
            state = apply_step(step, state, order)
            lines.append(f"{name}:{state}")
        return prompt, lines, state, {"depth": depth, "length": length, "steps": names, "program": program}

    def run_program(self, problem, program):
        order, state = problem.prompt[2:].split("|")[:2]
        for step in program:
            state = apply_step(tuple(step), state, order)
        return state


@hookimpl
def register_tasks(register):
    register(ModSum())
