"""How long a suite's runs will take: seconds per step and per evaluated sample, read from the records a
suite (or the suite it extends) already has, the plan of what runs, and the line that says where the rates
came from. ``ood-bench run --dry-run`` prints them; the launchers count down with them.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass

from ..errors import OodBenchError
from ..storage.run_records import (
    read_record,
    train_wall_seconds,
)
from . import suite as suites  # called through the module, so a stand-in is used
from .places import Places, status
from .suite import RunSpec

# Seconds per unit, the --dry-run estimate and the progress line's until the suite's own records (or those of
# the suite it extends) give this machine's figures: rough 2-core CPU rates (docs/suites.md has the measured
# ones, with the machine that made them).
DEFAULT_RATES = {"pretrain_step": 0.2, "post_step": 1.7, "sft_step": 0.3, "eval_sample": 0.0013, "overhead": 6.0}


@dataclass
class Rates:
    """Seconds per step of each kind (and per evaluated sample), and where each came from."""

    seconds: dict
    measured: list[str]  # kinds read from records rather than DEFAULT_RATES
    same_threads: list[str]  # kinds read from records made on the thread count asked for
    older: list[str]  # kinds read only from records of an earlier results version


def read_rates(where: Places, threads: int | None = None) -> Rates:
    """Seconds per step and per evaluated sample from the suite's own records when there are any, else from
    those of the nearest suite it extends that has some (the same machine's figures, most likely), in one
    pass over the records.

    Per kind, the records of this results version come first (an earlier version's recipe may step at
    another cost: version 1's GRPO sampled at temperature 1.0), then, with ``threads``, those made on that
    many threads (a plan that runs two runs at once on one thread each needs one-thread rates; a run on one
    thread of a two-core machine is slower than on two); records without a thread count fill what is left."""

    kinds = ("pretrain_step", "post_step", "sft_step", "eval_sample")
    found: dict[str, list[tuple[bool, bool, float]]] = {k: [] for k in kinds}
    for records in (where.records, *(p / "records" for p in where.parents)):
        if any(found.values()) or not records.is_dir():
            continue
        for folder in records.iterdir():
            try:
                rec = read_record(folder)
            except OodBenchError:
                continue
            if not rec:
                continue
            current = rec.get("results_version", suites.RESULTS_VERSION) == suites.RESULTS_VERSION
            same = threads is not None and rec.get("threads") == threads
            for kind, value in _record_rates(rec).items():
                found[kind].append((current, same, value))
    seconds, measured, same_threads, older = dict(DEFAULT_RATES), [], [], []
    for kind, values in found.items():
        if not values:
            continue
        for tier in ((True, True), (True, None), (None, True), (None, None)):
            chosen = [v for cur, sm, v in values if tier[0] in (None, cur) and tier[1] in (None, sm)]
            if chosen:
                break
        seconds[kind] = sum(chosen) / len(chosen)
        measured.append(kind)
        if tier[1]:
            same_threads.append(kind)
        if not any(cur for cur, _, _ in values):
            older.append(kind)
    return Rates(seconds, measured, same_threads, older)


def _record_rates(rec: dict) -> dict[str, float]:
    """One record's seconds per training step (of its kind) and per evaluated sample."""
    t = rec.get("timings") or {}
    steps = rec.get("steps") or 0
    out = {}
    if t.get("train") and steps:
        kind = (
            "pretrain_step" if rec["kind"] == "base" else "sft_step" if rec.get("algorithm") == "sft" else "post_step"
        )
        # post-training rates are per step of 32 prompts (estimate_seconds scales them to a run's own
        # prompts_per_step): a suite at 16 prompts would otherwise halve a 32-prompt suite's estimate
        prompts = (rec.get("config") or {}).get("prompts_per_step") or 32
        scale = 32 / prompts if kind != "pretrain_step" else 1.0
        out[kind] = train_wall_seconds(t) / steps * scale
    ev = rec.get("eval_config") or {}
    if t.get("eval") and ev.get("n_test") and ev.get("n_samples") and ev.get("splits"):
        n_evals = 2 if rec["kind"] == "base" else 1  # a base is evaluated again for the null
        samples = n_evals * len(ev["splits"]) * len(ev.get("families") or [0, 0]) * ev["n_test"] * ev["n_samples"]
        out["eval_sample"] = t["eval"] / samples
    return out


def measured_rates(where: Places, threads: int | None = None) -> dict:
    """The seconds of ``read_rates``: per step of each kind, per evaluated sample, and per run's overhead."""
    return read_rates(where, threads).seconds


def runs_at_once(launcher: str, cpus: int, cores: int | None = None) -> int:
    """How many runs a launcher keeps going at once on this machine: Ray started here packs
    ``cores // resources.cpus`` tasks; one after another (local), or a cluster's (Slurm, or Ray joining
    ``RAY_ADDRESS``), whose size this machine cannot see, counts as one."""
    if launcher != "ray" or os.environ.get("RAY_ADDRESS"):
        return 1
    return max(1, (cores or os.cpu_count() or 1) // max(1, cpus))


def estimate_seconds(spec: RunSpec, rates: dict) -> float:
    ev = spec.eval
    n_evals = 2 if spec.kind == "base" else 1
    eval_s = (
        n_evals
        * len(ev["splits"])
        * len(ev.get("families") or [0, 0])
        * ev["n_test"]
        * ev["n_samples"]
        * rates["eval_sample"]
    )
    if spec.kind == "base":
        return spec.config["train"]["max_steps"] * rates["pretrain_step"] + eval_s + rates["overhead"]
    per_step = rates["sft_step"] if spec.config["algorithm"] == "sft" else rates["post_step"]
    per_step *= spec.config["prompts_per_step"] / 32
    return spec.config["budget"]["grad_steps"] * per_step + eval_s + rates["overhead"]


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def plan(
    specs: list[RunSpec], where: Places, reuse_published: bool, reuse_runs: Collection[str] = ()
) -> list[tuple[RunSpec, str]]:
    """Each run with what happens to it: todo, done (here), published or parent (adopted). A run named in
    ``reuse_runs`` counts as published when its committed record has its key, whatever ``reuse_published`` says."""
    return [(s, status(s, where, reuse_published or s.name in reuse_runs)) for s in specs]


def format_plan(rows: list[tuple[RunSpec, str]], seconds: float) -> str:
    lines = [f"{'run':<34} {'kind':<5} {'key':<16} status"]
    for s, st in rows:
        lines.append(f"{s.name:<34} {s.kind:<5} {s.key:<16} {st}")
    todo = sum(st == "todo" for _, st in rows)
    inherited = sum(st == "parent" for _, st in rows)
    lines.append(
        f"\n{len(rows)} runs: {todo} to do, {len(rows) - todo} to skip "
        f"({sum(st == 'done' for _, st in rows)} done here, "
        f"{sum(st == 'published' for _, st in rows)} published"
        + (f", {inherited} published by the suite it extends" if inherited else "")
        + f"); estimated wall time on this machine {clock(seconds)}"
    )
    return "\n".join(lines)


def rates_source(rates: Rates, at_once: int = 1, threads: int | None = None) -> str:
    """The line under a plan that says where its rates came from (and when they are not a measurement)."""
    together = ""
    if at_once > 1:
        together = f"; {at_once} runs at once on {threads} thread{'s' if threads != 1 else ''} each, " + (
            f"at the rates of records made on {threads} for {', '.join(rates.same_threads)}"
            if rates.same_threads
            else f"but no record here was made on {threads}: the serial sum divided by {at_once}, not a measurement"
        )
    older = (
        f"; {', '.join(rates.older)} only from records of an earlier results version, whose recipe may cost another "
        f"amount per step"
        if rates.older
        else ""
    )
    if rates.measured:
        return (
            f"(estimate from this suite's own records, or else those of the suite it extends, for "
            f"{', '.join(rates.measured)}, defaults for the rest{together}{older}; on another "
            f"machine the estimate is off by its speed)"
        )
    return (
        f"(estimate from default rates measured on a 2-core CPU{together}; a suite's own records refine it as "
        f"they come)"
    )


def plan_seconds(rows: list[tuple[RunSpec, str]], rates: dict, at_once: int = 1) -> float:
    """Wall time of the runs to do: their serial sum at ``rates`` (``measured_rates`` at the runs' thread
    count), shared by ``at_once`` runs going together (a lower bound when few bases hold many runs: a post
    run waits for its base)."""
    return sum(estimate_seconds(s, rates) for s, st in rows if st == "todo") / max(1, at_once)
