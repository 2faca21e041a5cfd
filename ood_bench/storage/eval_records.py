"""The evaluation record format: ``eval.json`` and its summary table (no torch needed to read them).

An evaluation folder holds ``eval.json`` (how it was made, one summary row per
family and split, and a manifest: each per-problem file with its sha256 and row
count) and ``samples/<family>__<split>.jsonl`` (one line per problem: counts
``c``, ``trace_c``, ``full_c`` of ``n``, greedy verdicts, ``gold_logprob``).
``evaluate`` writes them; ``compare`` and ``leaderboard`` read them only through
``read_eval_folder``, which refuses a folder whose files disagree with its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from ..errors import OodBenchError
from .atomic import atomic_write_json, writable_folder

EVAL_RECORD = "eval.json"
TABLE_COLUMNS = ["family", "split", "greedy", "pass@1", "pass@1_stderr", "full_pass@1", "trace_mass", "gold_logprob"]


def format_table(df: pd.DataFrame) -> str:
    """The summary table ``run`` and ``evaluate`` print: the columns above and pass@n."""
    cols = (
        TABLE_COLUMNS
        + [
            c
            for c in df.columns
            if c.startswith("pass@") and not c.endswith("stderr") and c not in TABLE_COLUMNS and c != "pass@1"
        ][-1:]
    )
    return df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")


def _fingerprint(path: Path) -> dict:
    """A per-problem file's manifest entry, from one read: its sha256 and its number of rows."""
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "rows": len(data.splitlines())}


def manifest(folder: str | Path) -> dict:
    """Every per-problem file of an evaluation folder: its sha256 and its number of rows."""
    folder = Path(folder)
    return {f.relative_to(folder).as_posix(): _fingerprint(f) for f in per_problem_files(folder)}


PER_PROBLEM_SUFFIXES = (".jsonl", ".csv")  # as evaluate writes them; compact tables in committed suite records


def per_problem_files(folder: Path) -> list[Path]:
    return sorted(f for f in (Path(folder) / "samples").glob("*") if f.suffix in PER_PROBLEM_SUFFIXES)


def write_eval_record(out_dir: str | Path, summary: pd.DataFrame, meta: dict) -> Path:
    """Write ``eval.json``: ``meta`` (checkpoint and its hash, config, seed, versions, environment),
    the summary rows, and the manifest of the per-problem files beside it."""
    path = Path(out_dir) / EVAL_RECORD
    atomic_write_json(path, {**meta, "results": summary.to_dict(orient="records"), "files": manifest(out_dir)})
    return path


def read_eval_folder(folder: str | Path) -> tuple[dict, list[Path]]:
    """``eval.json`` and the per-problem files it names, once they are checked to belong together.

    Refused, with one line each: no or unreadable ``eval.json``; no manifest (an
    older record: evaluate again); a listed file missing, changed, or with another
    row count; a per-problem file the manifest does not list (left by another
    evaluation); summary rows for a (family, split) without its file.
    """
    folder = Path(folder)
    path = folder / EVAL_RECORD
    if not path.is_file():
        raise OodBenchError(
            f"{str(folder)!r} holds no {EVAL_RECORD}: not an evaluation folder (run `ood-bench evaluate`)"
        )
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OodBenchError(f"unreadable evaluation record {str(path)!r}: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("results"), list):
        raise OodBenchError(f"evaluation record {str(path)!r} has no list of results")
    files = record.get("files")
    if not isinstance(files, dict):
        raise OodBenchError(
            f"evaluation record {str(path)!r} has no manifest of its per-problem files "
            f"(written by an older ood-bench): evaluate the checkpoint again"
        )
    for name, entry in files.items():
        f = folder / name
        if not f.is_file():
            raise OodBenchError(f"{str(f)!r} is listed in {str(path)!r} but missing")
        found = _fingerprint(f)
        if not isinstance(entry, dict) or found["sha256"] != entry.get("sha256"):
            raise OodBenchError(
                f"{str(f)!r} was changed after {str(path)!r} was written (its sha256 differs "
                f"from the manifest's): evaluate again"
            )
        if entry.get("rows") != found["rows"]:
            raise OodBenchError(
                f"the manifest of {str(path)!r} gives {name} {entry.get('rows')!r} rows, but it holds {found['rows']}"
            )
    for f in per_problem_files(folder):
        if f.relative_to(folder).as_posix() not in files:
            raise OodBenchError(
                f"{str(f)!r} is not in the manifest of {str(path)!r}: it belongs to another "
                f"evaluation; remove it or evaluate again"
            )
    for row in record["results"]:
        if not isinstance(row, dict):
            raise OodBenchError(f"{str(path)!r}: a result row is not an object: {row!r:.60}")
        stem = f"samples/{row.get('family')}__{row.get('split')}"
        if not any(stem + suffix in files for suffix in PER_PROBLEM_SUFFIXES):
            raise OodBenchError(f"{str(path)!r} reports {row!r:.80} without its per-problem file")
    return record, [folder / name for name in files]


def replace_folder(fresh: Path, target: Path) -> None:
    """Put a finished evaluation folder in place of ``target`` as one unit.

    An evaluation is written into a fresh folder beside its target and swapped in
    only when complete, so a folder never mixes per-problem files of two
    evaluations (an earlier run's ``ood_depth`` beside this run's ``id``), and an
    interrupted evaluation leaves the previous one intact.
    """

    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    if old.exists():
        shutil.rmtree(old)


def check_output_folder(target: Path) -> None:
    """An evaluation's output folder can be written (one error line if not), checked before any compute.

    The folder is replaced whole when the evaluation is done, so it must be new, empty, or an earlier
    evaluation (it holds ``eval.json``): any other folder (``--out .``, a home directory) is refused
    rather than deleted.
    """
    target = Path(target)
    try:
        if target.is_symlink():
            raise OodBenchError(f"output folder {str(target)!r} is a symbolic link; give the folder itself")
        target.exists()
    except OSError as exc:
        raise OodBenchError(f"cannot write to output folder {str(target)!r}: {exc.strerror or exc}") from None
    if not target.resolve().name or target.resolve() == Path.cwd().resolve():
        raise OodBenchError(
            f"output folder {str(target)!r} would replace this directory or the root; give a folder of its own"
        )
    writable_folder(target.parent, "output folder")
    if target.exists() and not target.is_dir():
        raise OodBenchError(f"output folder {str(target)!r} is a file")
    if target.is_dir() and any(target.iterdir()) and not (target / EVAL_RECORD).is_file():
        raise OodBenchError(
            f"output folder {str(target)!r} holds other files and no {EVAL_RECORD}; an evaluation "
            f"replaces its folder whole, so give a new or empty folder (or an earlier evaluation's)"
        )


def fresh_folder(target: Path) -> Path:
    """An empty folder beside ``target`` for an evaluation in progress (removed if one was left behind)."""

    check_output_folder(target)
    for left in target.parent.glob(f".{target.name}.partial-*"):  # from an evaluation that was killed
        pid = left.name.rpartition("-")[2]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(left, ignore_errors=True)
    fresh = target.with_name(f".{target.name}.partial-{os.getpid()}")
    if fresh.exists():
        shutil.rmtree(fresh)
    return writable_folder(fresh, "output folder")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a folder of ours from before is stale too
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
