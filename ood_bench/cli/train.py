"""The commands that train: ``pretrain`` (a base from scratch), ``posttrain`` (a base with a registered
algorithm), ``sweep`` (one algorithm over a grid of settings) and ``dev-check`` (a few steps on the smoke base:
does an algorithm train at all).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from ..errors import OodBenchError
from .common import load_plugins, print_config


def _load_pretrain_config(config: str, overrides: list[str]):
    # late: torch and lightning (training.pretrain) load only when a config is read
    from ..config import load_config
    from ..training.pretrain import PretrainConfig

    return load_config(PretrainConfig, config, overrides)


def cmd_pretrain(args) -> int:
    from ..training.pretrain import pretrain  # late: torch and lightning, never for --help or a usage error

    cfg = _load_pretrain_config(args.config, args.overrides)
    if args.print_config:
        return print_config(cfg.to_dict())
    path = pretrain(cfg, progress=not args.no_progress)
    print(f"base checkpoint: {path}")
    return 0


def cmd_posttrain(args) -> int:
    # late: torch and lightning load only when this command runs, never for --help or a usage error
    from ..training.posttrain import default_out_dir, load_posttrain_config, posttrain

    load_plugins()
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
        # late: the command line imports what a command needs only when it runs
        from ..plugins import get_plugins

        # late: it loads torch, which importing this module does not
        from ..training.algorithms import build_algorithm_config

        algo = build_algorithm_config(get_plugins().algorithm(cfg.algorithm), cfg.algo)
        # Every key, --base or not: the default out_dir lies beside the base, so without one it stays empty.
        out_dir = cfg.out_dir or (str(default_out_dir(cfg)) if cfg.base else "")
        if not cfg.base:
            print("ood-bench: note: no --base given; a run needs one (base: is empty below)", file=sys.stderr)
        return print_config({**cfg.to_dict(), "out_dir": out_dir, "algo": dataclasses.asdict(algo)})
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


def cmd_sweep(args) -> int:
    # late: torch and lightning load only when this command runs, never for --help or a usage error
    from ..suite.sweep import SweepSpec, parse_grid, points, run_sweep

    load_plugins()
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


def cmd_dev_check(args) -> int:
    # late: torch and lightning load only when this command runs, never for --help or a usage error
    from ..config import parse_overrides
    from ..suite.dev_check import DEFAULTS, EXIT_UNHEALTHY, default_base, dev_check, format_report
    from ..training.posttrain import load_posttrain_config

    load_plugins()
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
    # late: the command line imports what a command needs only when it runs
    from ..plugins import get_plugins

    # late: it loads torch, which importing this module does not
    from ..training.algorithms import build_algorithm_config

    # late: it loads lightning and what that loads, with pandas, which importing this module does not
    from ..training.pretrain import load_base

    build_algorithm_config(get_plugins().algorithm(cfg.algorithm), cfg.algo)  # an unknown algorithm or knob
    load_base(cfg.base)  # a missing or corrupt base
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OodBenchError(f"--out {args.out!r} is not an empty folder; dev-check writes a fresh run into one")
    if args.threads < 1:
        raise OodBenchError(f"invalid value --threads={args.threads}: must be >= 1")
    # late: it loads torch, which importing this module does not
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        report = dev_check(cfg, progress=not args.no_progress, out=out)
    finally:
        torch.set_num_threads(threads)  # a caller's process (a test, a notebook) gets its own setting back
    print(format_report(report))
    return 0 if report.healthy else EXIT_UNHEALTHY
