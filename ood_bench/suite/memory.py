"""Giving freed memory back to the system between the runs of a suite.

glibc's malloc keeps the heap pages a process frees for later reuse, and tensors of
ever-changing shapes (one run's rollouts and model after another's) fragment them,
so a whole suite in one process would grow past what any one run holds at once.
``malloc_trim`` returns those pages; it changes no tensor, so no result. It runs
between runs, not between steps: pages handed back are faulted in again by the
next step, which cost about a third of a GRPO step when tried after every one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None  # glibc only
    except OSError:
        return None


def release_memory(collect: bool = True) -> bool:
    """Collect garbage (when ``collect``) and trim the C heap; False where the C library cannot trim."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
