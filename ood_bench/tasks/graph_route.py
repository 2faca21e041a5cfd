"""Graph routes: follow typed edges through an edge list.

Every node has one outgoing edge of each type ``x``, ``y``, ``z``. The query
names a start node and a route of edge types (single types or fused pairs such
as ``y+x``, which take two hops in one trace line); the edge list comes *after*
the query, which small models need in order to learn the lookup. The trace gives
the node reached after each step and the answer is the whole path of nodes, so
guessing a single final node does not count as a solve.

Prompt ``G:C|x,y+z|AxB AyC ...\\n``, trace ``x:F`` ``y+z:A``, answer ``#FA``.
"""

from __future__ import annotations

import random

from .base import TaskFamily
from .steps import AxisRanges, StepSpace, step_name

ID_NODES = "ABCDEFGHIJ"
REPR_NODES = "0123456789"  # isomorphic node names no ID problem uses
EDGE_TYPES = ("x", "y", "z")

STEPS = StepSpace(primitives=EDGE_TYPES, held_out_pairs=frozenset({("y", "z"), ("z", "x")}))
# "length" is the number of nodes, so the edge list has 3x that many entries.
RANGES = AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(4, 6), ood_length=(8, 10))


class GraphRoute(TaskFamily):
    name = "graph"
    version = 1
    tag = "G"
    description = "follow a route of typed edges (x, y, z, or fused pairs like y+x) through an edge list"

    def _generate(self, split: str, rng: random.Random):
        depth, n_nodes = RANGES.draw(split, rng)
        names = REPR_NODES if split == "ood_repr" else ID_NODES
        nodes = rng.sample(names, n_nodes)
        out = {(u, t): rng.choice([v for v in nodes if v != u]) for u in nodes for t in EDGE_TYPES}
        edges = [f"{u}{t}{v}" for (u, t), v in out.items()]
        rng.shuffle(edges)
        start = rng.choice(nodes)
        route = STEPS.sample(rng, depth, held_out=split == "ood_comp")
        prompt = f"{self.tag}:{start}|{','.join(step_name(s) for s in route)}|{' '.join(edges)}\n"
        node, lines, path = start, [], []
        for step in route:
            for t in step:
                node = out[(node, t)]
            lines.append(f"{step_name(step)}:{node}")
            path.append(node)
        meta = {"depth": depth, "length": n_nodes}
        return prompt, lines, "".join(path), meta
