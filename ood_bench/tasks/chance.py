"""How often a *familiar wrong program* already gives a held-out problem's answer.

A composition split only tests composition if the held-out step cannot be
stood in for by something the model already does. For each problem of
``ood_comp`` we replace its held-out step(s) by a familiar alternative and ask
whether the answer stays the same:

- ``narrow``: the same pair in the other order, or either of its hops alone;
- ``broad``: additionally any step ID uses (every primitive, every ID pair).

The share of problems where some alternative gives the gold answer is the
chance level of answer-level scoring on that split: a model that never learned
the held-out combination, but does a familiar one instead, is right that often.
"""

from __future__ import annotations

import itertools

from .base import Problem, TaskFamily


def steps_space(family: TaskFamily):
    """The family's space of trace steps (its own attribute, or the STEPS of the module that defines it)."""
    if family.steps_space is not None:
        return family.steps_space
    module = __import__(type(family).__module__, fromlist=["STEPS"])  # families written before API 1.1
    return getattr(module, "STEPS", None)


def familiar_alternatives(space, step: tuple[str, ...], broad: bool) -> list[tuple[str, ...]]:
    alts = [tuple(reversed(step))] + [(hop,) for hop in step]
    if broad:
        alts += [(p,) for p in space.primitives] + list(space.id_pairs)
    return [a for a in dict.fromkeys(alts) if a != step]


def lucky(family: TaskFamily, problem: Problem, broad: bool = False) -> bool:
    """True when replacing the held-out steps by a familiar alternative keeps the answer."""
    space = steps_space(family)
    program = list(problem.meta["program"])
    held = [i for i, s in enumerate(program) if tuple(s) in space.held_out_pairs]
    options = [familiar_alternatives(space, tuple(program[i]), broad) for i in held]
    for choice in itertools.product(*options):
        wrong = list(program)
        for i, alt in zip(held, choice):
            wrong[i] = alt
        if family.run_program(problem, wrong) == problem.answer:
            return True
    return False


def chance_share(family: TaskFamily, problems: list[Problem], broad: bool = False) -> float:
    """Share of ``problems`` whose answer some familiar wrong program already gives."""
    if not problems:
        return float("nan")
    return sum(lucky(family, p, broad) for p in problems) / len(problems)


def chance_rate(family: TaskFamily, problems: list[Problem]) -> float:
    """Expected answer pass@1 of a model that does one familiar step (uniformly, broad set) in place of each
    held-out one: the floor that answer-level scoring on ``ood_comp`` cannot go below by luck alone."""
    space = steps_space(family)
    rates = []
    for problem in problems:
        program = list(problem.meta["program"])
        held = [i for i, s in enumerate(program) if tuple(s) in space.held_out_pairs]
        options = [familiar_alternatives(space, tuple(program[i]), broad=True) for i in held]
        hits = total = 0
        for choice in itertools.product(*options):
            wrong = list(program)
            for i, alt in zip(held, choice):
                wrong[i] = alt
            hits += family.run_program(problem, wrong) == problem.answer
            total += 1
        rates.append(hits / total if total else 0.0)
    return sum(rates) / len(rates) if rates else float("nan")
