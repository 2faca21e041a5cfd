"""Calibration data: each published base of a suite evaluated again at more sampling seeds.

A base's record holds two evaluations of one model, ``eval/`` (sampling seed 0)
and ``null/`` (the suite's ``null_seed``): one base-vs-base null per base. To
measure how often the leaderboard's intervals flag a change where there is none,
a reviewer needs many such nulls. ``ood-bench calibrate SUITE --sampling-seeds 2 3``
evaluates each published base exactly as the runner's null evaluation does (the
base's published weights, the suite's eval config and threads, the same
``evaluate_checkpoint`` and ``compact_eval``), only at other seeds, into
``leaderboards/<suite>/calibration/<base>/s<seed>/``: the format of
``records/<base>/null/``, which ``ood_bench.evaluation.support.load_counts`` reads. No
training; each seed folder is swapped in whole, and one already there (same
weights, eval config and seed) is skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import OodBenchError
from ..storage.atomic import atomic_write_text, writable_folder
from ..storage.checkpoints import CHECKSUM_KEY
from ..storage.eval_records import EVAL_RECORD, fresh_folder, replace_folder
from ..storage.run_records import compact_eval, read_record
from ..training.pretrain import load_base
from . import eval_run  # called through the module, so a stand-in is used
from .places import Places
from .runner import eval_config_of, set_threads
from .suite import RunSpec, SuiteConfig, expand

FOLDER = "calibration"


@dataclass
class Base:
    spec: RunSpec
    weights: Path
    loaded: tuple  # (model, config, checkpoint) as load_base gives them, read and verified once
    sha256: str


def check_seeds(seeds: list[int], suite: SuiteConfig) -> None:
    """Seeds that give new nulls: non-negative, distinct, and not those a base's record already holds."""
    taken = {0: "the sampling seed of every record's eval/", suite.eval.null_seed: "the null_seed of each base's null/"}
    if not seeds:
        raise OodBenchError("give at least one sampling seed (--sampling-seeds 2 3 4 5)")
    for seed in seeds:
        if seed < 0:
            raise OodBenchError(f"invalid sampling seed {seed}: must be >= 0")
        if seed in taken:
            raise OodBenchError(f"invalid sampling seed {seed}: it is {taken[seed]} (a copy of it is no new null)")
        if seeds.count(seed) > 1:
            raise OodBenchError(f"invalid sampling seeds: {seed} is given twice")


def published_bases(suite: SuiteConfig, where: Places) -> list[Base]:
    """Every base of the suite with published weights, each checked to be the base its record evaluated
    (one line if not, before any evaluation); none at all is an error too."""

    out = []
    for spec in (s for s in expand(suite) if s.kind == "base"):
        weights = where.weights(spec.name)
        if not weights.is_file():
            continue
        record = read_record(where.records / spec.name)
        if not record or record["key"] != spec.key:
            raise OodBenchError(
                f"{weights} has no record of this suite's config beside it ({where.records / spec.name}"
                f" {'holds another key' if record else 'is missing'}): run `ood-bench run "
                f"{suite.name}` first"
            )
        loaded = load_base(weights)  # its sha256 checked here, once
        sha = loaded[2][CHECKSUM_KEY]
        null = where.records / spec.name / "null" / EVAL_RECORD
        if not null.is_file() or json.loads(null.read_text()).get("checkpoint_sha256") != sha:
            raise OodBenchError(f"{weights} are not the weights its record's null/ evaluated; publish the suite again")
        out.append(Base(spec, weights, loaded, sha))
    if not out:
        raise OodBenchError(
            f"suite {suite.name!r} has no published bases ({where.published / 'bases'}/*.safetensors): "
            f"run `ood-bench run {suite.name}` first"
        )
    return out


def target(where: Places, base: str, seed: int) -> Path:
    return where.published / FOLDER / base / f"s{seed}"


def is_done(folder: Path, base: Base, seed: int) -> bool:
    """A seed folder already there for these weights, this eval config and seed (written whole, so complete)."""
    try:
        done = json.loads((folder / EVAL_RECORD).read_text())
    except (OSError, ValueError):
        return False
    return (done.get("seed"), done.get("checkpoint_sha256"), done.get("eval_config")) == (
        seed,
        base.sha256,
        eval_config_of(base.spec).__dict__,
    )


def evaluate_at(
    base: Base, seed: int, suite: SuiteConfig, where: Places, progress: bool, cpus: int | None = None
) -> Path:
    """One evaluation, as the runner's null: into the base's work folder, then compacted into its seed folder.
    ``cpus``: threads, the suite's by default like the runner's (the results do not depend on them: the quick
    base gives the same bytes at 1 and 2; on a shared machine one thread wastes far less time waiting)."""

    set_threads(cpus or suite.resources.cpus)
    work = where.work / base.spec.name / FOLDER / f"s{seed}"
    eval_run.evaluate_checkpoint(base.weights, eval_config_of(base.spec), seed, work, progress, base.loaded)
    out = target(where, base.spec.name, seed)
    fresh = fresh_folder(out)
    compact_eval(work, fresh)
    replace_folder(fresh, out)
    shutil.rmtree(work)  # the full evaluation (sample texts): a few MB each, of no further use
    return out


def calibrate(
    suite: SuiteConfig, seeds: list[int], where: Places, progress: bool = False, cpus: int | None = None, say=print
) -> list[Path]:
    """Evaluate every published base at every seed not yet done; a line per evaluation. Checks everything
    (seeds, bases, weights, the folder) before the first evaluation."""

    check_seeds(seeds, suite)
    if cpus is not None and cpus < 1:
        raise OodBenchError(f"invalid value --cpus={cpus}: must be >= 1")
    bases = published_bases(suite, where)
    writable_folder(where.published / FOLDER, "calibration folder", create=False)
    jobs = [(b, s) for b in bases for s in seeds]
    todo = [(b, s) for b, s in jobs if not is_done(target(where, b.spec.name, s), b, s)]
    say(
        f"suite {suite.name}: {len(bases)} published bases x {len(seeds)} seeds = {len(jobs)} evaluations, "
        f"{len(jobs) - len(todo)} already done",
        flush=True,
    )
    written, start = [], time.perf_counter()
    for i, (base, seed) in enumerate(todo, 1):
        t0 = time.perf_counter()
        written.append(evaluate_at(base, seed, suite, where, progress, cpus))
        write_readme(suite, where)
        say(
            f"[{i}/{len(todo)}] {base.spec.name} s{seed}: {time.perf_counter() - t0:.1f} s "
            f"(elapsed {time.perf_counter() - start:.0f} s) -> {written[-1]}",
            flush=True,
        )
        # late: the command line imports what a command needs only when it runs
        from .memory import release_memory

        release_memory()
    write_readme(suite, where)
    return written


def write_readme(suite: SuiteConfig, where: Places) -> Path:
    """``calibration/README.md``: what the folder is, what it holds now, and the command that remakes it."""

    root = where.published / FOLDER
    held = {
        b.name: sorted(
            int(s.name[1:])
            for s in b.iterdir()
            if s.name[:1] == "s" and s.name[1:].isdigit() and (s / EVAL_RECORD).is_file()
        )
        for b in sorted(root.iterdir())
        if b.is_dir() and not b.name.startswith(".")
    }
    seeds = sorted({s for v in held.values() for s in v})
    rows = "\n".join(f"| {name} | {' '.join(map(str, v))} |" for name, v in held.items())
    text = f"""# Calibration data of the {suite.name} suite

Each published base (`../bases/<base>.safetensors`) evaluated again at more sampling seeds, with no
training: the base-vs-base nulls on which a reviewer can measure how often the leaderboard's intervals
flag a change where there is none. Each `<base>/s<seed>/` is made exactly as the base's
`../records/<base>/null/` (sampling seed {suite.eval.null_seed}) is, by the same code, with the suite's eval
config, only at another sampling seed, and has its format: `eval.json` (config, seed, weights' sha256,
environment, summary, manifest) and `samples/<family>__<split>.csv` (per-problem counts `c`, `trace_c`,
`full_c` out of `n`, greedy verdicts and the exact gold log-probability). Read one with
`ood_bench.evaluation.support.load_counts("leaderboards/{suite.name}/calibration/<base>/s<seed>")`; the records give
seeds 0 (`eval/`) and {suite.eval.null_seed} (`null/`) of the same bases.

Regenerate (resumable; a seed folder already there is skipped):

    ood-bench calibrate {suite.name} --sampling-seeds {" ".join(map(str, seeds))}

On one machine the exact log-probabilities (`gold_logprob`) do not depend on the seed; the counts do.
These folders may come from another CPU than the records (each `eval.json` names its code, packages and
date), so compare log-probabilities with the records' to float rounding, not bit for bit: the quick
suite's base-e0-s0, evaluated again at seed 0 on an Intel Xeon, gave every count and greedy verdict of its
record (made on an AMD EPYC), its log-probabilities within 6e-5 (345 of 1200 bit for bit).

| base | sampling seeds |
|---|---|
{rows}
"""
    atomic_write_text(root / "README.md", text)
    return root / "README.md"
