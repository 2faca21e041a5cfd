"""Where a process's time goes, by phase: a stack of named phases, each charged only its own time.

``with phase("eval.sampling"):`` charges the wall time spent inside to ``eval.sampling``, less the time of any
phase opened inside it, so the phases' seconds add up to the time covered and nothing is counted twice. The
runner opens one phase around each part of a run (``pretrain``, ``posttrain``, ``eval``, ``records``) and the
code below opens finer ones (rollouts, policy updates, scoring, ...); a run's record keeps what its run took
(``timings.phases``), and ``ood-bench run SUITE --profile FILE`` writes the table for a whole invocation.

The clock costs two ``perf_counter`` calls per phase and is always on. It is per process and not thread-safe:
phases opened by another thread are charged as if they were nested in the main thread's current one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

_seconds: dict[str, float] = defaultdict(float)
_stack: list[str] = []
_mark = time.perf_counter()


def _charge() -> None:
    """Charge the time since the last mark to the innermost open phase (none open: nobody's)."""
    global _mark
    now = time.perf_counter()
    if _stack:
        _seconds[_stack[-1]] += now - _mark
    _mark = now


def enter(name: str) -> None:
    _charge()
    _stack.append(name)


def leave(name: str) -> None:
    """Close ``name``, the innermost open phase (a mismatch is a bug in the caller: it raises)."""
    if not _stack or _stack[-1] != name:
        raise RuntimeError(f"phase {name!r} left while {(_stack or ['nothing'])[-1]!r} is open")
    _charge()
    _stack.pop()


def switch(name: str | None) -> None:
    """Close the innermost phase if it is a sibling opened by ``switch`` and open ``name`` in its place: for
    code that only sees the boundaries between phases (Lightning's hooks), not their nesting."""
    if _stack and _stack[-1].startswith(_SWITCHED):
        leave(_stack[-1])
    if name is not None:
        enter(_SWITCHED + name)


# A phase opened by ``switch`` is marked so a later ``switch`` closes it and nothing else; the mark is dropped
# when the seconds are read.
_SWITCHED = "\x00"


@contextmanager
def phase(name: str) -> Iterator[None]:
    enter(name)
    try:
        yield
    finally:
        # a switched phase left open inside (a hook that never came) closes with its parent
        while _stack and _stack[-1] != name and _stack[-1].startswith(_SWITCHED):
            leave(_stack[-1])
        leave(name)


def seconds() -> dict[str, float]:
    """Each phase's own seconds so far in this process (the open ones up to now)."""
    _charge()
    out: dict[str, float] = defaultdict(float)
    for name, s in _seconds.items():
        out[name.removeprefix(_SWITCHED)] += s
    return dict(out)


def since(before: dict[str, float]) -> dict[str, float]:
    """The seconds each phase gained since ``before`` (an earlier ``seconds()``), to 0.1 ms; phases that gained
    nothing are left out."""
    now = seconds()
    return {k: round(v - before.get(k, 0.0), 4) for k, v in sorted(now.items()) if v > before.get(k, 0.0)}
