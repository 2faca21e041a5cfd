"""Graph routes: follow typed edges through an edge list, forwards and backwards.

Each edge type (``x``, ``y``) is a permutation of the nodes with no fixed point,
so every node has exactly one outgoing and one incoming edge of each type and
both directions are well defined. A route step is a forward hop (``x``: follow
the x-edge out of the current node), an inverse hop (``-x``: go to the node
whose x-edge enters the current node), or a *fused pair* of two hops done in one
trace line (``x+y``, ``-y+-x``).

Composition: ID fused pairs always hop twice in the same direction; ``ood_comp``
fuses a forward with an inverse hop (``x+-y``). Both directions, both types and
the ``+`` are all seen in ID, and the mixed pairs that would return to the start
(``x+-x``) are never generated. A generic "two lookups" circuit would solve any
same-direction pair, but ID never asks for a direction switch inside a step.

The edge list comes *after* the query, which small models need in order to learn
the lookup. Each trace line names the node it starts from, then the step, then
the node reached (``Cx>F``): a single forward hop then reads exactly like the
edge ``CxF`` in the prompt, the pattern an induction head matches. (Version 1
wrote only ``x:F``, leaving the current node far back in the trace. Neither
version is learned by the quick 0.8M model yet: ID stays near chance.) The
answer is the whole path of nodes, so guessing a final node does not count as a
solve.

Prompt ``G:C|x,-y+-x|AxB AyC ...\\n``, trace ``Cx>F`` ``F-y+-x>A``, answer ``#FA``.
"""

from __future__ import annotations

import itertools
import random

from .base import TaskFamily
from .steps import AxisRanges, StepSpace, step_name

ID_NODES = "ABCDEFGHIJ"
REPR_NODES = "0123456789"  # isomorphic node names no ID problem uses
EDGE_TYPES = ("x", "y")
HOPS = EDGE_TYPES + tuple(f"-{t}" for t in EDGE_TYPES)


def _direction(hop: str) -> int:
    return -1 if hop.startswith("-") else 1


# Held out: every pair that switches direction, except the ones that undo themselves.
MIXED = frozenset(
    (a, b) for a, b in itertools.product(HOPS, repeat=2)
    if _direction(a) != _direction(b) and a.lstrip("-") != b.lstrip("-")
)
UNDOING = frozenset((a, b) for a, b in itertools.product(HOPS, repeat=2)
                    if _direction(a) != _direction(b) and a.lstrip("-") == b.lstrip("-"))


class _GraphSteps(StepSpace):
    @property
    def id_pairs(self):
        return [p for p in super().id_pairs if p not in UNDOING]


STEPS = _GraphSteps(primitives=HOPS, held_out_pairs=MIXED, fused_fraction=0.35)
# "length" is the number of nodes, so the edge list has 2x that many entries.
RANGES = AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(3, 5), ood_length=(8, 10))


def _derangement(nodes: list[str], rng: random.Random) -> dict[str, str]:
    while True:
        image = nodes[:]
        rng.shuffle(image)
        if all(a != b for a, b in zip(nodes, image)):
            return dict(zip(nodes, image))


class GraphRoute(TaskFamily):
    name = "graph"
    version = 2  # v2: trace lines name their start node
    tag = "G"
    description = "follow a route of forward (x, y) and inverse (-x, -y) hops, or fused pairs, through an edge list"

    def _generate(self, split: str, rng: random.Random):
        depth, n_nodes = RANGES.draw(split, rng)
        names = REPR_NODES if split == "ood_repr" else ID_NODES
        nodes = rng.sample(names, n_nodes)
        forward = {t: _derangement(nodes, rng) for t in EDGE_TYPES}
        inverse = {t: {v: u for u, v in m.items()} for t, m in forward.items()}
        edges = [f"{u}{t}{v}" for t in EDGE_TYPES for u, v in forward[t].items()]
        rng.shuffle(edges)
        start = rng.choice(nodes)
        route = STEPS.sample(rng, depth, held_out=split == "ood_comp")
        names = [step_name(s) for s in route]
        prompt = f"{self.tag}:{start}|{','.join(names)}|{' '.join(edges)}\n"
        node, lines, path = start, [], []
        for step, name in zip(route, names):
            source = node
            for hop in step:
                table = inverse[hop[1:]] if hop.startswith("-") else forward[hop]
                node = table[node]
            lines.append(f"{source}{name}>{node}")
            path.append(node)
        meta = {"depth": depth, "length": n_nodes, "steps": names}
        return prompt, lines, "".join(path), meta
