"""The evaluation record format: ``eval.json`` and its summary table (no torch needed to read them).

An evaluation folder holds ``eval.json`` (how it was made, and one summary row
per family and split) and ``samples/<family>__<split>.jsonl`` (one line per
problem: counts ``c`` and ``trace_c`` of ``n``, greedy verdicts, ``gold_logprob``).
``evaluate`` writes them; ``compare``, ``support`` and ``leaderboard`` read them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .atomic import atomic_write_json

EVAL_RECORD = "eval.json"
TABLE_COLUMNS = ["family", "split", "greedy", "pass@1", "pass@1_stderr", "trace_pass@1", "trace_mass", "gold_logprob"]


def format_table(df: pd.DataFrame) -> str:
    """The summary table ``run`` and ``evaluate`` print: the columns above and pass@n."""
    cols = TABLE_COLUMNS + [c for c in df.columns if c.startswith("pass@") and not c.endswith("stderr")
                            and c not in TABLE_COLUMNS and c != "pass@1"][-1:]
    return df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")


def write_eval_record(out_dir: str | Path, summary: pd.DataFrame, meta: dict) -> Path:
    """Write ``eval.json``: ``meta`` (checkpoint, config, seed, versions, environment) and the summary rows."""
    path = Path(out_dir) / EVAL_RECORD
    atomic_write_json(path, {**meta, "results": summary.to_dict(orient="records")})
    return path


def replace_folder(fresh: Path, target: Path) -> None:
    """Put a finished evaluation folder in place of ``target`` as one unit.

    An evaluation is written into a fresh folder beside its target and swapped in
    only when complete, so a folder never mixes per-problem files of two
    evaluations (an earlier run's ``ood_depth`` beside this run's ``id``), and an
    interrupted evaluation leaves the previous one intact.
    """
    import shutil

    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    if old.exists():
        shutil.rmtree(old)


def fresh_folder(target: Path) -> Path:
    """An empty folder beside ``target`` for an evaluation in progress (removed if one was left behind)."""
    import os
    import shutil

    for left in target.parent.glob(f".{target.name}.partial-*"):  # from an evaluation that was killed
        pid = left.name.rpartition("-")[2]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(left, ignore_errors=True)
    fresh = target.with_name(f".{target.name}.partial-{os.getpid()}")
    if fresh.exists():
        shutil.rmtree(fresh)
    fresh.mkdir(parents=True)
    return fresh


def _alive(pid: int) -> bool:
    import os

    if pid == os.getpid():
        return False  # a folder of ours from before is stale too
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
