"""Reading a suite folder's run records: ``Records`` holds every run's record and per-problem counts (read once,
checked against their manifests), refuses records that cannot stand on one board (another suite, a modified
checkout, stale beside current, a post run from another base), and gives each run's merged problems, tilt and
reward trend to the modules that make the board's numbers from them. ``eval_splits`` orders the evaluated
splits, ``record_digest`` hashes a run's ``record.json``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import OodBenchError
from ..evaluation.did_train import run_trend
from ..evaluation.expansion import Tilt, fit_tilt
from ..evaluation.support import Thresholds, load_counts, merge_records
from ..storage.run_records import RECORD, read_record
from ..suite import suite as suites  # called through the module, so a stand-in is used
from ..tasks.base import AXES

OOD_SPLITS = [f"ood_{a}" for a in AXES]


class Records:
    """Every run record of a suite folder, with its per-problem counts (read once, manifest-checked)."""

    def __init__(self, root: Path, allow_dirty: bool = False, expected: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.expected = expected or {}  # run name -> key, from the suite's grid when it is at hand
        folders = sorted(p.parent for p in (self.root / "records").glob(f"*/{RECORD}"))
        if not folders:
            raise OodBenchError(
                f"no run records under {str(self.root / 'records')!r}: run the suite first "
                f"(`ood-bench run {self.root.name}`)"
            )
        self.runs = {f.name: read_record(f) for f in folders}
        dirty = sorted(n for n, r in self.runs.items() if r.get("git_dirty"))
        if dirty and not allow_dirty:
            raise OodBenchError(
                f"{len(dirty)} record(s) were made from a modified checkout ({', '.join(dirty[:3])}"
                f"{', ...' if len(dirty) > 3 else ''}): commit and run again, or pass --allow-dirty"
            )
        self.dirty = dirty
        self.counts = {n: load_counts(self.root / "records" / n / "eval") for n in self.runs}
        self.null = {n: self._null(n) for n, r in self.runs.items() if r["kind"] == "base"}
        self.suite = next(iter(self.runs.values())).get("suite", self.root.name)
        self._tilts: dict = {}
        self._trends: dict = {}
        self._merged: dict = {}
        self._check_consistent()

    def _check_consistent(self) -> None:
        """Records of one suite, made by this version of the numbers, each post run from its base's record:
        nothing stale is mixed into a table."""

        self.superseded = self._superseded(suites.RESULTS_VERSION)
        for name, r in self.runs.items():
            if r.get("suite", self.suite) != self.suite:
                raise OodBenchError(f"record {name!r} belongs to suite {r.get('suite')!r}, not {self.suite!r}")
            if r["kind"] != "post":
                continue
            base = self.runs.get(r.get("base"))
            if base is None:
                raise OodBenchError(f"record {name!r} starts from base {r.get('base')!r}, which has no record here")
            wanted = (r.get("identity") or {}).get("base_key", base["key"])
            if wanted != base["key"]:
                raise OodBenchError(
                    f"record {name!r} was trained from another {r['base']!r} than the one recorded "
                    f"here (its base key differs): run the suite again to renew it"
                )

    def _superseded(self, current_version: int) -> dict | None:
        """None when every record is what this ood-bench would make. When *every* record has another key or
        results version (the suite file, a family's generator or the numbers changed since, and no run has
        been renewed yet), the board stands for those records as they are and says so:
        {"records", "results_versions", "task_versions"}. A board never mixes renewed and older records, so
        some of each is one line naming both."""

        def version(r):
            return r.get("results_version", current_version)

        old = sorted(
            n
            for n, r in self.runs.items()
            if (n in self.expected and self.expected[n] != r["key"]) or version(r) != current_version
        )
        if not old:
            return None
        new = sorted(set(self.runs) - set(old))
        versions = sorted({version(r) for r in self.runs.values()})
        if new or len(versions) > 1:
            raise OodBenchError(
                f"record {old[0]!r} is stale (the suite's {old[0]} has another key now, or another results "
                f"version) while {new[0] if new else 'others'!r} {'is' if new else 'are'} current: a board never "
                f"mixes the two; run the suite again to renew the {len(old)} stale record(s)"
            )
        tasks = sorted({f"{f} v{v}" for r in self.runs.values() for f, v in (r.get("task_versions") or {}).items()})
        return {"records": len(old), "results_versions": versions, "task_versions": tasks}

    def _null(self, name: str) -> pd.DataFrame:
        """A base's second evaluation (another sampling seed): without it the null rows have nothing to show."""
        folder = self.root / "records" / name / "null"
        if not (folder / "eval.json").is_file():
            raise OodBenchError(
                f"base {name!r} has no null evaluation ({str(folder)!r}): the null rows compare each base with a "
                f"second evaluation of itself; run the suite again for that base (`ood-bench run {self.root.name}`)"
            )
        return load_counts(folder)

    def tilt(self, name: str, th: Thresholds) -> Tilt:
        """A run's tilt over all its problems against its base (a base's: against its own re-sampling)."""
        key = (name, th)
        if key not in self._tilts:
            m = self.merged(name)
            lq_b = m["gold_logprob_base"].to_numpy(float)
            self._tilts[key] = fit_tilt(
                lq_b, m["gold_logprob_post"].to_numpy(float), th.outside, tested=int((np.exp(lq_b) < th.outside).sum())
            )
        return self._tilts[key]

    def merged(self, name: str) -> pd.DataFrame:
        """A run's problems beside its base's, every split (a base's: beside its own re-sampling); merged once."""
        if name not in self._merged:
            r = self.runs[name]
            base, post = (
                (self.counts[r["base"]], self.counts[name])
                if r["kind"] == "post"
                else (self.counts[name], self.null[name])
            )
            self._merged[name] = merge_records(base, post)
        return self._merged[name]

    def trend(self, name: str) -> dict:
        """Whether a post-training run trained: its reward trend (``did_train``)."""
        if name not in self._trends:
            self._trends[name] = run_trend(self.root / "records" / name)
        return self._trends[name]

    def posts(self) -> list[str]:
        return [n for n, r in self.runs.items() if r["kind"] == "post"]

    def bases(self) -> list[str]:
        return [n for n, r in self.runs.items() if r["kind"] == "base"]

    def exposure_label(self, name: str) -> str:
        """``e2 (2% per axis)``: the level's name and what it means, from its base's mixture."""
        base = self.runs[name] if self.runs[name]["kind"] == "base" else self.runs[self.runs[name]["base"]]
        exposure = {a: v for a, v in ((base["config"].get("mixture") or {}).get("exposure") or {}).items() if v}
        if not exposure:
            return f"{base['exposure']} (none)"
        if len(exposure) == len(AXES) and len(set(exposure.values())) == 1:
            return f"{base['exposure']} ({100 * next(iter(exposure.values())):g}% per axis)"
        return f"{base['exposure']} ({', '.join(f'{a} {100 * v:g}%' for a, v in exposure.items())})"

    def exposure_of(self, name: str, axis: str) -> float:
        base = self.runs[name] if self.runs[name]["kind"] == "base" else self.runs[self.runs[name]["base"]]
        return float(((base["config"].get("mixture") or {}).get("exposure") or {}).get(axis, 0.0))


def eval_splits(rec: Records) -> list[str]:
    """The splits the records were evaluated on: id, the OOD axes, edge, then any other."""
    splits = []
    for df in rec.counts.values():
        splits += [s for s in df["split"].unique() if s not in splits]
    order = ["id", *OOD_SPLITS, "edge"]
    return sorted(splits, key=lambda s: order.index(s) if s in order else len(order))


def record_digest(folder: Path) -> str:
    """sha256 of a run's ``record.json`` (its per-problem files are covered by their own manifests)."""
    return hashlib.sha256((Path(folder) / RECORD).read_bytes()).hexdigest()
