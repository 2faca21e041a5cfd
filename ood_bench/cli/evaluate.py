"""The commands that measure a checkpoint: ``evaluate`` (the held-out test splits, then the support comparison
with its base's evaluation when there is one), ``compare`` (the support of a post-trained model against its
base, from two evaluation folders) and ``failures`` (why a checkpoint's samples fail, per split).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import OodBenchError
from .common import load_plugins


def _run_eval(ckpt_path: str, ecfg, seed: int, out_dir: Path, progress: bool, loaded=None) -> None:
    # late: pandas and the evaluation load only when one runs
    from ..storage.eval_records import format_table
    from ..suite.eval_run import evaluate_checkpoint

    load_plugins()
    df = evaluate_checkpoint(ckpt_path, ecfg, seed, out_dir, progress, loaded)
    print(format_table(df))
    print(f"\nresults: {out_dir / 'eval.json'}  per-problem counts: {out_dir / 'samples'}/")


def _compare_with_base(ckpt: dict, out_dir: Path, base_eval: Path | None = None) -> None:
    """After evaluating a post-trained checkpoint, compare it with its base's evaluation:
    ``--base-eval`` if given, else the ``eval/`` folder beside the base checkpoint, when the
    base was evaluated on the same problems at the same n."""
    # late: torch and lightning (storage.checkpoints), pandas and scipy (evaluation.support)
    from ..evaluation.support import compare_evals
    from ..storage.checkpoints import home_folder

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
    # late: pandas and scipy load only when a comparison is shown
    from ..evaluation.support import Thresholds, format_support
    from ..evaluation.support_record import write_support_record

    th = thresholds or Thresholds()
    print(f"\nsupport against the base ({base_eval})")
    print(format_support(table, th))
    if out_dir is not None:
        record, plot = write_support_record(table, base_eval, post_eval, th, out_dir)
        print(f"\nsupport: {record}  plot: {plot}")


def cmd_evaluate(args) -> int:
    # late: torch and lightning load only when this command runs, never for --help or a usage error
    from ..config import build, deep_merge, parse_overrides
    from ..evaluation.evaluate import EvalConfig
    from ..training.pretrain import load_base

    load_plugins()
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
    # late: it loads torch, which importing this module does not
    from ..data import check_context_holds

    tasks = load_plugins().tasks
    check_context_holds(
        [tasks.get(f) for f in (ecfg.families or list(cfg.mixture.families))],
        ecfg.splits,
        cfg.model.block_size,
        ecfg.n_test,
        key="the checkpoint's model.block_size",
    )
    # late: it loads lightning and what that loads, which importing this module does not
    from ..storage.checkpoints import home_folder

    out_dir = Path(args.out) if args.out else home_folder(args.checkpoint) / "eval"
    _run_eval(args.checkpoint, ecfg, args.seed, out_dir, not args.no_progress, loaded)
    _compare_with_base(loaded[2], out_dir, Path(args.base_eval) if args.base_eval else None)
    return 0


def cmd_compare(args) -> int:
    from ..evaluation.support import Thresholds, compare_evals  # late: pandas and scipy only when comparing

    th = Thresholds(outside=args.outside, inside=args.inside, solved=args.solved, fdr=args.fdr)
    table = compare_evals(args.base, args.post, th, null_dir=args.null)
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2))
        return 0
    # a comparison only reads its evaluations: it writes where --out says, never into a record folder
    _write_support(table, Path(args.base), Path(args.post), th, Path(args.out) if args.out else None)
    return 0


def cmd_failures(args) -> int:
    # late: torch and lightning load only when this command runs, never for --help or a usage error
    from ..data import TEST_SET_SIZE, held_out_problems
    from ..evaluation.failures import (
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
    from ..plugins import find_family
    from ..tasks.base import SPLITS
    from ..training.pretrain import load_base

    tasks = load_plugins().tasks
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
