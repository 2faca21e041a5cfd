"""The ``ood-bench`` command line.

Every user mistake surfaces as one line ``ood-bench: error: ...`` and exit status
2; a run interrupted with Ctrl-C says how to resume (rerun the same command).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import OodBenchError, RunInterrupted
from .faults import PluginFault
from .suite.quiet import quiet_third_party as _quiet_third_party

EXIT_USAGE = 2


def _plugins():
    """Load every plugin (a broken one shows as one warning line, see ``_one_line_plugin_warnings``)."""
    from .plugins import get_plugins

    return get_plugins()


class Terminated(BaseException):
    """SIGTERM outside training (training saves a checkpoint first and raises ``RunInterrupted``). A
    BaseException, like KeyboardInterrupt, so that no ``except Exception`` on its way takes it for a failure
    and carries on (the decode kernel's build did: a SIGTERM during it read as "kernel unavailable", exit 0)."""


def _sigterm_like_ctrl_c():
    """SIGTERM during an evaluation or a comparison ends it like Ctrl-C: one line, exit 143, and the
    evaluation's partial folder left for the next run to clear (Python's default ends silently)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, stop)  # the handler it replaced, restored when main returns


def _one_line_plugin_warnings() -> None:
    """A broken plugin, or a LOAD/DISABLE name that matches none, prints one line, whenever the
    plugins are loaded (a pretraining on built-in families never loads them)."""
    from .plugins import PluginWarning

    shown = warnings.showwarning
    if getattr(shown, "one_line_plugin_warnings", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PluginWarning):
            print(f"ood-bench: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show.one_line_plugin_warnings = True
    warnings.simplefilter("always", PluginWarning)
    warnings.showwarning = show


# ----------------------------------------------------------------------------- commands


def cmd_tasks(args) -> int:
    from .plugins import find_family

    tasks = _plugins().tasks
    names = args.family or tasks.names()
    for name in names:
        find_family(name)  # an unknown name, or a plugin that failed to register it, is one line
    if args.check:
        from .data import TEST_SET_SIZE, held_out_problems

        if not 1 <= args.check_problems <= TEST_SET_SIZE:
            raise OodBenchError(f"invalid value --check-problems={args.check_problems}: must be in 1..{TEST_SET_SIZE}")
        from .tasks.contract import check_family_fully

        for name in names:
            fam = tasks.get(name)
            others = [f for f in tasks if f.name != name]
            check_family_fully(fam, held_out_problems, per_split=args.check_problems, others=others)
            print(
                f"{name} v{fam.version}: keeps the task-family contract "
                f"({args.check_problems} problems per split: layout, scorer, meta, axes, held-out pairs, chance, "
                f"ood_repr symbols across families; test splits disjoint from id)"
            )
        return 0
    out = []
    for name in names:
        fam = tasks.get(name)
        examples = {s: fam.generate(s, 0, 0) for s in fam.splits}
        out.append(
            {
                **fam.describe(),
                "owner": tasks.owner(name),
                "splits": list(fam.splits),
                "examples": {s: {"prompt": p.prompt, "completion": p.completion} for s, p in examples.items()},
            }
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    # a terminal that cannot show the return symbol (PYTHONIOENCODING=ascii) gets a plain "\\n"
    try:
        "⏎".encode(sys.stdout.encoding or "utf-8")
        newline = "⏎"
    except (UnicodeEncodeError, LookupError):
        newline = "\\n"
    for fam in out:
        print(f"{fam['name']} v{fam['version']}  ({fam['owner']})  {fam['description']}")
        print(f"  splits: {', '.join(fam['splits'])}")
        for split, ex in fam["examples"].items():
            text = (ex["prompt"] + ex["completion"]).replace("\n", newline)
            print(f"  {split:<11} {text}")
        print()
    return 0


def _load_pretrain_config(config: str, overrides: list[str]):
    from .config import load_config
    from .training.pretrain import PretrainConfig

    return load_config(PretrainConfig, config, overrides)


def _print_config(resolved: dict) -> int:
    """The config a run would use, every default filled in, as YAML a user can save and pass back."""
    import yaml

    print(yaml.safe_dump(resolved, sort_keys=False, default_flow_style=False).rstrip())
    return 0


def cmd_pretrain(args) -> int:
    from .training.pretrain import pretrain

    cfg = _load_pretrain_config(args.config, args.overrides)
    if args.print_config:
        return _print_config(cfg.to_dict())
    path = pretrain(cfg, progress=not args.no_progress)
    print(f"base checkpoint: {path}")
    return 0


def _run_eval(ckpt_path: str, ecfg, seed: int, out_dir: Path, progress: bool, loaded=None) -> None:
    from .storage.results import format_table
    from .suite.eval_run import evaluate_checkpoint

    _plugins()
    df = evaluate_checkpoint(ckpt_path, ecfg, seed, out_dir, progress, loaded)
    print(format_table(df))
    print(f"\nresults: {out_dir / 'eval.json'}  per-problem counts: {out_dir / 'samples'}/")


def _compare_with_base(ckpt: dict, out_dir: Path, base_eval: Path | None = None) -> None:
    """After evaluating a post-trained checkpoint, compare it with its base's evaluation:
    ``--base-eval`` if given, else the ``eval/`` folder beside the base checkpoint, when the
    base was evaluated on the same problems at the same n."""
    from .evaluation.support import compare_evals
    from .storage.checkpoints import home_folder

    if base_eval is None:
        base = (ckpt.get("hyper_parameters", {}).get("posttrain") or {}).get("base")
        base_eval = home_folder(base) / "eval" if base else None
        if base_eval is None or not (base_eval / "samples").is_dir():
            return
    try:
        table = compare_evals(base_eval, out_dir)
    except OodBenchError as exc:
        print(f"\n(no support comparison with {base_eval}: {exc})")
        return
    _write_support(table, base_eval, out_dir, out_dir=out_dir)  # the evaluation's own new output folder


def _write_support(table, base_eval: Path, post_eval: Path, thresholds=None, out_dir: Path | None = None) -> None:
    """Print the comparison; write ``support.json`` and ``support.png`` into ``out_dir`` when one is given."""
    from .evaluation.support import Thresholds, format_support
    from .evaluation.support_record import write_support_record

    th = thresholds or Thresholds()
    print(f"\nsupport against the base ({base_eval})")
    print(format_support(table, th))
    if out_dir is not None:
        record, plot = write_support_record(table, base_eval, post_eval, th, out_dir)
        print(f"\nsupport: {record}  plot: {plot}")


def cmd_compare(args) -> int:
    from .evaluation.support import Thresholds, compare_evals

    th = Thresholds(outside=args.outside, inside=args.inside, solved=args.solved, fdr=args.fdr)
    table = compare_evals(args.base, args.post, th, null_dir=args.null)
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2))
        return 0
    # a comparison only reads its evaluations: it writes where --out says, never into a record folder
    _write_support(table, Path(args.base), Path(args.post), th, Path(args.out) if args.out else None)
    return 0


def cmd_leaderboard(args) -> int:
    from .board import leaderboard, suite_board

    name = args.records
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():  # a suite file: its leaderboard folder
        from .suite.suite import read_suite_file

        name = read_suite_file(name)["name"]
    root = leaderboard.resolve(name)
    if not suite_board.is_suite_folder(root) and any(root.glob("*/sweep.csv")):  # leaderboards/sweeps
        from .suite.sweep import stale as stale_sweeps

        stale = stale_sweeps(root)
        if stale:
            raise OodBenchError(f"sweep tables that differ from their sweep.csv: {', '.join(map(str, stale))}")
        print(f"{root}: sweep tables match their sweep.csv")
        return 0
    if not suite_board.is_suite_folder(root) and any(root.glob("bases/*.safetensors")):  # leaderboards/smoke
        from .storage.checkpoints import read_weights

        for weights in sorted(root.glob("bases/*.safetensors")):
            read_weights(weights)  # its state must hash to its recorded sha256, or this is one line
        print(f"{root}: published bases read and match their sha256 (no tables here)")
        return 0
    if suite_board.is_suite_folder(root):  # a suite's run records (leaderboards/<suite>/records/*/record.json)
        expected = suite_board.expected_keys(name, root)
        if args.check:
            changed = suite_board.changed_records(root)
            if changed:
                raise OodBenchError(
                    f"run records changed after the leaderboard was made: {', '.join(changed[:4])}"
                    f"{', ...' if len(changed) > 4 else ''} (an edit, or a run made again: see "
                    f"`git diff {root / 'records'}`); regenerate with `ood-bench leaderboard {name}`"
                )
            stale = suite_board.stale(root, args.allow_dirty, expected)
            if stale:
                raise OodBenchError(
                    f"stale leaderboard files: {', '.join(str(p) for p in stale)}; "
                    f"regenerate with `ood-bench leaderboard {args.records}`"
                )
            print(f"{root}: leaderboard tables and plots match their records")
            return 0
        print(suite_board.headline_text(root, args.allow_dirty, expected))
        print(f"\nwrote {suite_board.write(root, args.allow_dirty, expected)} and its csv, json, plots and index.html")
        return 0
    if args.check:
        stale = leaderboard.stale(root)
        if stale:
            names = ", ".join(str(p) for p in stale)
            raise OodBenchError(
                f"stale leaderboard files: {names}; regenerate with `ood-bench leaderboard {args.records}`"
            )
        print(f"{root}: leaderboard tables match their records")
        return 0
    for path in leaderboard.write(root):
        print(f"wrote {path}")
    return 0


def cmd_evaluate(args) -> int:
    from .config import build, deep_merge, parse_overrides
    from .evaluation.evaluate import EvalConfig
    from .training.pretrain import load_base

    _plugins()
    loaded = load_base(args.checkpoint)  # fail fast on a bad checkpoint, before any work
    _, cfg, _ = loaded
    data = dict(cfg.eval.__dict__)
    overrides = list(args.overrides)
    for name in ("splits", "families"):  # `--splits id eval.top_p=0.9`: the list option swallowed an override
        values = getattr(args, name)
        if values:
            overrides += [v for v in values if "=" in v]
            setattr(args, name, [v for v in values if "=" not in v] or None)
    given = parse_overrides(overrides)  # eval.top_p=0.9 eval.batch_size=128 ...
    extra = set(given) - {"eval"}
    if extra or not isinstance(given.get("eval", {}), dict):
        raise OodBenchError(
            f"evaluate takes only eval.KEY=VALUE overrides, not {', '.join(sorted(extra)) or 'eval=...'}"
        )
    data = deep_merge(data, given.get("eval", {}))
    for key, value in (
        ("splits", args.splits),
        ("families", args.families),
        ("n_samples", args.n),
        ("n_test", args.n_test),
        ("temperature", args.temperature),
    ):
        if value is not None:
            data[key] = value
    if args.base_eval is not None and not (Path(args.base_eval) / "eval.json").is_file():
        raise OodBenchError(f"--base-eval {args.base_eval!r} is not an evaluation folder (no eval.json)")
    if args.k is not None and args.k < 1:
        raise OodBenchError(f"invalid value k={args.k}: must be >= 1")
    if args.seed < 0:
        raise OodBenchError(f"invalid value --seed={args.seed}: must be >= 0")
    for key in ("splits", "families"):
        if isinstance(data.get(key), list) and len(set(data[key])) != len(data[key]):
            raise OodBenchError(f"invalid value {key}={data[key]}: a name is given twice")
    if args.k is not None and args.k > data["n_samples"]:
        raise OodBenchError(f"invalid value k={args.k}: pass@k needs n >= k, but n={data['n_samples']}")
    ecfg = build(EvalConfig, data, prefix="eval")
    ecfg.validate()
    from .data import check_context_holds

    tasks = _plugins().tasks
    check_context_holds(
        [tasks.get(f) for f in (ecfg.families or list(cfg.mixture.families))],
        ecfg.splits,
        cfg.model.block_size,
        ecfg.n_test,
        key="the checkpoint's model.block_size",
    )
    from .storage.checkpoints import home_folder

    out_dir = Path(args.out) if args.out else home_folder(args.checkpoint) / "eval"
    _run_eval(args.checkpoint, ecfg, args.seed, out_dir, not args.no_progress, loaded)
    _compare_with_base(loaded[2], out_dir, Path(args.base_eval) if args.base_eval else None)
    return 0


def cmd_failures(args) -> int:
    from .data import TEST_SET_SIZE, held_out_problems
    from .evaluation.failures import (
        BREAKDOWN_COLUMNS,
        FORMAT_COLUMNS,
        answer_probe,
        breakdown,
        by_k,
        format_rows,
        line_end_probe,
        sample_splits,
        start_copy_probe,
    )
    from .plugins import find_family
    from .tasks.base import SPLITS
    from .training.pretrain import load_base

    tasks = _plugins().tasks
    model, cfg, _ = load_base(args.checkpoint)
    names = args.families or [f for f, share in cfg.mixture.families.items() if share > 0]
    families = [find_family(n) for n in names]
    splits = args.splits or list(SPLITS)
    for split in splits:
        if split not in SPLITS:
            raise OodBenchError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    for name, value, lo, hi in (
        ("--n-test", args.n_test, 1, TEST_SET_SIZE),
        ("--n", args.n, 1, 1024),
        ("--max-new-tokens", args.max_new_tokens, 1, cfg.model.block_size),
    ):
        if not lo <= value <= hi:
            raise OodBenchError(f"invalid value {name}={value}: must be in {lo}..{hi}")
    if args.seed < 0:
        raise OodBenchError(f"invalid value --seed={args.seed}: must be >= 0")
    if not args.temperature > 0:
        raise OodBenchError(f"invalid value --temperature={args.temperature}: must be > 0 (greedy is always drawn too)")
    rows = sample_splits(
        model, families, splits, args.n_test, args.n, args.max_new_tokens, args.temperature, args.seed, list(tasks)
    )
    table = breakdown(rows)
    out = {"checkpoint": str(args.checkpoint), "breakdown": table, "probes": {}}
    print(f"failures of {args.checkpoint}: {args.n_test} problems x ({args.n} sampled + greedy) per split")
    print("\nfailed: share of samples with a wrong answer; each reason: its share of the failed ones; clean_stop:")
    print("share of the early stops whose lines were all right; capped: share of samples that hit the token cap\n")
    print(format_rows(table, BREAKDOWN_COLUMNS))
    print("\ntrace format: share of all samples whose step lines are all their own family's, or some another's\n")
    print(format_rows(table, FORMAT_COLUMNS))
    probes = out["probes"]
    if "graph" in names:
        graph = tasks.get("graph")
        problems = [
            p for s in ("id", "edge", "ood_length") if s in splits for p in held_out_problems(graph, s, args.n_test)
        ]
        probes["graph_start_copy"] = start_copy_probe(model, problems)
        print("\ngraph: copying the start node into the first trace line, by copy distance (tokens back)\n")
        print(format_rows(probes["graph_start_copy"]))
    if "string" in names:
        string = tasks.get("string")
        for split in [s for s in ("id", "ood_length") if s in splits]:
            rows_k = line_end_probe(model, held_out_problems(string, split, args.n_test))
            probes[f"string_line_end_{split}"] = rows_k
            print(f"\nstring {split}: probability of ending a state after k symbols, by gold state length")
            print("(teacher forced on the gold trace)\n")
            print(format_rows(by_k(rows_k, "p_end")))
    for name in names:
        if "ood_depth" in splits:
            rows_k = answer_probe(model, held_out_problems(tasks.get(name), "ood_depth", args.n_test))
            probes[f"{name}_answer_after_k_lines_ood_depth"] = rows_k
            print(f"\n{name} ood_depth: writing the answer after k gold lines instead of the next step\n")
            print(format_rows(rows_k))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**out, "samples": rows}, indent=1) + "\n")
    return 0


def cmd_run(args) -> int:
    from .suite import runner
    from .suite.suite import expand, load_suite, parse_shard, shard, with_row

    overrides = list(args.overrides)
    added = []
    if args.with_algo:
        knobs = [o for o in overrides if o.startswith("algo.")]
        overrides = [o for o in overrides if not o.startswith("algo.")]
        if overrides:  # the added row must run at the suite's published budget, from its published bases
            raise OodBenchError(
                f"with --with, give only algo.KEY=VALUE knobs: {' '.join(overrides)} would change the "
                f"suite the row is compared in (its bases, budget or evaluation)"
            )
        _plugins()
        added = [with_row(args.with_algo, knobs)]
        taken = [r.name for r in load_suite(args.suite).posttrain.rows]
        if added[0].name in taken:
            raise OodBenchError(
                f"--with {args.with_algo}: the suite already has a row named {added[0].name!r}; give "
                f"algo.KEY=VALUE knobs to add a variant of it"
            )
    suite = load_suite(args.suite, overrides, added)
    precision_line = _auto_precision_line(suite)
    if (added or suite.parents) and precision_line:
        suite, precision_line = _with_published_precision(suite, args, overrides, added, precision_line)
    if args.print_config:
        return _print_config(suite.to_dict())
    grid = expand(suite)
    specs = grid
    which = parse_shard(args.shard)
    if which:
        specs = shard(specs, *which)
    if added:
        specs = [s for s in specs if s.kind == "base" or s.row == added[0].name]
    where = runner.places(suite, args.work_root, args.publish_root)
    reuse = suite.reuse_published or bool(added)
    rows, seconds = runner.plan(specs, where, reuse)
    if added:  # only the new rows run: a published base is shared, not run again
        rows = [
            (s, "published" if s.kind == "base" and st == "todo" and runner.has_published(s, where) else st)
            for s, st in rows
        ]
        seconds = runner.plan_seconds(rows, where)
    if which and not specs:
        print(
            f"ood-bench: warning: shard {args.shard} holds no run (the suite has "
            f"{sum(s.kind == 'base' for s in grid)} bases, and a shard takes whole bases)",
            file=sys.stderr,
        )
    if args.dry_run:
        print(f"suite {suite.name}: {suite.description}")
        if precision_line:
            print(precision_line)
        print(runner.format_plan(rows, seconds))
        print(runner.rates_source(where))
        return 0
    from .storage.atomic import writable_folder

    # both checked before either is made: a refused run leaves no empty folder behind
    writable_folder(where.records, "records folder", create=False)
    writable_folder(where.work, "work folder", create=False)
    todo = [s for s, st in rows if st == "todo"]
    # the runs a parent suite published become this suite's records (and weights) before any run needs them
    runner.adopt_from_parents([s for s, st in rows if st == "parent"], where, suite.name)
    by_name = {s.name: s for s in grid}
    rates = runner.measured_rates(where)
    estimates = {s.name: runner.estimate_seconds(s, rates) for s in todo}
    print(
        f"suite {suite.name}: {len(rows)} runs, {len(todo)} to do, {len(rows) - len(todo)} skipped; "
        f"estimated {runner.clock(seconds)} on this machine",
        flush=True,
    )
    if precision_line:
        print(precision_line, flush=True)
    from .training.provenance import code_version

    if todo and code_version().endswith("-dirty"):
        print(
            "ood-bench: warning: this checkout has uncommitted changes to its code, so these records are marked "
            "dirty and `ood-bench leaderboard --check` refuses them (commit, then run again, or pass --allow-dirty)",
            file=sys.stderr,
            flush=True,
        )
    opts = runner.RunOptions(progress=not args.no_progress, keep_samples=args.keep_samples, cpus=suite.resources.cpus)
    launch = {"ray": runner.run_ray, "slurm": runner.run_slurm}.get(args.launcher, runner.run_local)
    launch(todo, by_name, suite, where, opts, estimates)
    from .board import suite_board

    keys = {s.name: s.key for s in grid}
    board = suite_board.write(where.published, allow_dirty=True, expected=keys)
    print()
    print(suite_board.headline_text(where.published, expected=keys))
    print(f"\nleaderboard: {board}")
    return 0


def _auto_precision_line(suite) -> str | None:
    """The bases' precision when the suite leaves it to the CPU (auto): which one, and why, since it decides the
    runs' keys (and so whether the committed records are this machine's to reproduce)."""
    from .config import deep_merge, read_yaml
    from .training.precision import AUTO, why_auto

    recipe = deep_merge(read_yaml(suite.bases.config), suite.bases.overrides)
    if str((recipe.get("trainer") or {}).get("precision")) == AUTO:
        return f"bases: {why_auto()}"
    return None


def _with_published_precision(suite, args, overrides, added, line: str):
    """--with adds a row against the published bases, and a suite that extends another reuses that one's, so
    there ``auto`` means the precision they were made in (unless OOD_BENCH_PRECISION says otherwise): on a CPU
    where auto would give another, the bases would get other keys, be pretrained again, and the rows would
    stand on other bases than the rows they are compared with."""
    from .storage.run_records import read_record
    from .suite import runner
    from .suite.suite import expand, load_suite
    from .training.precision import AUTO, ENV, env_precision

    if env_precision() != AUTO:
        return suite, line
    where = runner.places(suite, args.work_root, args.publish_root)
    bases = [s for s in expand(suite) if s.kind == "base"]
    made = set()
    for folder in (where.published, *where.parents):  # this suite's own records, else its nearest parent's
        made = {runner.precision_of((read_record(folder / "records" / s.name) or {}).get("config")) for s in bases}
        if made != {None}:
            break
    ours = {s.config["trainer"]["precision"] for s in bases}
    if len(made) != 1 or None in made or made == ours:
        return suite, line
    published = made.pop()
    suite = load_suite(args.suite, [*overrides, f"bases.overrides.trainer.precision={published}"], added)
    why = "--with adds its row against them" if added else f"{suite.name} reuses its parent's"
    return suite, (
        f"bases: trainer.precision auto -> {published}, the published bases' ({why}; {ENV}=32-true would "
        f"pretrain new ones)"
    )


def cmd_calibrate(args) -> int:
    from .suite.calibrate import calibrate
    from .suite.runner import places
    from .suite.suite import load_suite

    _plugins()
    suite = load_suite(args.suite)
    written = calibrate(
        suite,
        args.sampling_seeds,
        places(suite, args.work_root, args.publish_root),
        progress=not args.no_progress,
        cpus=args.cpus,
    )
    print(
        f"{len(written)} evaluations written; calibration data: {Path(args.publish_root) / suite.name / 'calibration'}/"
    )
    return 0


def cmd_plugins(args) -> int:
    from .api import API_VERSION

    plugins = _plugins()
    rows = []
    for info in plugins.info.values():
        rows.append(
            {
                "name": info.name,
                "version": info.version,
                "distribution": info.distribution,
                "module": info.module,
                "registers": info.registered,
                "error": info.error,
            }
        )
    if args.json:
        print(json.dumps({"ood_bench": __version__, "plugin_api": API_VERSION, "plugins": rows}, indent=2))
        return 0
    print(f"ood-bench {__version__}, plugin API {API_VERSION}")
    name_w = max(len(r["name"]) for r in rows) + 2
    dist_w = max(len(f"{r['distribution'] or '?'} {r['version'] or '?'}") for r in rows) + 2
    for r in rows:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["registers"].items()) or "nothing"
        status = f"  FAILED: {r['error']}" if r["error"] else ""
        dist = f"{r['distribution'] or '?'} {r['version'] or '?'}"
        print(f"{r['name']:<{name_w}}{dist:<{dist_w}}{what}{status}")
    return 0


def cmd_algorithms(args) -> int:
    plugins = _plugins()
    names = [args.name] if args.name else sorted(plugins.algorithms)
    out = []
    for name in names:
        cls = plugins.algorithm(name)
        docs = cls.knob_docs()
        out.append(
            {
                "name": name,
                "plugin": plugins.algorithm_owner(name),
                "description": cls.description,
                "config": [{"name": n, "type": t, "default": d, "doc": docs.get(n, "")} for n, t, d in cls.fields()],
            }
        )
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    for a in out:
        print(f"{a['name']}  (plugin {a['plugin']})  {a['description']}")
        for f in a["config"]:
            doc = f"  {f['doc']}" if args.name and f["doc"] else ""
            print(f"    algo.{f['name']:<20} {f['type']:<6} = {f['default']!r}{doc}")
        print()
    if not args.name:
        print("`ood-bench algorithms NAME` adds a line of documentation to each knob.")
    return 0


def cmd_sweep(args) -> int:
    from .suite.sweep import SweepSpec, parse_grid, points, run_sweep

    _plugins()
    if args.heldout < 0:
        raise OodBenchError(f"invalid --heldout {args.heldout}: must be >= 0")
    spec = SweepSpec(
        Path(args.out), args.base, args.algo, list(args.overrides), parse_grid(args.grid), heldout=args.heldout
    )
    points(spec)  # every point checked before any run starts
    argv = ["sweep", "--algo", args.algo, "--base", args.base, "--out", args.out]
    argv += [f"--grid {g}" for g in args.grid] + ([f"--heldout {args.heldout}"] if args.heldout else [])
    table = run_sweep(spec, argv + list(args.overrides), progress=not args.no_progress)
    print(
        f"sweep: {len(table)} points, {int(table['trained'].fillna(False).astype(bool).sum())} trained; {args.out}/README.md"
    )
    return 0


def cmd_posttrain(args) -> int:
    from .training.posttrain import default_out_dir, load_posttrain_config, posttrain

    _plugins()
    overrides = list(args.overrides)
    for key, value in (
        ("algorithm", args.algo),
        ("base", args.base),
        ("rl_split", args.rl_split),
        ("out_dir", args.out),
        ("seed", args.seed),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_posttrain_config(args.config, overrides, need_base=not args.print_config)
    if args.print_config:
        from .plugins import get_plugins
        from .training.algorithms import build_algorithm_config

        algo = build_algorithm_config(get_plugins().algorithm(cfg.algorithm), cfg.algo)
        # Every key, --base or not: the default out_dir lies beside the base, so without one it stays empty.
        out_dir = cfg.out_dir or (str(default_out_dir(cfg)) if cfg.base else "")
        if not cfg.base:
            print("ood-bench: note: no --base given; a run needs one (base: is empty below)", file=sys.stderr)
        return _print_config({**cfg.to_dict(), "out_dir": out_dir, "algo": dataclasses.asdict(algo)})
    path = posttrain(cfg, progress=not args.no_progress)
    steps = (
        json.loads((path.parent / "posttrain_record.json").read_text()).get("counters", {}).get("grad_steps")
        if (path.parent / "posttrain_record.json").is_file()
        else None
    )
    if steps == 0:
        print(
            f"post-trained checkpoint: {path} (but no gradient step was taken: every batch was skipped, so it "
            f"equals its base)"
        )
    else:
        print(f"post-trained checkpoint: {path}")
    return 0


def cmd_dev_check(args) -> int:
    from .config import parse_overrides
    from .suite.dev_check import DEFAULTS, EXIT_UNHEALTHY, default_base, dev_check, format_report
    from .training.posttrain import load_posttrain_config

    _plugins()
    given = parse_overrides(list(args.overrides))  # a malformed KEY=VALUE is one line, here
    for key, option in (("algorithm", "ALGO"), ("base", "--base"), ("out_dir", "--out"), ("seed", "--seed")):
        if key in given:
            raise OodBenchError(f"dev-check takes {key} as {option}, not as {key}=...")
    # the short defaults, unless the command line sets the same key
    keys = {o.split("=", 1)[0] for o in args.overrides}
    overrides = [f"{k}={v}" for k, v in DEFAULTS.items() if k not in keys] + list(args.overrides)
    base = args.base or str(default_base())
    overrides += [f"algorithm={args.algo}", f"base={base}", f"seed={args.seed}"]
    cfg = load_posttrain_config(None, overrides)  # every key and value checked before any compute
    from .plugins import get_plugins
    from .training.algorithms import build_algorithm_config
    from .training.pretrain import load_base

    build_algorithm_config(get_plugins().algorithm(cfg.algorithm), cfg.algo)  # an unknown algorithm or knob
    load_base(cfg.base)  # a missing or corrupt base
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OodBenchError(f"--out {args.out!r} is not an empty folder; dev-check writes a fresh run into one")
    if args.threads < 1:
        raise OodBenchError(f"invalid value --threads={args.threads}: must be >= 1")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        report = dev_check(cfg, progress=not args.no_progress, out=out)
    finally:
        torch.set_num_threads(threads)  # a caller's process (a test, a notebook) gets its own setting back
    print(format_report(report))
    return 0 if report.healthy else EXIT_UNHEALTHY


# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line like every other bad input (``--help`` still shows usage)."""

    def error(self, message: str):
        print(f"ood-bench: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from .evaluation.support import Thresholds

    p = _Parser(
        prog="ood-bench",
        description="Does post-training take a model beyond its pretraining support? "
        "Pretrain small transformers on controlled task mixtures, post-train, and measure.",
    )
    p.add_argument("--version", action="version", version=f"ood-bench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("tasks", help="list task families, their versions, splits and an example of each split")
    t.add_argument("--family", action="append", help="show only this family (repeatable)")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.add_argument(
        "--check",
        action="store_true",
        help="check each family against the task-family contract (exit 2 with one line if broken)",
    )
    t.add_argument("--check-problems", type=int, default=200, help="problems per split --check generates")
    t.set_defaults(func=cmd_tasks)

    pr = sub.add_parser("pretrain", help="pretrain a base model from scratch on a task mixture")
    pr.add_argument(
        "--config", default="quick", help="YAML config file, or the name of an embedded one (default: quick)"
    )
    pr.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides, e.g. train.max_steps=100 mixture.exposure.depth=0.1",
    )
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    pr.set_defaults(func=cmd_pretrain)

    ev = sub.add_parser("evaluate", help="evaluate a checkpoint on the held-out test splits")
    ev.add_argument(
        "--checkpoint",
        required=True,
        help="a base.ckpt (or any ood-bench checkpoint), or a suite's "
        "published base weights, leaderboards/<suite>/bases/<base>.safetensors",
    )
    ev.add_argument("--splits", nargs="+", help="splits to evaluate (default: the checkpoint config's)")
    ev.add_argument("--families", nargs="+", help="families to evaluate (default: those of its mixture)")
    ev.add_argument("--n", type=int, help="samples per problem for pass@k")
    ev.add_argument("--k", type=int, help="check that pass@K is computable (n >= K); all k <= n are reported")
    ev.add_argument("--n-test", type=int, help="test problems per split")
    ev.add_argument("--temperature", type=float, help="sampling temperature (greedy is always reported)")
    ev.add_argument("--seed", type=int, default=0, help="sampling seed")
    ev.add_argument(
        "--out",
        help="output folder (default: <checkpoint folder>/eval; for published weights runs/<suite>/<base>/eval)",
    )
    ev.add_argument(
        "--base-eval",
        metavar="DIR",
        help="for a post-trained checkpoint: the base's evaluation to "
        "compare with (default: the eval/ folder beside the base checkpoint, when it matches)",
    )
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.add_argument(
        "overrides",
        nargs="*",
        help="eval.KEY=VALUE, e.g. eval.top_p=0.9 eval.batch_size=128 "
        "(see `ood-bench pretrain --print-config` for the eval keys)",
    )
    ev.set_defaults(func=cmd_evaluate)

    fa = sub.add_parser(
        "failures",
        help="why a checkpoint's samples fail, per split: token cap, another family's format, stopping early, "
        "a wrong step, a miscopied answer; and probes of where it stops and copies",
    )
    fa.add_argument("--checkpoint", required=True, help="a checkpoint or published base weights (.safetensors)")
    fa.add_argument("--families", nargs="+", help="families (default: those of its mixture)")
    fa.add_argument("--splits", nargs="+", help="splits (default: all six)")
    fa.add_argument("--n-test", type=int, default=50, help="test problems per split (default: 50)")
    fa.add_argument("--n", type=int, default=4, help="sampled completions per problem, besides greedy (default: 4)")
    fa.add_argument("--max-new-tokens", type=int, default=128, help="decoding budget (default: 128, evaluation's)")
    fa.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    fa.add_argument("--seed", type=int, default=0, help="sampling seed")
    fa.add_argument("--json", metavar="FILE", help="also write the tables, probes and every sample here")
    fa.set_defaults(func=cmd_failures)

    pl = sub.add_parser("plugins", help="list loaded plugins: version, distribution, what each registers")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.set_defaults(func=cmd_plugins)

    al = sub.add_parser("algorithms", help="list post-training algorithms with their knobs and defaults")
    al.add_argument("name", nargs="?", help="one algorithm: also document each knob")
    al.add_argument("--json", action="store_true", help="machine-readable output")
    al.set_defaults(func=cmd_algorithms)

    po = sub.add_parser("posttrain", help="post-train a base checkpoint with a registered algorithm")
    po.add_argument("--algo", help="algorithm name (see `ood-bench algorithms`)")
    po.add_argument(
        "--base",
        help="base checkpoint to start from: a base.ckpt or published weights "
        "(leaderboards/<suite>/bases/<base>.safetensors)",
    )
    po.add_argument("--rl-split", help="split the training prompts come from: id, ood_*, or edge")
    po.add_argument("--config", help="YAML with post-training settings (a suite file's posttrain: section works)")
    po.add_argument("--out", help="output folder (default: <base folder>/posttrain/<algo>-<split>-s<seed>)")
    po.add_argument("--seed", type=int, help="seed of prompts and rollouts")
    po.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides: algo.beta=0.04 budget.grad_steps=50 prompts_per_step=16 ...",
    )
    po.add_argument("--no-progress", action="store_true", help="no progress bar")
    po.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    po.set_defaults(func=cmd_posttrain)

    dc = sub.add_parser(
        "dev-check",
        help="a few gradient steps of an algorithm on the smoke base: is the loss finite, did the reward move "
        "(exit 0 healthy, 1 not)",
    )
    dc.add_argument("algo", metavar="ALGO", help="algorithm name (see `ood-bench algorithms`)")
    dc.add_argument(
        "--base",
        help="base to start from (default: the committed smoke base, leaderboards/smoke/bases/smoke.safetensors)",
    )
    dc.add_argument("--seed", type=int, default=0, help="seed of prompts and rollouts")
    dc.add_argument("--out", help="keep the run (logs, checkpoint) in this empty folder (default: a temporary one)")
    dc.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: the smoke base's matrices are too small to share out; a larger --base may "
        "want more)",
    )
    dc.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="posttrain's dotted overrides: algo.lr=1e-4 budget.grad_steps=6 prompts_per_step=8 "
        "(default: 12 steps of 16 prompts)",
    )
    dc.add_argument("--no-progress", action="store_true", help="no progress bar")
    dc.set_defaults(func=cmd_dev_check)

    cp = sub.add_parser(
        "compare",
        help="support of a post-trained model against its base: expansion, tilt, "
        "kept / gained / lost next to their null",
    )
    cp.add_argument("base", help="evaluation folder of the base (holds samples/*.jsonl)")
    cp.add_argument("post", help="evaluation folder of the post-trained model, same problems and n")
    cp.add_argument(
        "--null",
        metavar="DIR",
        help="a second evaluation of the base (another --seed): report the observed base-vs-base null too",
    )
    for name, what in (
        ("outside", "exact trace mass below which a problem is outside the base's support (default 1e-6)"),
        ("inside", "exact trace mass from which a problem is inside the base's support (default 1e-2)"),
        ("solved", "exact trace mass from which the post-trained model solves a problem (default 1e-2)"),
        ("fdr", "false discovery rate of the per-problem move test (default 0.05)"),
    ):
        cp.add_argument(f"--{name}", type=float, default=getattr(Thresholds, name), help=what)
    cp.add_argument("--json", action="store_true", help="machine-readable output (writes nothing)")
    cp.add_argument(
        "--out",
        metavar="DIR",
        help="also write support.json and support.png into DIR (by default "
        "compare writes nothing: the evaluation folders stay as they are)",
    )
    cp.set_defaults(func=cmd_compare)

    sw = sub.add_parser(
        "sweep", help="post-train one algorithm over a grid of settings from one base; table, README and plot"
    )
    sw.add_argument("--algo", required=True, help="algorithm name (see `ood-bench algorithms`)")
    sw.add_argument("--base", required=True, help="base checkpoint or published .safetensors")
    sw.add_argument("--out", required=True, help="the sweep's folder (runs/, sweep.csv, README.md, curves.png)")
    sw.add_argument(
        "--grid", action="append", default=[], metavar="KEY=V1,V2", help="a key to vary (repeat to cross several)"
    )
    sw.add_argument(
        "--heldout", type=int, default=0, metavar="N", help="also score base and points on N held-out problems"
    )
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")
    sw.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="posttrain keys fixed for every point")
    sw.set_defaults(func=cmd_sweep)

    lb = sub.add_parser("leaderboard", help="regenerate a leaderboard (tables, plots, index.html) from its records")
    lb.add_argument(
        "records",
        help="a suite's folder or its name under leaderboards/ (quick, standard), or an "
        "older folder of evaluation records (records)",
    )
    lb.add_argument(
        "--check",
        action="store_true",
        help="write nothing; fail if the committed tables or plots differ from what the records give",
    )
    lb.add_argument(
        "--allow-dirty",
        action="store_true",
        help="accept run records made from a modified checkout (refused by default)",
    )
    lb.set_defaults(func=cmd_leaderboard)

    r = sub.add_parser("run", help="run a suite (resumable): bases, post-training rows, evaluations, leaderboard")
    r.add_argument(
        "suite",
        nargs="?",
        default="quick",
        help="suite YAML file or embedded suite name: quick, standard, paper (default: quick)",
    )
    r.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides of the suite, e.g. posttrain.budget.grad_steps=50 bases.seeds=[0,1]; "
        "with --with, algo.KEY=VALUE set the added algorithm's knobs",
    )
    r.add_argument(
        "--with",
        dest="with_algo",
        metavar="ALGO",
        help="add a row for this installed algorithm and run only its runs, against the suite's "
        "published bases at its matched budget",
    )
    r.add_argument("--shard", metavar="I/N", help="run shard I of N (whole bases with their runs)")
    r.add_argument(
        "--launcher",
        choices=("local", "ray", "slurm"),
        default="local",
        help="local: one run after another here; ray: each run a Ray task (RAY_ADDRESS joins a cluster); "
        "slurm: each run a Slurm job through submitit (resources.slurm: more job parameters)",
    )
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the grid, what runs and what is skipped, and an estimate of wall time",
    )
    r.add_argument("--keep-samples", action="store_true", help="keep sample texts in the committed records")
    r.add_argument("--work-root", default="runs", help="where checkpoints and logs go (default: runs)")
    r.add_argument(
        "--publish-root", default="leaderboards", help="where records and the leaderboard go (default: leaderboards)"
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--print-config", action="store_true", help="print the resolved suite as YAML and exit")
    r.set_defaults(func=cmd_run)

    ca = sub.add_parser(
        "calibrate",
        help="evaluate each published base of a suite again at more sampling seeds "
        "(more base-vs-base nulls, to calibrate the intervals): no training",
    )
    ca.add_argument("suite", help="suite YAML file or embedded suite name (quick, standard, paper)")
    ca.add_argument(
        "--sampling-seeds",
        nargs="+",
        type=int,
        required=True,
        metavar="SEED",
        help="sampling seeds to evaluate at, other than 0 (eval/) and the suite's null_seed (null/)",
    )
    ca.add_argument("--work-root", default="runs", help="where the full evaluations go for a while (default: runs)")
    ca.add_argument(
        "--publish-root",
        default="leaderboards",
        help="where the suite's bases are and <suite>/calibration/ goes (default: leaderboards)",
    )
    ca.add_argument(
        "--cpus",
        type=int,
        help="threads (default: the suite's resources.cpus, as its runs used; the results do not depend on it)",
    )
    ca.add_argument("--no-progress", action="store_true", help="no progress bars (a line per evaluation stays)")
    ca.set_defaults(func=cmd_calibrate)
    return p


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show a path's or a symbol's characters
        if hasattr(stream, "reconfigure"):  # gets them escaped, not a UnicodeEncodeError after the work is done
            stream.reconfigure(errors="backslashreplace")
    _quiet_third_party()
    _one_line_plugin_warnings()
    previous = _sigterm_like_ctrl_c()
    try:
        return _main(argv)
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come anywhere, also after options (argparse takes positionals only once)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        print(f"ood-bench: error: unrecognized arguments: {' '.join(stray)} (see `ood-bench --help`)", file=sys.stderr)
        return EXIT_USAGE
    if extra:
        args.overrides = list(args.overrides or []) + extra
    try:
        if args.func in (cmd_pretrain, cmd_posttrain, cmd_run, cmd_dev_check):
            from .training.precision import env_precision

            env_precision()  # a bad OOD_BENCH_PRECISION is one line before any compute, used by this config or not
        if args.func in (cmd_pretrain, cmd_posttrain, cmd_run, cmd_evaluate, cmd_dev_check):
            from .model.kernels import decode_kernel, env_engine

            if env_engine() == "kernel":  # also a bad value: one line, before any compute
                decode_kernel()  # built (or found built) now, so a machine that cannot build it fails here
        return args.func(args)
    except RunInterrupted as exc:
        print(f"ood-bench: interrupted by {exc}", file=sys.stderr)
        return exc.exit_code
    except PluginFault as exc:
        import os

        if os.environ.get("OOD_BENCH_DEBUG", "") not in ("", "0"):
            import traceback

            traceback.print_exception(exc)  # the plugin's own frames, for its author
        print(f"ood-bench: error: {exc} (OOD_BENCH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_USAGE
    except OodBenchError as exc:
        print(f"ood-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ood-bench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Terminated:
        print("ood-bench: interrupted by SIGTERM; run the same command again to resume", file=sys.stderr)
        return 143
    except BrokenPipeError:  # the reader went away (`ood-bench tasks | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except RecursionError:  # a config nested thousands deep
        print("ood-bench: error: the input is nested too deeply to read", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a write that failed mid-run (a full disk): what was written before is intact
        where = f": {exc.filename}" if exc.filename else ""
        print(
            f"ood-bench: error: {exc.strerror or exc}{where} (nothing already written was changed; free the "
            f"space or fix the folder and run the same command again)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
