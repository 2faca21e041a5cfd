"""The commands that show what is installed: ``tasks`` (the task families, an example of each split, and
``--check`` against the task-family contract), ``plugins`` (each plugin and what it registers) and
``algorithms`` (the post-training algorithms and their knobs).
"""

from __future__ import annotations

import json
import sys

from .. import __version__
from ..errors import OodBenchError
from .common import load_plugins


def cmd_tasks(args) -> int:
    # late: torch (through ood_bench.data) loads only for --check
    from ..plugins import find_family

    tasks = load_plugins().tasks
    names = args.family or tasks.names()
    for name in names:
        find_family(name)  # an unknown name, or a plugin that failed to register it, is one line
    if args.check:
        # late: it loads torch, which importing this module does not
        from ..data import TEST_SET_SIZE, held_out_problems

        if not 1 <= args.check_problems <= TEST_SET_SIZE:
            raise OodBenchError(f"invalid value --check-problems={args.check_problems}: must be in 1..{TEST_SET_SIZE}")
        # late: the command line imports what a command needs only when it runs
        from ..tasks.contract import check_family_fully

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


def cmd_plugins(args) -> int:
    from ..api import API_VERSION  # late: ood_bench.api brings torch, which --help does without

    plugins = load_plugins()
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
    plugins = load_plugins()
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
