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


@dataclass(frozen=True)
class StepSpace:
    primitives: tuple[str, ...]
    held_out_pairs: frozenset[tuple[str, str]]
    fused_fraction: float = 0.5

    def __post_init__(self) -> None:
        for a, b in self.held_out_pairs:
            assert a in self.primitives and b in self.primitives

    @property
    def id_pairs(self) -> list[tuple[str, str]]:
        return [p for p in itertools.product(self.primitives, repeat=2) if p not in self.held_out_pairs]

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
    return "+".join(step)


@dataclass(frozen=True)
class AxisRanges:
    """Difficulty ranges of one family: ID, the edge just past it, and OOD."""

    id_depth: tuple[int, int]
    ood_depth: tuple[int, int]
    id_length: tuple[int, int]
    ood_length: tuple[int, int]

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
