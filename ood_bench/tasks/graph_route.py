"""Graph routes: follow typed edges through an edge list, forwards and backwards.

Each edge type (``x``, ``y``) is a permutation of the nodes with no fixed point,
so every node has exactly one outgoing and one incoming edge of each type; the
prompt lists them all, shuffled, as ``CxF`` ("C's x-edge leads to F"). A route
step is a forward hop (``x``: follow the x-edge out of the current node), an
inverse hop (``-x``: go to the node whose x-edge enters the current node), or a
*fused pair* of two hops done in one trace line (``y+x``, ``-x+y``) without
writing the node in between.

Each trace line reads: the node it starts from, the step, the node reached. A
forward hop from C is then written exactly like its edge (``CxF``), an inverse
hop as ``F-xC``, a fused pair as ``C-x+yB``.

Composition: in ID, an inverse hop is either a step of its own or the *first*
hop of a fused pair; ``ood_comp`` fuses it as the *second* hop (``x+-y``), so the
model must run an inverse lookup on a node it never wrote down. Both directions,
both types, the fused-line format and the ``+`` are all seen in ID, so failing
there is failing to compose, not meeting an unknown token. Pairs that undo
themselves (``x+-x``) are never generated. (A held-out *forward* pair such as
``y+x`` is not out of distribution: the quick model composes forward lookups
generically and scored 0.53 on it against 0.78 in ID.)

The route comes before the edge list (small models need it there to learn the
lookup); the answer is the whole path of nodes, so guessing a final node does
not count as a solve.

Prompt ``G:C|x,-x+y|CxF CyA FxC ...\\n``, trace ``CxF`` ``F-x+yB``, answer ``#FB``.
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


def _inverse(hop: str) -> bool:
    return hop.startswith("-")


def _undoes(a: str, b: str) -> bool:
    """``x`` then ``-x`` (or ``-x`` then ``x``) returns to the start: a trivial step."""
    return a.lstrip("-") == b.lstrip("-") and _inverse(a) != _inverse(b)


PAIRS = [(a, b) for a, b in itertools.product(HOPS, repeat=2) if not _undoes(a, b)]
# Held out: every pair whose second hop is an inverse one.
SECOND_INVERSE = frozenset((a, b) for a, b in PAIRS if _inverse(b))


class _GraphSteps(StepSpace):
    @property
    def id_pairs(self):
        return [p for p in super().id_pairs if not _undoes(*p)]


STEPS = _GraphSteps(primitives=HOPS, held_out_pairs=SECOND_INVERSE, fused_fraction=0.35)
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
    version = 3  # v3: trace lines written like the edges; inverse hops fused only first in ID
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
        step_names = [step_name(s) for s in route]
        prompt = f"{self.tag}:{start}|{','.join(step_names)}|{' '.join(edges)}\n"
        node, lines, path = start, [], []
        for step, name in zip(route, step_names):
            source = node
            for hop in step:
                node = inverse[hop[1:]][node] if _inverse(hop) else forward[hop][node]
            lines.append(f"{source}{name}{node}")
            path.append(node)
        meta = {"depth": depth, "length": n_nodes, "steps": step_names}
        return prompt, lines, "".join(path), meta
