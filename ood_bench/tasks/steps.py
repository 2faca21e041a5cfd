"""Step programs shared by the families: chains of primitives and fused pairs.

Compositionality is only out of distribution if the composed operation cannot be
done as two already-seen steps in a row. So a step is either one primitive
(``rev``) or a *fused pair* (``rev+shl``) that the trace carries out in a single
line. ID uses every fused pair except a few held-out ones; ``ood_comp`` puts at
least one held-out pair in every problem. Each primitive of a held-out pair still
appears, alone and inside other fused pairs, in ID, and the ``+`` symbol is the
same one, so a failure cannot come from an untrained token.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class StepSpace:
    """Programs of ``primitives`` and fused pairs. ``held_out_pairs`` appear only in ``ood_comp``;
    ``excluded_pairs`` never appear (a pair that is the identity, like ``rev+rev``, or that equals
    another step, would let a problem be solved without composing anything new).

    Raises ``ValueError`` at construction if a pair is not made of primitives, is both held out and
    excluded, or no pair is left for ID. ``sample(rng, depth, held_out)`` returns a list of steps (tuples).

    Example::

        STEPS = StepSpace(("add1", "rev"), held_out_pairs=frozenset({("add1", "add1")}),
                          excluded_pairs=frozenset({("rev", "rev")}))  # rev+rev is the identity
        STEPS.sample(rng, depth=3, held_out=0)  # e.g. [("rev",), ("add1", "rev"), ("add1",)]
    """

    primitives: tuple[str, ...]
    held_out_pairs: frozenset[tuple[str, str]]
    fused_fraction: float = 0.5
    excluded_pairs: frozenset[tuple[str, str]] = frozenset()

    def __post_init__(self) -> None:
        for kind, pairs in (("held-out", self.held_out_pairs), ("excluded", self.excluded_pairs)):
            for a, b in pairs:
                if a not in self.primitives or b not in self.primitives:
                    raise ValueError(f"StepSpace: {kind} pair {a}+{b} is not made of primitives {self.primitives}")
        if self.held_out_pairs & self.excluded_pairs:
            raise ValueError(
                f"StepSpace: pairs both held out and excluded: {sorted(self.held_out_pairs & self.excluded_pairs)}"
            )
        if not self.held_out_pairs:
            raise ValueError("StepSpace: hold out at least one pair (ood_comp is built from them)")
        if not self.id_pairs:
            raise ValueError("StepSpace: no fused pair is left for ID")

    @cached_property  # generators ask it for every step of every problem: computed once per space
    def id_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple(
            p
            for p in itertools.product(self.primitives, repeat=2)
            if p not in self.held_out_pairs and p not in self.excluded_pairs
        )

    def sample(self, rng: random.Random, depth: int, held_out: int | bool) -> list[tuple[str, ...]]:
        """``depth`` steps, ``held_out`` of them (at distinct places) held-out fused pairs."""
        steps: list[tuple[str, ...]] = []
        for _ in range(depth):
            if rng.random() < self.fused_fraction:
                steps.append(rng.choice(self.id_pairs))
            else:
                steps.append((rng.choice(self.primitives),))
        for forced in rng.sample(range(depth), int(held_out)):
            steps[forced] = rng.choice(sorted(self.held_out_pairs))
        return steps


def step_name(step: tuple[str, ...]) -> str:
    """The written name of a step: its primitives joined by ``+``.

    Returns a str.

    Example::

        step_name(("rev", "shl"))  # "rev+shl"
    """
    return "+".join(step)


@dataclass(frozen=True)
class AxisRanges:
    """Difficulty ranges of one family: ID, the edge just past it, and OOD.

    Each range is ``(lo, hi)``, inclusive; an OOD range must start past the edge (ID's top + 1),
    else ``ValueError``. ``draw(split, rng)`` returns ``(depth, length)`` for one problem of ``split``.

    Example::

        RANGES = AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(3, 5), ood_length=(7, 9))
        depth, length = RANGES.draw("ood_depth", rng)  # depth in 5..6, length in 3..5
    """

    id_depth: tuple[int, int]
    ood_depth: tuple[int, int]
    id_length: tuple[int, int]
    ood_length: tuple[int, int]

    def __post_init__(self) -> None:
        for axis in ("depth", "length"):
            ident, ood = getattr(self, f"id_{axis}"), getattr(self, f"ood_{axis}")
            for name, (lo, hi) in ((f"id_{axis}", ident), (f"ood_{axis}", ood)):
                if not 1 <= lo <= hi:
                    raise ValueError(f"AxisRanges: {name}={(lo, hi)} must be (lo, hi) with 1 <= lo <= hi")
            if ood[0] <= ident[1] + 1:
                raise ValueError(
                    f"AxisRanges: ood_{axis}={ood} must start past id_{axis}={ident} and past the "
                    f"edge ({ident[1] + 1}), so no OOD problem is one ID or edge could give"
                )

    @property
    def edge_depth(self) -> int:
        return self.id_depth[1] + 1

    @property
    def edge_length(self) -> int:
        return self.id_length[1] + 1

    def draw(self, split: str, rng: random.Random) -> tuple[int, int]:
        """(depth, length) for a problem of ``split``; other axes stay at ID values."""
        depth = rng.randint(*self.id_depth)
        length = rng.randint(*self.id_length)
        if split == "ood_depth":
            depth = rng.randint(*self.ood_depth)
        elif split == "ood_length":
            length = rng.randint(*self.ood_length)
        elif split == "edge":
            # Just past ID on one axis at a time: one more step, or one more symbol.
            if rng.random() < 0.5:
                depth = self.edge_depth
            else:
                length = self.edge_length
        return depth, length
