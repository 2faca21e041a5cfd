"""Freed memory goes back to the system between the runs of a suite."""

import pytest
import torch

from ood_bench.suite.memory import release_memory


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


def test_release_memory_returns_a_fragmented_heap():
    """The pattern of a suite's runs: a large tensor freed (glibc then serves tensors up to its size
    from the heap, not from mmap), then many tensors of varied shapes of which a few outlive the rest."""
    try:
        open("/proc/self/status").close()
    except OSError:
        pytest.skip("no /proc/self/status on this system")
    big = torch.ones(2000, 2500)  # 20 MB, freed at once
    del big
    many = [torch.ones(300 + i % 7, 500) for i in range(600)]  # about 360 MB
    keep = many[::60]  # the survivors pin the heap's top
    del many
    before = _rss_mb()
    if not release_memory():
        pytest.skip("this C library has no malloc_trim")
    after = _rss_mb()
    assert sum(t.numel() for t in keep) > 0
    assert before - after > 200, (before, after)
