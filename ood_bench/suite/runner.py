"""One run of a suite, base or post-training, to its record: pretrain or post-train (resuming a partial run
from its last checkpoint), evaluate (a base twice, for the null), and publish the compact record, written whole
and swapped in. The launchers (``launchers.py``) call ``execute`` per run; ``reproduction_line`` says whether a
re-run reproduced the committed record.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import phases
from ..config import build
from ..evaluation.examples import EXAMPLES, write_examples
from ..hookspecs import API_VERSION
from ..plugins import get_plugins
from ..storage.atomic import atomic_write_json
from ..storage.run_records import (
    RECORD,
    compact_eval,
    read_record,
    restore_checkpoint,
    same_results,
    save_weights,
    training_curves,
)
from ..training.provenance import environment
from .places import Places, fresh_folder
from .suite import RESULTS_VERSION, RunSpec


@dataclass
class RunOptions:
    progress: bool = False
    keep_samples: bool = False
    cpus: int = 2


def set_threads(cpus: int) -> None:
    torch.set_num_threads(max(1, cpus))


def eval_config_of(spec: RunSpec):
    # late: it loads pandas, which importing this module does not
    from ..evaluation.evaluate import EvalConfig

    return build(EvalConfig, spec.eval)


def base_checkpoint_for(base: RunSpec, where: Places, opts: RunOptions, restore: bool = True) -> Path:
    """The base's checkpoint in its work folder: there already, rebuilt from the published weights (when
    ``restore``: for the runs that start from it, never when the base run itself is re-run to reproduce
    it), or pretrained (the same seed and config give the same weights)."""
    # late: it loads pandas, which importing this module does not
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
    # late: it loads pandas, which importing this module does not
    from .eval_run import evaluate_checkpoint

    set_threads(opts.cpus)
    work = where.work / spec.name
    _claim_work_folder(work, spec.key)
    timings: dict[str, float] = {}
    record_src = work / ("pretrain_record.json" if spec.kind == "base" else "posttrain_record.json")
    # Written when training ends: if it is there and still the same afterwards, training ended in an earlier
    # invocation (one that is there but rewritten is a stale record of a run trained again here).
    record_before = record_src.read_bytes() if record_src.is_file() else None
    before = phases.seconds()
    t0 = time.perf_counter()
    if spec.kind == "base":
        with phases.phase("pretrain"):
            ckpt = base_checkpoint_for(spec, where, opts, restore=False)
    else:
        # late: it loads pandas, which importing this module does not
        from ..training.posttrain import PostTrainConfig, posttrain

        with phases.phase("posttrain"):
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
    ecfg = eval_config_of(spec)
    t1 = time.perf_counter()
    with phases.phase("eval"):
        summary = evaluate_checkpoint(ckpt, ecfg, 0, work / "eval", opts.progress)
        if spec.kind == "base":
            evaluate_checkpoint(ckpt, ecfg, spec.identity["null_seed"], work / "eval-null", opts.progress)
    timings["eval"] = round(time.perf_counter() - t1, 2)
    with phases.phase("records"):
        return _publish(
            spec, base, suite_name, where, opts, work, ckpt, counters, steps, timings, summary, record_src, before
        )


def _publish(
    spec, base, suite_name, where, opts, work, ckpt, counters, steps, timings, summary, record_src, before
) -> dict:
    """Write the run's compact record and swap it in beside the one it replaces (saying whether it reproduced)."""
    # late: it loads pandas, which importing this module does not
    from ..storage.eval_records import replace_folder

    target = where.records / spec.name
    previous = target.with_name(f".{spec.name}.previous")
    if previous.exists():
        shutil.rmtree(previous)
    earlier = read_record(target)
    if earlier and earlier["key"] == spec.key:  # the same run, published before: did it reproduce?
        shutil.copytree(target, previous)
    fresh = fresh_folder(target)
    compact_eval(work / "eval", fresh / "eval", opts.keep_samples)
    write_examples(work / "eval", fresh / EXAMPLES)  # a few sample texts for the page's drill-down
    if spec.kind == "base":
        compact_eval(work / "eval-null", fresh / "null", opts.keep_samples)
        save_weights(ckpt, where.weights(spec.name))
    else:
        (fresh / "curves.csv").write_text(training_curves(work))
    # Each phase's own seconds in this run (ood_bench.phases): where its time went, for `run --profile`
    timings["phases"] = phases.since(before)
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
