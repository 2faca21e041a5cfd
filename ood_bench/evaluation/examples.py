"""A handful of sample texts per split, kept beside a run's record for the leaderboard page's drill-down.

A record keeps per-problem counts and exact log-probabilities, not texts (they would make the committed
records many times larger). The page still shows what the models wrote on a few problems: the first
``PER_SPLIT`` test problems of every family and split, the same problems for every run (a test set is a fixed
stream), with each run's first sample scored again by the family's verifier. Regenerated with the run.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data import TEST_SEED
from ..plugins import find_family
from ..storage.atomic import atomic_write_text
from ..tasks.base import checked_score

EXAMPLES = "examples.jsonl"
PER_SPLIT = 3
FIELDS = ("family", "split", "index", "uid", "prompt", "gold", "sample")


def example_rows(eval_dir: Path, per_split: int = PER_SPLIT) -> list[dict]:
    """The first ``per_split`` problems of each per-problem file of an evaluation folder (its test-set order),
    with the prompt, the gold completion, the first sample and whether that sample's answer and trace are
    right. An evaluation made without texts (a compacted record) gives none."""
    rows = []
    for path in sorted((Path(eval_dir) / "samples").glob("*.jsonl")):
        lines = path.read_text().splitlines()[:per_split]
        for r in map(json.loads, lines):
            if not all(k in r for k in FIELDS):
                return []
            family = find_family(r["family"])
            problem = family.generate(r["split"], TEST_SEED, int(r["index"]))
            if problem.uid != r["uid"]:  # another version of the family: its verdict would be on another problem
                raise ValueError(f"{path}: problem {r['index']} is {problem.uid} here, {r['uid']} in the file")
            s = checked_score(family, problem, r["sample"])
            rows.append({**{k: r[k] for k in FIELDS}, "answer_ok": bool(s.answer), "trace_ok": bool(s.trace)})
    return rows


def write_examples(eval_dir: Path, target: Path, per_split: int = PER_SPLIT) -> None:
    rows = example_rows(eval_dir, per_split)
    atomic_write_text(target, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_examples(path: Path) -> list[dict]:
    """A record's examples, or none when it has no file (records made before examples were kept)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
