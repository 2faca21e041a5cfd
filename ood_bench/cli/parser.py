"""The argument parser: every command with its options and help, in the order ``ood-bench --help`` lists them,
each bound to its function; a usage error is one line and exit status 2, like every other bad input.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from .catalog import cmd_algorithms, cmd_plugins, cmd_tasks
from .common import EXIT_USAGE
from .evaluate import cmd_compare, cmd_evaluate, cmd_failures
from .run import cmd_calibrate, cmd_leaderboard, cmd_run
from .train import cmd_dev_check, cmd_posttrain, cmd_pretrain, cmd_sweep


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line like every other bad input (``--help`` still shows usage)."""

    def error(self, message: str):
        print(f"ood-bench: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    # late: evaluation.support (pandas, scipy) loads when the parser is built, not when this module is imported
    from ..evaluation.support import Thresholds

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
    r.add_argument(
        "--profile",
        metavar="FILE",
        help="write where this invocation's time went, by phase (pretraining steps, rollouts, policy updates, "
        "evaluation sampling and scoring, records, the board), to FILE (.md or .csv) and print it",
    )
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
