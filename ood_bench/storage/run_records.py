"""A suite run's record: small enough to commit, complete enough to rebuild every published number.

``leaderboards/<suite>/records/<run>/`` holds ``record.json`` (the run's key and
what it hashes, its resolved config, seeds, family versions, git commit and
dirty flag, package and plugin versions, budget counters, timings, summary
metrics) and compact evaluation folders: ``eval/`` (and for a base ``null/``,
the same model re-sampled with another seed), each an ``eval.json`` with its
manifest and per-problem counts and exact log-probabilities — not the sample
texts, which the generators and ``--keep-samples`` reproduce. A post run adds
``curves.csv`` (reward, KL, entropy per step). Base weights, when published, sit
in ``leaderboards/<suite>/bases/<run>.safetensors`` so a fresh clone need not
pretrain again to add a row.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import OodBenchError
from .atomic import atomic_write_json
from .checkpoints import CHECKSUM_KEY, WEIGHTS_META, atomic_torch_save, read_checkpoint, read_weights

RECORD = "record.json"
TEXT_FIELDS = ("prompt", "gold", "sample")  # dropped from committed per-problem files
CURVE_COLUMNS = {
    "step": "step",
    "diag/reward": "reward",
    "diag/kl_ref": "kl_ref",
    "diag/entropy": "entropy",
    "diag/accuracy": "accuracy",
    "objective": "objective",  # the algorithm's own objective (reward, or SFT's gold NLL): did_train reads it
}


def train_wall_seconds(timings: dict) -> float:
    """A run's training time from its record's timings: this invocation's and, for a run resumed or finished
    in earlier invocations, theirs."""
    return (timings.get("train") or 0.0) + (timings.get("train_earlier") or 0.0)


def run_wall_seconds(timings: dict) -> float:
    """A run's whole time, training (over all its sessions) and evaluation: the leaderboard's wall column."""
    return train_wall_seconds(timings) + (timings.get("eval") or 0.0)


def read_record(folder: Path) -> dict | None:
    """A run's ``record.json``, or None when there is none (an unreadable one is an error, not a skip)."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OodBenchError(f"unreadable run record {str(path)!r}: {exc}; delete it to run that run again") from None
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        raise OodBenchError(f"run record {str(path)!r} has no key; delete it to run that run again")
    return record


def compact_eval(source: Path, target: Path, keep_samples: bool = False) -> None:
    """Copy an evaluation folder with each per-problem file as a compact CSV table (the counts, greedy
    verdicts and exact log-probabilities; the sample texts too with ``keep_samples``) and a manifest made
    anew for the copies."""
    # late: it loads pandas, which importing this module does not
    import pandas as pd

    # late: it loads pandas, which importing this module does not
    from .eval_records import EVAL_RECORD, manifest, read_eval_folder

    record, files = read_eval_folder(source)
    (target / "samples").mkdir(parents=True, exist_ok=True)
    for f in files:
        df = pd.DataFrame([json.loads(line) for line in f.read_text().splitlines()])
        if not keep_samples:
            df = df.drop(columns=[c for c in TEXT_FIELDS if c in df.columns])
        (target / "samples" / f"{f.stem}.csv").write_text(df.to_csv(index=False, lineterminator="\n"))
    record = {k: v for k, v in record.items() if k != "checkpoint"}  # a machine-local path
    atomic_write_json(target / EVAL_RECORD, {**record, "files": manifest(target)})


def training_curves(run_dir: Path) -> str:
    """Reward, KL to the reference and entropy per gradient step from Lightning's CSV logs, as CSV text
    (the latest value per step when a resumed run logged a step twice)."""
    # late: it loads pandas, which importing this module does not
    import pandas as pd

    frames = [pd.read_csv(f) for f in sorted((run_dir / "logs").glob("version_*/metrics.csv"))]
    frames = [f for f in frames if "step" in f.columns]
    if not frames:
        return ",".join(CURVE_COLUMNS.values()) + "\n"
    df = pd.concat(frames)
    df = df[[c for c in CURVE_COLUMNS if c in df.columns]].rename(columns=CURVE_COLUMNS)
    df = df.dropna(subset=[c for c in df.columns if c != "step"], how="all").groupby("step").last().reset_index()
    return df.to_csv(index=False, float_format="%.5g", lineterminator="\n")


def same_results(a: Path, b: Path) -> bool:
    """Two records of one run hold the same numbers: every per-problem file hashes alike."""

    def files(folder: Path) -> dict:
        out = {}
        for sub in ("eval", "null"):
            path = folder / sub / "eval.json"
            if path.is_file():
                out[sub] = {k: v.get("sha256") for k, v in json.loads(path.read_text()).get("files", {}).items()}
        return out

    return files(a) == files(b) and bool(files(a))


# ----------------------------------------------------------------------------- published base weights


def portable_hparams(hparams):
    """A checkpoint's hyper-parameters with its config's ``out_dir`` cut to the run's folder name: the
    directory the run happened to write to is this machine's, not the run's, and left whole it made the
    same weights publish as different bytes from every clone. Nothing read back from published weights
    uses ``out_dir`` (a run's identity leaves it out too)."""
    config = hparams.get("config") if isinstance(hparams, dict) else None
    if not isinstance(config, dict) or not config.get("out_dir"):
        return hparams
    return {**hparams, "config": {**config, "out_dir": Path(str(config["out_dir"])).name}}


def save_weights(ckpt_path: Path, target: Path) -> None:
    """A base checkpoint's weights and what rebuilds its checkpoint, as safetensors (no optimizer state)."""
    # late: it loads safetensors, which importing this module does not
    from safetensors.torch import save_file

    ckpt = read_checkpoint(ckpt_path)
    # One metadata entry, its keys sorted: safetensors writes several entries in hash-map order, which
    # changes from one save to the next, so the same weights would not give the same file.
    meta = {
        WEIGHTS_META: json.dumps(
            {
                "hyper_parameters": portable_hparams(ckpt.get("hyper_parameters")),
                "sha256": str(ckpt.get(CHECKSUM_KEY)),
                "global_step": int(ckpt.get("global_step", 0)),
            },
            sort_keys=True,
            default=str,
        )
    }
    # tied tensors (the embedding and the output head) are stored once each: safetensors refuses shared memory
    state = {k: v.detach().clone().contiguous() for k, v in ckpt["state_dict"].items() if torch.is_tensor(v)}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(target)


def restore_checkpoint(weights: Path, target: Path) -> None:
    """Rebuild a loadable base checkpoint from published weights; its sha256 must be the one saved."""

    atomic_torch_save(read_weights(weights), target)
