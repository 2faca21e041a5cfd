"""Where a suite's runs live and which of them are finished.

Work (checkpoints, logs, full evaluations) goes to ``runs/<suite>/<run>/``; each finished run's compact record
goes to ``leaderboards/<suite>/records/<run>/``, and a base's weights to ``leaderboards/<suite>/bases/``. A run
is finished when a record with its key exists in its work folder (made on this machine) or, when the suite
reuses published records (or ``--with`` adds rows to a published suite), in the published folder, or in the
published folder of a suite it extends (adopted, record and weights, before any run needs them).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import OodBenchError
from ..storage.atomic import atomic_write_json
from ..storage.run_records import (
    RECORD,
    read_record,
)
from .suite import RunSpec, SuiteConfig


@dataclass
class Places:
    work: Path  # runs/<suite>
    published: Path  # leaderboards/<suite>
    parents: tuple[Path, ...] = ()  # leaderboards/<parent> of each suite it extends, nearest first

    @property
    def records(self) -> Path:
        return self.published / "records"

    def weights(self, base: str) -> Path:
        return self.published / "bases" / f"{base}.safetensors"


def places(suite: SuiteConfig, work_root: str | Path = "runs", publish_root: str | Path = "leaderboards") -> Places:
    root = Path(publish_root).absolute()
    return Places(Path(work_root).absolute() / suite.name, root / suite.name, tuple(root / p for p in suite.parents))


def status(spec: RunSpec, where: Places, reuse_published: bool) -> str:
    """'done' (finished here), 'published' (a committed record with this key, reused), 'parent' (a parent
    suite published it, see ``parent_record``), or 'todo'."""
    local = read_record(where.work / spec.name)
    published = read_record(where.records / spec.name)
    # done: finished here, and this very record is the published one (a run killed between writing its
    # record here and publishing it is run again, not counted done against an older published record)
    if local and local["key"] == spec.key and published == local:
        return "done"
    if reuse_published and published and published["key"] == spec.key:
        return "published"
    if parent_record(spec, where) is not None:
        return "parent"
    return "todo"


def parent_record(spec: RunSpec, where: Places) -> Path | None:
    """The record folder of this very run (the same key) that a suite this one extends published, with its
    base's weights for a base; None if no parent has it. Reused whatever ``reuse_published`` says: that flag is
    about re-running the suite's own records to see them reproduce, and a parent's record is not this suite's
    to reproduce (``ood-bench run PARENT`` does that)."""
    for parent in where.parents:
        folder = parent / "records" / spec.name
        try:
            record = read_record(folder)
        except OodBenchError:  # a damaged record of the parent's: this run is made here instead
            continue
        weights = parent / "bases" / f"{spec.name}.safetensors"
        if record and record["key"] == spec.key and (spec.kind != "base" or weights.is_file()):
            return folder
    return None


def adopt_from_parents(specs: list[RunSpec], where: Places, suite_name: str) -> None:
    """Copy each run's parent record (and a base's weights) into this suite's folders, so its leaderboard, its
    post runs and ``--with`` read them as its own: the record says which suite made it (``adopted_from``).
    Copies of the same weights are the same bytes, which git stores once."""
    for spec in specs:
        source = parent_record(spec, where)
        if source is None:
            continue
        target = where.records / spec.name
        mine = read_record(target)
        if not (mine and mine["key"] == spec.key):
            fresh = fresh_folder(target)
            shutil.copytree(source, fresh, dirs_exist_ok=True)
            record = read_record(fresh)
            record["adopted_from"] = record.get("adopted_from") or record.get("suite")
            record["suite"] = suite_name
            atomic_write_json(fresh / RECORD, record)
            # late: it loads pandas, which importing this module does not
            from ..storage.eval_records import replace_folder

            replace_folder(fresh, target)
        weights = source.parent.parent / "bases" / f"{spec.name}.safetensors"
        if spec.kind == "base" and not where.weights(spec.name).is_file():
            where.weights(spec.name).parent.mkdir(parents=True, exist_ok=True)
            tmp = where.weights(spec.name).with_name(f".{spec.name}.safetensors.tmp")
            shutil.copyfile(weights, tmp)
            tmp.replace(where.weights(spec.name))


def has_published(spec: RunSpec, where: Places) -> bool:
    """A base whose record and weights are published with this key (shared by rows added later)."""
    published = read_record(where.records / spec.name)
    return bool(published and published["key"] == spec.key and where.weights(spec.name).is_file())


def fresh_folder(target: Path) -> Path:
    """A fresh folder beside a record folder (records hold record.json, not eval.json)."""
    fresh = target.with_name(f".{target.name}.partial-{os.getpid()}")
    if fresh.exists():
        shutil.rmtree(fresh)
    fresh.mkdir(parents=True)
    return fresh
