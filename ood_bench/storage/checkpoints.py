"""Atomic checkpoint writes and friendly checkpoint loading.

A checkpoint is written to a temporary file beside its target and renamed into
place, so an interrupted save never leaves a half-written ``last.ckpt`` that the
next resume would choke on. Loading turns every way a file can be bad into one
``OodBenchError`` line.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..errors import OodBenchError
from ..phases import phase
from .atomic import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: F401  (re-exported)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    with phase("io"):
        _torch_save(obj, Path(path))


def _torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, RuntimeError):  # torch's writer reports a full disk as a RuntimeError
            raise OSError(f"could not write checkpoint {str(path)!r} ({str(exc).splitlines()[0][:120]})") from None
        raise


CHECKSUM_KEY = "state_dict_sha256"


def state_digest(state: dict) -> str:
    """sha256 over every tensor of a state dict, by name: what a checkpoint's weights must hash to."""
    h = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        if torch.is_tensor(value):
            h.update(name.encode())
            h.update(str(value.dtype).encode())
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def verify_checksum(ckpt: dict, path, kind: str = "checkpoint") -> None:
    """A checkpoint written with a checksum must still match it; one without (older) passes."""
    expected = ckpt.get(CHECKSUM_KEY)
    if expected is not None and state_digest(ckpt["state_dict"]) != expected:
        raise OodBenchError(
            f"{kind} {str(path)!r} is corrupt: its weights do not match the checksum saved with "
            f"them; delete it (a run resumes from its last good checkpoint) or restore a copy"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, made crash-safe by write-then-rename, with a checksum of the weights."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if isinstance(checkpoint.get("state_dict"), dict):
            checkpoint[CHECKSUM_KEY] = state_digest(checkpoint["state_dict"])
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        ckpt = read_checkpoint(path, "resume checkpoint")
        return ckpt


def read_checkpoint(path: str | Path, kind: str = "checkpoint") -> dict:
    path = Path(path)
    if not path.exists():
        raise OodBenchError(f"{kind} {str(path)!r} does not exist")
    if not path.is_file():
        raise OodBenchError(f"{kind} {str(path)!r} is not a file")
    if path.suffix == ".safetensors":  # a suite's published base (leaderboards/<suite>/bases/<base>.safetensors)
        return read_weights(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise OodBenchError(f"{kind} {str(path)!r} is corrupt or unreadable ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise OodBenchError(f"{kind} {str(path)!r} is not an ood-bench checkpoint (no state_dict)")
    verify_checksum(ckpt, path, kind)
    return ckpt


def home_folder(path: str | Path) -> Path:
    """Where a checkpoint's evaluation and post-training runs go by default: the checkpoint's own folder,
    except for published weights, whose folder is committed (``leaderboards/<suite>/bases/``): theirs is
    the suite runner's work folder of that base, ``runs/<suite>/<base>``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return path.parent
    if path.parent.name == "bases":
        return Path("runs") / path.parent.parent.name / path.stem
    return path.with_suffix("")


WEIGHTS_META = "ood_bench"  # the one safetensors metadata entry of published weights


def read_weights(weights: Path) -> dict:
    """Published weights as the checkpoint they were saved from (what ``read_checkpoint`` gives for a
    ``.ckpt``): the state, and the hyper-parameters, step and sha256 of their metadata. The state must hash
    to that sha256, so a damaged or edited file is refused before anything is computed from it."""
    # late: it loads safetensors, which importing this module does not
    from safetensors import safe_open

    # late: it loads safetensors, which importing this module does not
    from safetensors.torch import load_file

    try:
        with safe_open(str(weights), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(weights))
        if WEIGHTS_META in meta:
            meta = json.loads(meta[WEIGHTS_META])
        else:  # weights published before the single entry: three entries, the hyper-parameters as JSON
            meta = {**meta, "hyper_parameters": json.loads(meta["hyper_parameters"])}
    except Exception as exc:  # a truncated or foreign file
        raise OodBenchError(f"published weights {str(weights)!r} are unreadable ({type(exc).__name__})") from None
    if state_digest(state) != meta.get("sha256"):
        raise OodBenchError(
            f"published weights {str(weights)!r} do not match their sha256 (a damaged or edited "
            f"file): restore the committed file, or delete it for a suite run to pretrain that "
            f"base again"
        )
    return {
        "state_dict": state,
        "hyper_parameters": _family_order(meta.get("hyper_parameters")),
        "global_step": int(meta.get("global_step", 0)),
        CHECKSUM_KEY: meta["sha256"],
        "restored_from": str(weights),
    }


def _family_order(hparams):
    """The mixture's families back in their pretraining order. The metadata's JSON sorts its keys (so the
    same weights give the same bytes), but post-training draws its prompts' families in the mixture's order:
    a run from published weights drew other prompts than the same run from the checkpoint. The order
    survives in ``eval.families``, a list, which a base's config fills from its mixture."""
    config = hparams.get("config") if isinstance(hparams, dict) else None
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("mixture"), dict)
        or not isinstance(config.get("eval"), dict)
    ):
        return hparams
    mixture = config["mixture"]
    families, order = mixture.get("families"), config["eval"].get("families")
    if not isinstance(families, dict) or not isinstance(order, list):
        return hparams
    trained = [f for f, share in families.items() if isinstance(share, (int, float)) and share > 0]
    if sorted(order) != sorted(trained):  # eval.families set by hand: it says nothing of the mixture's order
        return hparams
    families = {**{f: families[f] for f in order}, **families}  # zero shares (never drawn) after them
    return {**hparams, "config": {**config, "mixture": {**mixture, "families": families}}}
