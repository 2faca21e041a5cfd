"""Atomic checkpoint writes and friendly checkpoint loading.

A checkpoint is written to a temporary file beside its target and renamed into
place, so an interrupted save never leaves a half-written ``last.ckpt`` that the
next resume would choke on. Loading turns every way a file can be bad into one
``OodBenchError`` line.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from .atomic import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: F401  (re-exported)
from .errors import OodBenchError


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, made crash-safe by write-then-rename."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, path)


def read_checkpoint(path: str | Path, kind: str = "checkpoint") -> dict:
    path = Path(path)
    if not path.exists():
        raise OodBenchError(f"{kind} {str(path)!r} does not exist")
    if not path.is_file():
        raise OodBenchError(f"{kind} {str(path)!r} is not a file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise OodBenchError(f"{kind} {str(path)!r} is corrupt or unreadable ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise OodBenchError(f"{kind} {str(path)!r} is not an ood-bench checkpoint (no state_dict)")
    return ckpt
