"""An example third-party task family: digit strings, each step adds k to every digit, mod 10.

Prompt ``M:0123456789|3071|add3,rev\\n`` (the tag, the digit order, the start
string, the program); trace ``add3:6304`` ``rev:4036``; answer ``#4036``.

The four axes, as every family must give them:

- depth: ID programs have 1-3 steps, ``ood_depth`` 5-6, ``edge`` 4;
- length: ID strings have 3-5 digits, ``ood_length`` 7-9, ``edge`` 6;
- representation: ``ood_repr`` writes the digits as the letters ``A``-``J``, in
  the order the prompt states (trained symbols, other role);
- compositionality: a step is a primitive (``add1``, ``add2``, ``add3``, ``rev``) or a
  fused pair done in one line (``add2+rev``); ``ood_comp`` puts a held-out pair in
  every problem.

Bump ``version`` whenever the items change, and keep a golden hash of them in your own
tests, as ood-bench does for its families (``tests/test_tasks.py``).
"""

from __future__ import annotations

import random

from ood_bench.api import AxisRanges, StepSpace, TaskFamily, hookimpl, step_name

DIGITS = "0123456789"
REPR_DIGITS = "ABCDEFGHIJ"


def _add(k: int):
    return lambda s, order: "".join(order[(order.index(c) + k) % 10] for c in s)


PRIMITIVES = {"add1": _add(1), "add2": _add(2), "add3": _add(3), "rev": lambda s, order: s[::-1]}
# "addk then rev" and "rev then addk" give the same string, so hold out pairs of additions
# (new sums) and keep every primitive in ID pairs.
STEPS = StepSpace(primitives=tuple(PRIMITIVES), held_out_pairs=frozenset({("add1", "add3"), ("add3", "add2")}))
RANGES = AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(3, 5), ood_length=(7, 9))


class ModSum(TaskFamily):
    name = "modsum"
    version = 1
    tag = "M"
    description = "add k to every digit (mod 10) or reverse, step by step"

    def __init__(self, ranges: AxisRanges = RANGES) -> None:
        self.ranges = ranges

    def _generate(self, split: str, rng: random.Random):
        depth, length = self.ranges.draw(split, rng)
        order = REPR_DIGITS if split == "ood_repr" else DIGITS
        state = "".join(rng.choice(order) for _ in range(length))
        program = STEPS.sample(rng, depth, held_out=1 if split == "ood_comp" else 0)
        names = [step_name(s) for s in program]
        prompt = f"{self.tag}:{order}|{state}|{','.join(names)}\n"
        lines = []
        for step, name in zip(program, names):
            for op in step:
                state = PRIMITIVES[op](state, order)
            lines.append(f"{name}:{state}")
        return prompt, lines, state, {"depth": depth, "length": length, "steps": names}


@hookimpl
def register_tasks(register):
    register(ModSum())
