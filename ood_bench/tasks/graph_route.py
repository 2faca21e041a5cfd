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

Composition: ID fuses nine of the twelve pairs (pairs that undo themselves,
``x+-x``, are never generated); ``ood_comp`` puts one of the other three
(``x+-y``, ``-y+-x``, ``-x+y``) in two steps of every problem (routes of 2-3
steps there). Each hop of a held-out pair
occurs first and second in ID pairs, and every character sequence of a
held-out trace line (``+-`` included) occurs in ID, so failing there is failing
to combine known parts, not meeting an unknown token or mechanism. On graphs
this small the pair in the other order, one of its hops alone, or a familiar
pair that differs from it in a sign or in order (``x+y`` or ``y+x`` for
``x+-y``) often lands on the same node; ``ood_comp`` redraws such problems, so
doing a part, or a familiar neighbour, instead of the whole is never right by
luck (``ood_bench.tasks.chance`` measures what is left).
(A held-out pair is not necessarily out of distribution for a model that
composes lookups generically: in graph v3, a held-out ``y+x`` scored 0.53
against 0.78 in ID.)

The route comes before the edge list (small models need it there to learn the
lookup); the answer is the whole path of nodes, so guessing a final node does
not count as a solve.

Prompt ``G:C|x,-x+y|CxF CyA FxC ...\\n``, trace ``CxF`` ``F-x+yB``, answer ``#FB``.
"""

from __future__ import annotations

import itertools
import random

from .base import TaskFamily
from .chance import familiar_alternatives
from .steps import AxisRanges, StepSpace, step_name

ID_NODES = "ABCDEFGHIJ"
# Isomorphic node names for ood_repr: no ID graph uses them as nodes, but they are
# trained tokens (the letters of the string family's op names, written in every
# string trace), so a failure there is not an untrained embedding.
REPR_NODES = "ehloprstvw"
EDGE_TYPES = ("x", "y")
HOPS = EDGE_TYPES + tuple(f"-{t}" for t in EDGE_TYPES)


def _inverse(hop: str) -> bool:
    return hop.startswith("-")


def _undoes(a: str, b: str) -> bool:
    """``x`` then ``-x`` (or ``-x`` then ``x``) returns to the start: a trivial step."""
    return a.lstrip("-") == b.lstrip("-") and _inverse(a) != _inverse(b)


# Never a fused pair: a hop and its inverse (``x+-x``) go nowhere. Of the other twelve pairs, ...
UNDOING = frozenset((a, b) for a, b in itertools.product(HOPS, repeat=2) if _undoes(a, b))
# ... three are held out, one of each kind of direction change. Every
# hop still occurs first and second in ID pairs (``y+-x`` and ``-x+-y`` keep the
# ``+-`` of the held-out ``x+-y`` in ID), so no character sequence is new.
HELD_OUT = frozenset({("x", "-y"), ("-y", "-x"), ("-x", "y")})


STEPS = StepSpace(primitives=HOPS, held_out_pairs=HELD_OUT, fused_fraction=0.35, excluded_pairs=UNDOING)
_HOP = f"-?[{''.join(EDGE_TYPES)}]"
# One trace line, whatever its nodes: a node, a hop or a fused pair of hops, a node (``C-x+yB``).
STEP_PATTERN = rf"[A-Za-z]{_HOP}(?:\+{_HOP})?[A-Za-z]"
# Held-out pairs per ood_comp problem. With a handful of nodes, any familiar step
# put in place of a held-out one lands on the right node about one time in five
# (``tasks.chance.chance_rate``: 0.21 with one); two of them cut luck to ~0.05.
COMP_HELD_OUT = 2
# "length" is the number of nodes, so the edge list has 2x that many entries.
RANGES = AxisRanges(id_depth=(1, 3), ood_depth=(5, 6), id_length=(3, 5), ood_length=(8, 10))


def _derangement(nodes: list[str], rng: random.Random) -> dict[str, str]:
    while True:
        image = nodes[:]
        rng.shuffle(image)
        if all(a != b for a, b in zip(nodes, image)):
            return dict(zip(nodes, image))


def _walk(forward: dict[str, dict[str, str]], start: str, route) -> list[str]:
    """The node reached after each step of ``route``."""
    inverse = {t: {v: u for u, v in m.items()} for t, m in forward.items()}
    node, path = start, []
    for step in route:
        for hop in step:
            node = inverse[hop[1:]][node] if _inverse(hop) else forward[hop][node]
        path.append(node)
    return path


def _flip(hop: str) -> str:
    return hop[1:] if _inverse(hop) else f"-{hop}"


def sign_and_order_variants(pair: tuple[str, str]) -> list[tuple[str, str]]:
    """The ID pairs ``pair`` becomes with the sign of one hop or both flipped, its order changed, or both
    (``x+y``, ``-x+-y``, ``y+-x``, ``y+x``, ``-y+x`` for ``x+-y``): familiar pairs a model may do instead."""
    a, b = pair
    flipped = {(x, y) for x in (a, _flip(a)) for y in (b, _flip(b))}
    return sorted(v for v in flipped | {(y, x) for x, y in flipped} if v in STEPS.id_pairs)


def _part_stands_in(forward, start: str, route, path: list[str]) -> bool:
    for i, step in enumerate(route):
        if tuple(step) in STEPS.held_out_pairs:
            stand_ins = familiar_alternatives(STEPS, tuple(step), broad=False) + sign_and_order_variants(tuple(step))
            for alt in dict.fromkeys(stand_ins):
                if _walk(forward, start, route[:i] + [alt] + route[i + 1 :]) == path:
                    return True
    return False


class GraphRoute(TaskFamily):
    name = "graph"
    # v4: three held-out pairs of every kind instead of all inverse-second ones; ood_comp
    # redrawn while a part of the pair stands in for it; ood_repr nodes are trained letters.
    # v5: ood_comp also redrawn while a familiar pair with a sign flipped or the order changed
    # stands in (59.7% of the v4 test problems were solved by such pairs).
    version = 5
    tag = "G"
    steps_space = STEPS
    step_pattern = STEP_PATTERN
    description = "follow a route of forward (x, y) and inverse (-x, -y) hops, or fused pairs, through an edge list"

    def __init__(self, ranges: AxisRanges = RANGES) -> None:
        # Difficulty ranges are a config, not constants: a suite may build the family with others
        # (the items change, so give such a family its own name or version).
        self.ranges = ranges

    def _generate(self, split: str, rng: random.Random):
        while True:
            depth, n_nodes = self.ranges.draw(split, rng)
            if split == "ood_comp":
                depth = max(depth, COMP_HELD_OUT)
            names = REPR_NODES if split == "ood_repr" else ID_NODES
            nodes = rng.sample(names, n_nodes)
            forward = {t: _derangement(nodes, rng) for t in EDGE_TYPES}
            edges = [f"{u}{t}{v}" for t in EDGE_TYPES for u, v in forward[t].items()]
            rng.shuffle(edges)
            start = rng.choice(nodes)
            route = STEPS.sample(rng, depth, held_out=COMP_HELD_OUT if split == "ood_comp" else 0)
            path = _walk(forward, start, route)
            # A held-out pair must not be stood in for by its parts or a familiar
            # neighbour: redraw the problem while the pair in the other order, either
            # hop alone, or an ID pair that differs from it in signs or order lands on
            # the same node (on small graphs that is most of them).
            if split != "ood_comp" or not _part_stands_in(forward, start, route, path):
                break
        step_names = [step_name(s) for s in route]
        prompt = f"{self.tag}:{start}|{','.join(step_names)}|{' '.join(edges)}\n"
        sources = [start] + path[:-1]
        lines = [f"{src}{name}{node}" for src, name, node in zip(sources, step_names, path)]
        meta = {"depth": depth, "length": n_nodes, "steps": step_names, "program": route}
        return prompt, lines, "".join(path), meta

    def run_program(self, problem, program: list[tuple[str, ...]]) -> str:
        """The answer (node path) ``program`` gives on ``problem``'s edge list (for chance checks)."""
        start, _, edge_text = problem.prompt.strip()[2:].split("|")
        forward: dict[str, dict[str, str]] = {t: {} for t in EDGE_TYPES}
        for e in edge_text.split():
            forward[e[1]][e[0]] = e[2]
        return "".join(_walk(forward, start, list(program)))
