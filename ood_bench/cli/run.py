"""The commands of a suite: ``run`` (its grid, resumable, ending in its leaderboard; ``--with`` adds a row
against the published bases), ``calibrate`` (its bases re-sampled at more seeds) and ``leaderboard``
(regenerate or ``--check`` a suite's board, or the older folders of sweeps, published bases and records).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import phases
from ..errors import OodBenchError
from .common import load_plugins, print_config


def cmd_run(args) -> int:
    started = time.perf_counter()
    # late: torch and lightning load only when this command runs, never for --help or a usage error
    from ..suite import estimates, places
    from ..suite.launchers import run_suite
    from ..suite.profile import check_profile_path, phase_totals, profile_rows, write_profile
    from ..suite.runner import RunOptions
    from ..suite.suite import expand, load_suite, parse_shard, shard, with_row

    profile = check_profile_path(args.profile) if args.profile else None  # before any compute

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
        load_plugins()
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
        return print_config(suite.to_dict())
    grid = expand(suite)
    specs = grid
    which = parse_shard(args.shard)
    if which:
        specs = shard(specs, *which)
    if added:
        specs = [s for s in specs if s.kind == "base" or s.row == added[0].name]
    where = places.places(suite, args.work_root, args.publish_root)
    reuse = suite.reuse_published or bool(added)
    # Ray started here keeps cores // resources.cpus runs going at once: the estimate reads rates of records made
    # on that many threads (a one-thread run is slower per step than a two-thread one) and divides by them
    at_once = estimates.runs_at_once(args.launcher, suite.resources.cpus)
    threads = suite.resources.cpus if at_once > 1 else None
    rows = estimates.plan(specs, where, reuse, suite.reuse_runs)
    if added:  # only the new rows run: a published base is shared, not run again
        rows = [
            (s, "published" if s.kind == "base" and st == "todo" and places.has_published(s, where) else st)
            for s, st in rows
        ]
    rates = estimates.read_rates(where, threads)  # one pass over the records for the plan and its source line
    seconds = estimates.plan_seconds(rows, rates.seconds, at_once)
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
        print(estimates.format_plan(rows, seconds))
        print(estimates.rates_source(rates, at_once, threads))
        return 0
    # late: the command line imports what a command needs only when it runs
    from ..storage.atomic import writable_folder

    # both checked before either is made: a refused run leaves no empty folder behind
    writable_folder(where.records, "records folder", create=False)
    writable_folder(where.work, "work folder", create=False)
    todo = [s for s, st in rows if st == "todo"]
    print(
        f"suite {suite.name}: {len(rows)} runs, {len(todo)} to do, {len(rows) - len(todo)} skipped; "
        f"estimated {estimates.clock(seconds)} on this machine",
        flush=True,
    )
    reused = [s.name for s, st in rows if st == "published" and s.name in suite.reuse_runs]
    if reused and not suite.reuse_published:
        print(
            f"reused from the committed records (the suite's reuse_runs): {', '.join(reused)}; "
            f"`ood-bench run {args.suite} reuse_runs=[]` makes them again",
            flush=True,
        )
    if precision_line:
        print(precision_line, flush=True)
    # late: it loads torch, which importing this module does not
    from ..training.provenance import code_version

    if todo and code_version().endswith("-dirty"):
        print(
            "ood-bench: warning: this checkout has uncommitted changes to its code, so these records are marked "
            "dirty and `ood-bench leaderboard --check` refuses them (commit, then run again, or pass --allow-dirty)",
            file=sys.stderr,
            flush=True,
        )
    opts = RunOptions(progress=not args.no_progress, keep_samples=args.keep_samples, cpus=suite.resources.cpus)
    made = run_suite(suite, where, rows, grid, args.launcher, opts, rates.seconds)
    # late: the command line imports what a command needs only when it runs
    from ..board import suite_board

    # late: it loads lightning and what that loads, with pandas, which importing this module does not
    from ..board.readme import headline_text

    keys = {s.name: s.key for s in grid}
    before = phases.seconds()
    with phases.phase("board"):
        board = suite_board.write(where.published, allow_dirty=True, expected=keys)
        print()
        print(headline_text(where.published, expected=keys))
    print(f"\nleaderboard: {board}")
    if profile:
        # the runs' phases from their records (wherever they ran), the board's from this process
        totals = phase_totals(made)
        totals["board"] = totals.get("board", 0.0) + phases.since(before).get("board", 0.0)
        wall = time.perf_counter() - started
        serial = args.launcher == "local"  # elsewhere runs overlap: their seconds add up to more than the wall
        title = f"Where `ood-bench run {args.suite}` spent its time ({len(made)} runs, launcher {args.launcher})"
        print()
        print(write_profile(profile, profile_rows(totals, wall if serial else None), title, wall), end="")
        print(f"profile: {profile}")
    return 0


def _auto_precision_line(suite) -> str | None:
    """The bases' precision when the suite leaves it to the CPU (auto): which one, and why, since it decides the
    runs' keys (and so whether the committed records are this machine's to reproduce)."""
    # late: only a suite run reads its bases' recipe and precision
    from ..config import deep_merge, read_yaml
    from ..training.precision import AUTO, why_auto

    recipe = deep_merge(read_yaml(suite.bases.config), suite.bases.overrides)
    if str((recipe.get("trainer") or {}).get("precision")) == AUTO:
        return f"bases: {why_auto()}"
    return None


def _with_published_precision(suite, args, overrides, added, line: str):
    """--with adds a row against the published bases, and a suite that extends another reuses that one's, so
    there ``auto`` means the precision they were made in (unless OOD_BENCH_PRECISION says otherwise): on a CPU
    where auto would give another, the bases would get other keys, be pretrained again, and the rows would
    stand on other bases than the rows they are compared with."""
    # late: torch and lightning (run records, the runner) load only for a suite run
    from ..storage.run_records import read_record
    from ..suite.places import places
    from ..suite.runner import precision_of
    from ..suite.suite import expand, load_suite
    from ..training.precision import AUTO, ENV, env_precision

    if env_precision() != AUTO:
        return suite, line
    where = places(suite, args.work_root, args.publish_root)
    bases = [s for s in expand(suite) if s.kind == "base"]
    made = set()
    for folder in (where.published, *where.parents):  # this suite's own records, else its nearest parent's
        made = {precision_of((read_record(folder / "records" / s.name) or {}).get("config")) for s in bases}
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
    # late: torch and lightning load only when this command runs, never for --help or a usage error
    from ..suite.calibrate import calibrate
    from ..suite.places import places
    from ..suite.suite import load_suite

    load_plugins()
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


def cmd_leaderboard(args) -> int:
    # late: pandas, scipy and (through the run records) torch load only when a board is read
    from ..board import leaderboard, suite_board
    from ..board.readme import headline_text

    name = args.records
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():  # a suite file: its leaderboard folder
        # late: the command line imports what a command needs only when it runs
        from ..suite.suite import read_suite_file

        name = read_suite_file(name)["name"]
    root = leaderboard.resolve(name)
    if not suite_board.is_suite_folder(root) and any(root.glob("*/sweep.csv")):  # leaderboards/sweeps
        # late: it loads lightning and what that loads, with pandas, which importing this module does not
        from ..suite.sweep import stale as stale_sweeps

        stale = stale_sweeps(root)
        if stale:
            raise OodBenchError(f"sweep tables that differ from their sweep.csv: {', '.join(map(str, stale))}")
        print(f"{root}: sweep tables match their sweep.csv")
        return 0
    if not suite_board.is_suite_folder(root) and any(root.glob("bases/*.safetensors")):  # leaderboards/smoke
        # late: it loads lightning and what that loads, which importing this module does not
        from ..storage.checkpoints import read_weights

        for weights in sorted(root.glob("bases/*.safetensors")):
            read_weights(weights)  # its state must hash to its recorded sha256, or this is one line
        print(f"{root}: published bases read and match their sha256 (no tables here)")
        return 0
    inner = [d for d in sorted(root.glob("*/")) if suite_board.is_suite_folder(d)]
    if not suite_board.is_suite_folder(root) and inner:  # leaderboards/in-progress: suites being re-run, no board yet
        from ..storage.checkpoints import read_weights
        from ..storage.run_records import read_record

        for folder in inner:
            for record in sorted((folder / "records").glob("*/")):
                read_record(record)  # a damaged record is one line
            for weights in sorted(folder.glob("bases/*.safetensors")):
                read_weights(weights)  # its state must hash to its recorded sha256
        print(
            f"{root}: the records and bases of {', '.join(d.name for d in inner)} read (no board until a re-run ends)"
        )
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
        print(headline_text(root, args.allow_dirty, expected))
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
