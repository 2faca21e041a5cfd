"""Where a suite's runs go: one after another in this process, each a Ray task (a local or joined cluster), or
each a Slurm job through submitit. Every launcher runs bases before the runs that start from them and prints a
progress line per run, with whether it reproduced the committed record.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

from ..errors import OodBenchError
from .estimates import clock, estimate_seconds, measured_rates
from .memory import release_memory
from .places import Places, adopt_from_parents
from .quiet import quiet_third_party
from .runner import RunOptions, base_checkpoint_for, execute, reproduction_line
from .suite import RunSpec, SuiteConfig


def run_local(
    todo: list[RunSpec],
    specs: dict[str, RunSpec],
    suite: SuiteConfig,
    where: Places,
    opts: RunOptions,
    estimates: dict[str, float],
    say=print,
) -> list[dict]:
    """One run after another in this process, bases first; a progress line before each."""
    done, start = [], time.perf_counter()
    left = sum(estimates.values())
    for i, spec in enumerate(todo, 1):
        elapsed = time.perf_counter() - start
        say(
            f"[{i}/{len(todo)}] {spec.name} ({_what(spec)}) · elapsed {clock(elapsed)} · estimated left {clock(left)}",
            flush=True,
        )
        record = execute(spec, specs.get(spec.base), suite.name, where, opts)
        release_memory()
        left = max(0.0, left - estimates[spec.name])
        done.append(record)
        _say_reproduced(record, say)
    return done


def _what(spec: RunSpec) -> str:
    if spec.kind == "base":
        return f"pretrain {spec.config['train']['max_steps']} steps, evaluate twice"
    return f"{spec.config['algorithm']} on {spec.split}, {spec.config['budget']['grad_steps']} steps, evaluate"


def _say_finished(record: dict, count: int, total: int, on: str, start: float, left: float, say) -> None:
    """The progress line of a launcher that learns of runs as they finish elsewhere (Ray, Slurm)."""
    say(
        f"[{count}/{total}] {record['name']} finished on {on} · elapsed {clock(time.perf_counter() - start)} · "
        f"estimated left (serial) {clock(left)}",
        flush=True,
    )
    _say_reproduced(record, say)


def _say_reproduced(record: dict, say) -> None:
    line = reproduction_line(record)
    if line:
        say(f"    {record['name']}: {line}", flush=True)


def run_ray(
    todo: list[RunSpec],
    specs: dict[str, RunSpec],
    suite: SuiteConfig,
    where: Places,
    opts: RunOptions,
    estimates: dict[str, float],
    say=print,
    address: str | None = None,
) -> list[dict]:
    """Each run a Ray task asking for the suite's resources; a post run's task takes its base's task as an
    argument, so Ray starts it only once that base is finished. ``RAY_ADDRESS`` (or ``address``) joins a
    running cluster; otherwise Ray starts a local one."""
    try:
        # late: an optional dependency, needed only here
        import ray
    except ImportError:
        raise OodBenchError("--launcher ray needs Ray: pip install 'ood-bench[ray]'") from None
    if not ray.is_initialized():
        ray.init(
            address=address or os.environ.get("RAY_ADDRESS") or None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    task = ray.remote(_remote_task).options(num_cpus=suite.resources.cpus, num_gpus=suite.resources.gpus, max_retries=0)
    remote_opts = dataclasses.replace(opts, progress=False)
    _ready_done_bases(todo, specs, where, opts)
    refs: dict[str, object] = {}
    for spec in todo:  # bases come first in the grid
        after = refs.get(spec.base)  # an ObjectRef argument: Ray waits for it
        refs[spec.name] = task.remote(spec, specs.get(spec.base), suite.name, where, remote_opts, after)
    pending = list(refs.values())
    names = {ref: name for name, ref in refs.items()}
    done, start = [], time.perf_counter()
    left = sum(estimates.values())
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        record = ray.get(ready[0])
        left = max(0.0, left - estimates[names[ready[0]]])
        done.append(record)
        _say_finished(record, len(done), len(todo), "Ray", start, left, say)
    return done


def run_slurm(
    todo: list[RunSpec],
    specs: dict[str, RunSpec],
    suite: SuiteConfig,
    where: Places,
    opts: RunOptions,
    estimates: dict[str, float],
    say=print,
    cluster: str | None = None,
) -> list[dict]:
    """Each run a Slurm job through submitit, asking for the suite's ``resources`` (plus any submitit
    parameters under ``resources.slurm``): the bases as one wave of jobs, then the runs that start from them.

    ``cluster`` (or ``OOD_BENCH_SUBMITIT_CLUSTER``) is submitit's cluster: ``slurm`` by default; ``local`` runs
    the jobs as processes of this machine, to try a suite before a cluster sees it. The work and record
    folders must be on a file system the nodes share; job logs go to ``<work>/slurm/``."""
    try:
        # late: an optional dependency, needed only here
        import submitit

        # late: an optional dependency, needed only here
        from submitit.helpers import as_completed
    except ImportError:
        raise OodBenchError("--launcher slurm needs submitit: pip install 'ood-bench[slurm]'") from None
    cluster = cluster or os.environ.get("OOD_BENCH_SUBMITIT_CLUSTER") or "slurm"
    res = suite.resources
    try:
        executor = submitit.AutoExecutor(folder=where.work / "slurm" / "%j", cluster=cluster)
        executor.update_parameters(
            name=f"ood-bench-{suite.name}",
            nodes=1,
            tasks_per_node=1,
            cpus_per_task=res.cpus,
            gpus_per_node=math.ceil(res.gpus),
            **res.slurm,
        )
    except (ValueError, TypeError, NameError, RuntimeError) as exc:  # no sbatch here, or a parameter it does not take
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OodBenchError(
            f"--launcher slurm (submitit cluster {cluster!r}, resources.slurm {res.slurm}): {first}"
        ) from None
    remote_opts = dataclasses.replace(opts, progress=False)
    _ready_done_bases(todo, specs, where, opts)
    done, start = [], time.perf_counter()
    left = sum(estimates.values())
    for wave in ([s for s in todo if s.kind == "base"], [s for s in todo if s.kind == "post"]):
        jobs = {}
        for spec in wave:
            if "timeout_min" not in res.slurm:
                executor.update_parameters(timeout_min=job_minutes(estimates[spec.name]))
            jobs[executor.submit(_remote_task, spec, specs.get(spec.base), suite.name, where, remote_opts)] = spec
        if jobs:
            say(
                f"submitted {len(jobs)} {'bases' if wave[0].kind == 'base' else 'runs'} to {cluster} "
                f"(jobs {', '.join(str(j.job_id) for j in jobs)})",
                flush=True,
            )
        for job in as_completed(list(jobs)):
            spec = jobs[job]
            try:
                record = job.result()
            except Exception as exc:  # the job's own error, raised again here with its traceback
                lines = [ln for ln in str(exc).splitlines() if ln.strip()]
                raise OodBenchError(
                    f"{spec.name} failed on {cluster} ({lines[-1] if lines else type(exc).__name__});"
                    f" its log: {job.paths.stderr}"
                ) from None
            left = max(0.0, left - estimates[spec.name])
            done.append(record)
            _say_finished(record, len(done), len(todo), cluster, start, left, say)
    return done


def job_minutes(estimate_s: float) -> int:
    """The time limit a Slurm job asks for when ``resources.slurm.timeout_min`` does not say: three times the
    run's estimate on this machine (a node may be slower, or share its cores), and never under 30 minutes.
    Without one, submitit asks for its default (5 minutes on Slurm, 2 on its local cluster) and the job is
    killed part-way through a run that takes longer."""
    return max(30, math.ceil(3 * estimate_s / 60))


def _ready_done_bases(todo: list[RunSpec], specs: dict[str, RunSpec], where: Places, opts: RunOptions) -> None:
    """Bases that are done but whose checkpoint is not at hand are made ready here, in the driver, once, rather
    than by several of their runs at the same time (the work and record folders must be shared with the cluster)."""
    running = {s.name for s in todo}
    for name in sorted({s.base for s in todo if s.kind == "post" and s.base not in running}):
        base_checkpoint_for(specs[name], where, opts)


def _remote_task(spec, base, suite_name, where, opts, _after=None):
    """One run in a Ray worker or a Slurm job."""

    quiet_third_party()
    try:
        return execute(spec, base, suite_name, where, opts)
    finally:
        release_memory()  # Ray reuses its worker processes for later runs


LAUNCHERS = {"local": run_local, "ray": run_ray, "slurm": run_slurm}


def run_suite(
    suite: SuiteConfig,
    where: Places,
    rows: list[tuple[RunSpec, str]],
    grid: list[RunSpec],
    launcher: str = "local",
    opts: RunOptions | None = None,
    rates: dict | None = None,
    say=print,
) -> list[dict]:
    """Run a planned suite: what a parent suite published becomes this suite's records first, then every run
    marked ``todo`` in ``rows`` (``estimates.plan``) goes to the launcher, bases before the runs that start from
    them. ``grid`` is the suite's whole grid (``suite.expand``: a post run's base may be done already). Returns
    the records made; the leaderboard is the caller's to write (``board.suite_board.write``)."""
    if launcher not in LAUNCHERS:
        raise OodBenchError(f"unknown launcher {launcher!r} (choose from {', '.join(LAUNCHERS)})")
    opts = opts or RunOptions(cpus=suite.resources.cpus)
    adopt_from_parents([s for s, st in rows if st == "parent"], where, suite.name)
    todo = [s for s, st in rows if st == "todo"]
    rates = rates or measured_rates(where)
    estimates = {s.name: estimate_seconds(s, rates) for s in todo}
    return LAUNCHERS[launcher](todo, {s.name: s for s in grid}, suite, where, opts, estimates, say=say)
