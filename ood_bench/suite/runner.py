"""Run a suite: every base and post run of its grid that has no record yet, locally, on Ray or on Slurm.

Work (checkpoints, logs, full evaluations) goes to ``runs/<suite>/<run>/``; each
finished run's compact record goes to ``leaderboards/<suite>/records/<run>/``,
written whole and swapped in. A run is skipped when a record with its key exists
in its work folder (finished on this machine) or, when the suite reuses published
records (or ``--with`` adds rows to a published suite), in the published folder.
Bases run before the runs that start from them; an interrupted run resumes from
its last checkpoint when the suite is run again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import OodBenchError
from ..storage.atomic import atomic_write_json
from ..storage.run_records import (
    RECORD,
    compact_eval,
    read_record,
    restore_checkpoint,
    same_results,
    save_weights,
    train_wall_seconds,
    training_curves,
)
from .memory import release_memory
from .suite import RESULTS_VERSION, RunSpec, SuiteConfig

# Seconds per unit on a 2-core CPU (measured: quick pretraining 2000 steps in ~400 s, GRPO ~1.7 s per step of
# 32 prompts x 8 on OOD prompts, SFT ~0.3 s, an evaluation ~1.3 ms per problem-sample), used by --dry-run and the
# progress line until the suite's own records give better figures.
DEFAULT_RATES = {"pretrain_step": 0.2, "post_step": 1.7, "sft_step": 0.3, "eval_sample": 0.0013, "overhead": 6.0}


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
            fresh = _fresh(target)
            shutil.copytree(source, fresh, dirs_exist_ok=True)
            record = read_record(fresh)
            record["adopted_from"] = record.get("adopted_from") or record.get("suite")
            record["suite"] = suite_name
            atomic_write_json(fresh / RECORD, record)
            from ..storage.results import replace_folder

            replace_folder(fresh, target)
        weights = source.parent.parent / "bases" / f"{spec.name}.safetensors"
        if spec.kind == "base" and not where.weights(spec.name).is_file():
            where.weights(spec.name).parent.mkdir(parents=True, exist_ok=True)
            tmp = where.weights(spec.name).with_name(f".{spec.name}.safetensors.tmp")
            shutil.copyfile(weights, tmp)
            tmp.replace(where.weights(spec.name))


# ----------------------------------------------------------------------------- estimates


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
    from .suite import RESULTS_VERSION

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
            current = rec.get("results_version", RESULTS_VERSION) == RESULTS_VERSION
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
        kind = "pretrain_step" if rec["kind"] == "base" else "sft_step" if rec.get("algorithm") == "sft" else "post_step"
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


def plan(specs: list[RunSpec], where: Places, reuse_published: bool) -> list[tuple[RunSpec, str]]:
    """Each run with what happens to it: todo, done (here), published or parent (adopted)."""
    return [(s, status(s, where, reuse_published)) for s in specs]


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


# ----------------------------------------------------------------------------- one run


@dataclass
class RunOptions:
    progress: bool = False
    keep_samples: bool = False
    cpus: int = 2


def _set_threads(cpus: int) -> None:
    import torch

    torch.set_num_threads(max(1, cpus))


def _eval_config(spec: RunSpec):
    from ..config import build
    from ..evaluation.evaluate import EvalConfig

    return build(EvalConfig, spec.eval)


def base_checkpoint_for(base: RunSpec, where: Places, opts: RunOptions, restore: bool = True) -> Path:
    """The base's checkpoint in its work folder: there already, rebuilt from the published weights (when
    ``restore``: for the runs that start from it, never when the base run itself is re-run to reproduce
    it), or pretrained (the same seed and config give the same weights)."""
    from ..config import build
    from ..training.pretrain import PretrainConfig, pretrain

    work = where.work / base.name
    ckpt = work / "base.ckpt"
    if ckpt.is_file():
        return ckpt
    weights = where.weights(base.name)
    published = read_record(where.records / base.name)
    if restore and weights.is_file() and published and published["key"] == base.key:
        restore_checkpoint(weights, ckpt)
        return ckpt
    if restore and published and published["key"] == base.key:
        print(
            f"    {base.name}: no published weights, so it is pretrained again (the same seed and config give "
            f"the same weights)",
            flush=True,
        )
    cfg = build(PretrainConfig, {**base.config, "out_dir": str(work)})
    return pretrain(cfg, progress=opts.progress)


def execute(spec: RunSpec, base: RunSpec | None, suite_name: str, where: Places, opts: RunOptions) -> dict:
    """Run one base or post run to its record (resuming a partial one); returns the record."""
    from ..storage.results import replace_folder
    from .eval_run import evaluate_checkpoint

    _set_threads(opts.cpus)
    work = where.work / spec.name
    _claim_work_folder(work, spec.key)
    timings: dict[str, float] = {}
    record_src = work / ("pretrain_record.json" if spec.kind == "base" else "posttrain_record.json")
    # Written when training ends: if it is there and still the same afterwards, training ended in an earlier
    # invocation (one that is there but rewritten is a stale record of a run trained again here).
    record_before = record_src.read_bytes() if record_src.is_file() else None
    t0 = time.perf_counter()
    if spec.kind == "base":
        ckpt = base_checkpoint_for(spec, where, opts, restore=False)
    else:
        from ..config import build
        from ..training.posttrain import PostTrainConfig, posttrain

        base_ckpt = base_checkpoint_for(base, where, opts)
        cfg = build(PostTrainConfig, {**spec.config, "base": str(base_ckpt), "out_dir": str(work)})
        cfg.validate()
        ckpt = posttrain(cfg, progress=opts.progress)
    timings["train"] = round(time.perf_counter() - t0, 2)
    record_after = record_src.read_bytes() if record_src.is_file() else None
    trained = json.loads(record_after) if record_after is not None else {}
    if spec.kind == "base":
        steps = trained.get("global_step") or spec.config["train"]["max_steps"]
        counters = {
            "grad_steps": steps,
            "train_tokens": trained.get("tokens_seen"),
            "num_params": trained.get("num_params"),
        }
    else:
        counters = trained.get("counters") or {}
        steps = counters.get("grad_steps", 0)
    if record_after is not None:  # a run resumed or skipped here: the training time its own record measured
        timings["train_recorded"] = trained.get("wall_seconds_this_session")
        # Training done by earlier invocations, which "train" (this invocation's) leaves out: all of it when
        # the run had finished training before, else the sessions before this one's resume.
        timings["train_earlier"] = (
            (trained.get("train_seconds") or trained.get("wall_seconds_this_session") or 0.0)
            if record_after == record_before
            else trained.get("train_seconds_earlier", 0.0)
        )
    ecfg = _eval_config(spec)
    t1 = time.perf_counter()
    summary = evaluate_checkpoint(ckpt, ecfg, 0, work / "eval", opts.progress)
    if spec.kind == "base":
        evaluate_checkpoint(ckpt, ecfg, spec.identity["null_seed"], work / "eval-null", opts.progress)
    timings["eval"] = round(time.perf_counter() - t1, 2)

    target = where.records / spec.name
    previous = target.with_name(f".{spec.name}.previous")
    if previous.exists():
        shutil.rmtree(previous)
    earlier = read_record(target)
    if earlier and earlier["key"] == spec.key:  # the same run, published before: did it reproduce?
        shutil.copytree(target, previous)
    fresh = _fresh(target)
    compact_eval(work / "eval", fresh / "eval", opts.keep_samples)
    if spec.kind == "base":
        compact_eval(work / "eval-null", fresh / "null", opts.keep_samples)
        save_weights(ckpt, where.weights(spec.name))
    else:
        (fresh / "curves.csv").write_text(training_curves(work))
    record = _record(spec, base, suite_name, counters, steps, timings, summary, work, record_src)
    atomic_write_json(fresh / RECORD, record)
    atomic_write_json(work / RECORD, record)  # finished on this machine; `status` counts it done once published
    replace_folder(fresh, target)
    if previous.exists():
        record["reproduced"] = same_results(previous, target)
        shutil.rmtree(previous)
    elif earlier:
        record["replaced"] = earlier["key"]
    if earlier:  # what the committed record was made with, for the message on whether this one reproduced it
        record["committed"] = {k: earlier.get(k) for k in ("cpu", "precision", "base_precision", "engine", "config")}
    return record


def _claim_work_folder(work: Path, key: str) -> None:
    """A run's work folder holds one key's checkpoints: one left by an earlier config of the same run
    name (its key differs) is removed, rather than refused by the training lifecycle or resumed from."""
    marker = work / "key"
    if marker.is_file() and marker.read_text().strip() != key:
        print(
            f"    {work.name}: removing the work folder of an earlier config (key {marker.read_text().strip()})",
            flush=True,
        )
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(key + "\n")


def _fresh(target: Path) -> Path:
    """A fresh folder beside a record folder (records hold record.json, not eval.json)."""
    fresh = target.with_name(f".{target.name}.partial-{os.getpid()}")
    if fresh.exists():
        shutil.rmtree(fresh)
    fresh.mkdir(parents=True)
    return fresh


def _record(
    spec: RunSpec,
    base: RunSpec | None,
    suite_name: str,
    counters: dict,
    steps: int,
    timings: dict,
    summary,
    work: Path,
    record_src: Path,
) -> dict:
    from ..hookspecs import API_VERSION
    from ..plugins import get_plugins
    from ..training.provenance import environment

    plugins = get_plugins()
    run_record = json.loads(record_src.read_text()) if record_src.is_file() else {}
    env = environment()
    commit = env["code_version"]
    out = {
        "kind": spec.kind,
        "name": spec.name,
        "key": spec.key,
        "results_version": RESULTS_VERSION,
        "suite": suite_name,
        "identity": spec.identity,
        "config": {**spec.config, "out_dir": None, "base": None}
        if spec.kind == "post"
        else {**spec.config, "out_dir": None},
        "eval_config": spec.eval,
        "base": spec.base,
        "row": spec.row,
        "split": spec.split,
        "exposure": spec.exposure,
        "mixture": spec.mixture,
        "seed": spec.seed,
        "sampling_seeds": {"eval": 0, **({"null": spec.identity["null_seed"]} if spec.kind == "base" else {})},
        "task_versions": spec.identity.get("task_versions"),
        "git_commit": commit.removesuffix("-dirty"),
        "git_dirty": commit.endswith("-dirty"),
        "steps": steps,
        "counters": counters,
        "timings": timings,
        "metrics": summary.to_dict(orient="records"),
        # resolved (never auto), with the CPU from `env`: what a re-run must match to give the same bytes
        "precision": precision_of(spec.config),
        **({"base_precision": precision_of(base.config)} if base is not None else {}),
        "files": {"eval": "eval/", **({"null": "null/"} if spec.kind == "base" else {"curves": "curves.csv"})},
        **{k: v for k, v in env.items() if k != "code_version"},
    }
    if spec.kind == "post":
        out["algorithm"] = spec.config["algorithm"]
        out["algorithm_config"] = run_record.get("algorithm_config")
        for k in ("objective", "stopped"):  # new records only; did_train reads the objective's direction
            if k in run_record:
                out[k] = run_record[k]
        owner = plugins.algorithm_owner(spec.config["algorithm"])
        info = plugins.info.get(owner)
        out["plugin"] = {
            "name": owner,
            "version": getattr(info, "version", None),
            "distribution": getattr(info, "distribution", None),
        }
    # New records only (a field added, the key unchanged): which plugin API the run was made under.
    out["plugin_api"] = API_VERSION
    return out


# ----------------------------------------------------------------------------- launchers


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


def precision_of(config: dict | None) -> str | None:
    """The training precision in a run's (or a record's) config."""
    trainer = (config or {}).get("trainer")
    return None if not isinstance(trainer, dict) else str(trainer.get("precision", "32-true"))


def made_with(record: dict) -> dict:
    """What a record's numbers were made with: the CPU capability (e.g. AVX512, with "bf16 emulated" where that
    applies), the precision and, for a post run, its base's, and the decode engine (eager or kernel). None for
    what a record does not say (records made before these were stamped name no CPU, base precision or engine)."""
    cpu = record.get("cpu") if isinstance(record.get("cpu"), dict) else {}
    precision = record.get("precision") or precision_of(record.get("config"))
    cap = cpu.get("capability")
    if cap and str(precision).startswith("bf16") and cpu.get("bf16_native") is False:
        cap += " (bf16 emulated)"  # oneDNN's emulation rounds otherwise than the native instructions
    return {
        "cpu": cap,
        "precision": precision,
        "base": record.get("base_precision"),
        "engine": record.get("engine"),
        "threads": record.get("threads"),
    }


def _label(made: dict, engine: bool = False, threads: bool = False) -> str:
    base = f" on a {made['base']} base" if made["base"] else ""
    decoding = f" ({made['engine']} decoding)" if engine else ""  # named only where the two records' differ
    split = f" on {made['threads']} thread{'s' if made['threads'] != 1 else ''}" if threads else ""
    return f"{made['cpu'] or 'an unrecorded CPU'}/{made['precision']}{base}{decoding}{split}"


def reproduction_line(record: dict) -> str | None:
    """Whether a re-run reproduced the committed record, claimed or denied only where it could: bytes reproduce
    on the same kind of CPU (PyTorch's capability) and precision; across either, the line says so instead."""
    if "committed" not in record:
        return None
    then, now = made_with(record["committed"]), made_with(record)
    if any(then[k] and now[k] and then[k] != now[k] for k in then):
        engine = bool(then["engine"] and now["engine"] and then["engine"] != now["engine"])
        threads = bool(then["threads"] and now["threads"] and then["threads"] != now["threads"])
        line = (
            f"committed record made on {_label(then, engine, threads)}, this run {_label(now, engine, threads)}: "
            "not comparable bit for bit"
        )
        if "replaced" in record:
            return f"{line}; this record replaced it (its key was {record['replaced']})"
        return line + (" (yet every file came out the same)" if record.get("reproduced") else "")
    if "replaced" in record:
        return f"replaced a record of another config (key {record['replaced']})"
    if record.get("reproduced"):
        return "reproduced the committed record exactly"
    if not then["cpu"]:  # an older record names no CPU, so the difference may be the CPU's alone
        return (
            "DIFFERS from the committed record (see git diff); that record does not name the CPU that made "
            "it, and bytes reproduce only on the same kind of CPU"
        )
    return "DIFFERS from the committed record (see git diff)"


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
        import submitit
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
        jobs = {
            executor.submit(_remote_task, spec, specs.get(spec.base), suite.name, where, remote_opts): spec
            for spec in wave
        }
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


def _ready_done_bases(todo: list[RunSpec], specs: dict[str, RunSpec], where: Places, opts: RunOptions) -> None:
    """Bases that are done but whose checkpoint is not at hand are made ready here, in the driver, once, rather
    than by several of their runs at the same time (the work and record folders must be shared with the cluster)."""
    running = {s.name for s in todo}
    for name in sorted({s.base for s in todo if s.kind == "post" and s.base not in running}):
        base_checkpoint_for(specs[name], where, opts)


def _remote_task(spec, base, suite_name, where, opts, _after=None):
    """One run in a Ray worker or a Slurm job."""
    from .quiet import quiet_third_party

    quiet_third_party()
    try:
        return execute(spec, base, suite_name, where, opts)
    finally:
        release_memory()  # Ray reuses its worker processes for later runs


def select(specs: list[RunSpec], rows: list[str] | None) -> list[RunSpec]:
    """Only the post runs of ``rows`` (and every base, whose status decides whether it runs)."""
    if not rows:
        return specs
    return [s for s in specs if s.kind == "base" or s.row in rows]


def has_published(spec: RunSpec, where: Places) -> bool:
    """A base whose record and weights are published with this key (shared by rows added later)."""
    published = read_record(where.records / spec.name)
    return bool(published and published["key"] == spec.key and where.weights(spec.name).is_file())


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
