"""The speed benchmarks, run without ``--benchmark-enable``, skip and say how to run them instead of failing."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_without_benchmark_enable_skip_with_the_command_that_measures_them():
    # pyproject's addopts disable pytest-benchmark (so the test command stays fast); a disabled benchmark
    # has no timing to report, which used to fail 9 of them with an AttributeError on their stats.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert " passed" not in out and " failed" not in out and " error" not in out, out[-3000:]
    assert "python -m pytest benchmarks --benchmark-enable" in out or "pip install -e '.[bench]'" in out, out[-3000:]
