"""Provenance stamped on every record: code version, packages, machine."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import platform
import subprocess
from pathlib import Path

import torch

from ..model.kernels import engine
from . import precision  # called through the module, so a stand-in is used

PACKAGES = ("ood-bench", "torch", "lightning", "torchmetrics", "pluggy", "pandas")


def code_version() -> str:
    """The git commit of the checkout (with ``-dirty`` if modified), else the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        if sha:
            # results are not code: records a suite writes into leaderboards/ do not make the next run "dirty"
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)leaderboards"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "ood-bench " + _version("ood-bench")


def _version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "unknown"


def _probed() -> bool:
    info = getattr(precision.bf16_probe, "cache_info", None)  # a test may stand a plain function in for it
    return bool(info and info().currsize)


def environment() -> dict:
    return {
        "code_version": code_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "python": platform.python_version(),
        "machine": platform.machine(),
        # which kernels made the numbers: bytes reproduce only on the same capability (docs/precision.md)
        "cpu": dict(precision.cpu_info()),
        # what trainer.precision auto measured here, where this process resolved it (docs/precision.md)
        **({"bf16_probe": {k: v for k, v in precision.bf16_probe().items() if k != "cached"}} if _probed() else {}),
        # which decode path sampled (OOD_BENCH_ENGINE): the kernel sums in another order than eager, so a
        # sampled token can differ between them; not part of any run key (docs/performance.md)
        "engine": engine(),
        # intra-op threads: a matmul split over another number of threads adds in another order, so the same
        # seed and config give the same bytes only at the same thread count (docs/precision.md)
        "threads": torch.get_num_threads(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
