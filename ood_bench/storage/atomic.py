"""Atomic file writes: a temporary file beside the target, fsynced, renamed into place.

An interrupted write never leaves a half-written file behind, and readers see
either the old content or the new. JSON is strict (NaN and infinities as null).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import OodBenchError
from ..phases import phase


def writable_folder(folder: str | Path, what: str, create: bool = True) -> Path:
    """``folder``, created if needed, once a file could be written in it; else one ``OodBenchError`` line
    (a file in the way, a read-only place, a name too long, a full disk), before any compute. With
    ``create=False`` nothing is made: the nearest folder that exists must be writable."""

    folder = Path(folder)
    try:
        for part in (folder, *folder.parents):
            if part.exists() and not part.is_dir():
                raise OodBenchError(f"{what} {str(folder)!r} cannot be a folder: {str(part)!r} is a file")
            if part.exists():
                break
        if not create:
            if not os.access(part, os.W_OK | os.X_OK):
                raise OodBenchError(f"cannot write to {what} {str(folder)!r}: {str(part)!r} is not writable")
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OodBenchError(f"cannot write to {what} {str(folder)!r}: {exc.strerror or exc}") from None
    return folder


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with phase("io"):
        _write_bytes(Path(path), data)


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _finite(obj: Any) -> Any:
    """NaN and infinities as null: strict JSON readers (jq, JavaScript) reject Python's NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    text = json.dumps(_finite(obj), indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")
