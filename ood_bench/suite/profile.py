"""Where a suite invocation's time went, by phase (``ood-bench run SUITE --profile FILE``).

Each run's record keeps its phases' own seconds (``timings.phases``, from ``ood_bench.phases``); this module adds
them over the runs an invocation made, with the board's rendering and whatever the phases leave out of the
invocation's wall time (start-up, planning, the gaps between runs), and writes the table as Markdown or CSV.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OodBenchError
from ..storage.atomic import atomic_write_text, writable_folder

# Every phase the code opens, in the order of a run, with what it holds. A phase named here but not measured
# is left out of the table; one measured but not named here (a plugin's own) is listed after these.
PHASES: dict[str, str] = {
    "pretrain.data": "pretraining: the end-of-step hooks, logging and fetching the next batch",
    "pretrain.forward": "pretraining: the forward pass to the loss",
    "pretrain.backward": "pretraining: the backward pass",
    "pretrain.optimizer": "pretraining: gradient clipping and the AdamW update",
    "pretrain": "pretraining: setting up Lightning, the model and the data; restoring checkpoints",
    "posttrain.rollouts": "post-training: sampling rollouts",
    "posttrain.rewards": "post-training: scoring rollouts with the verifier",
    "posttrain.update": "post-training: policy and reference log-probabilities, backward and update",
    "posttrain": "post-training: the algorithm's own arithmetic, Lightning, setup and loading the base",
    "eval.sampling": "evaluation: sampling (greedy and n samples per problem)",
    "eval.scoring": "evaluation: scoring samples with the verifier",
    "eval.support": "evaluation: the gold trace's log-probability (the support measures' input)",
    "eval": "evaluation: loading the model, generating problems, writing per-problem tables",
    "io": "atomic writes: checkpoints, records, tables",
    "records": "publishing: compacting evaluation tables, saving base weights, swapping records in",
    "board": "rendering the leaderboard (tables, plots, page)",
}
OTHER = "other"
OTHER_WHAT = "start-up, planning and whatever the phases above leave out of the wall time"
SUFFIXES = (".md", ".csv")


def check_profile_path(path: str | Path) -> Path:
    """The ``--profile`` file, checked before any compute: a ``.md`` or ``.csv`` name in a writable folder."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise OodBenchError(f"--profile {str(path)!r}: name a .md or .csv file (the table's format)")
    if path.is_dir():
        raise OodBenchError(f"--profile {str(path)!r} is a folder: name a .md or .csv file")
    writable_folder(path.parent if str(path.parent) else Path("."), "profile folder", create=False)
    return path


def phase_totals(records: list[dict]) -> dict[str, float]:
    """Each phase's seconds summed over the records' ``timings.phases`` (a record without them adds nothing)."""
    out: dict[str, float] = {}
    for rec in records:
        for name, s in ((rec.get("timings") or {}).get("phases") or {}).items():
            out[name] = out.get(name, 0.0) + float(s)
    return out


def profile_rows(totals: dict[str, float], wall: float | None) -> list[dict]:
    """One row per phase measured (known phases first, in run order), then ``other`` when ``wall`` is given and
    exceeds the phases' sum (runs made one after another in this process); shares are of the wall time, or of
    the phases' sum where runs ran side by side (Ray, Slurm) and their seconds add up to more than the wall."""
    names = [n for n in PHASES if totals.get(n)] + sorted(n for n in totals if n not in PHASES and totals[n])
    exact = {n: totals[n] for n in names}
    measured = sum(exact.values())
    if wall is not None and wall > measured:
        exact[OTHER] = wall - measured
    whole = max(wall or 0.0, measured) or 1.0
    # shares from the unrounded seconds: from seconds rounded to 0.1, a minute-long run's 15 shares once
    # summed to 99.0%
    return [
        {
            "phase": n,
            "seconds": round(v, 1),
            "share": round(v / whole, 3),
            "what": OTHER_WHAT if n == OTHER else PHASES.get(n, "a phase a plugin opened"),
        }
        for n, v in exact.items()
    ]


def group_rows(rows: list[dict]) -> list[dict]:
    """The rows added up by their part (``pretrain.*`` under pretraining, ...): the table's first look."""
    parts: dict[str, dict] = {}
    for r in rows:
        part = r["phase"].split(".")[0]
        g = parts.setdefault(part, {"part": part, "seconds": 0.0, "share": 0.0})
        g["seconds"] = round(g["seconds"] + r["seconds"], 1)
        g["share"] = round(g["share"] + r["share"], 3)
    return list(parts.values())


def render_markdown(rows: list[dict], title: str, wall: float | None) -> str:
    lines = [f"# {title}", ""]
    if wall is not None:
        lines += [f"Wall time {wall:.1f} s ({wall / 60:.1f} min).", ""]
    lines += ["| part | seconds | share |", "|---|---:|---:|"]
    lines += [f"| {g['part']} | {g['seconds']:.1f} | {g['share']:.1%} |" for g in group_rows(rows)]
    lines += ["", "| phase | seconds | share | what |", "|---|---:|---:|---|"]
    lines += [f"| `{r['phase']}` | {r['seconds']:.1f} | {r['share']:.1%} | {r['what']} |" for r in rows]
    return "\n".join(lines) + "\n"


def render_csv(rows: list[dict]) -> str:
    out = ["phase,seconds,share"]
    out += [f"{r['phase']},{r['seconds']},{r['share']}" for r in rows]
    return "\n".join(out) + "\n"


def write_profile(path: Path, rows: list[dict], title: str, wall: float | None) -> str:
    """Write the table (Markdown or CSV by the file's suffix) and return its Markdown, for the terminal."""
    md = render_markdown(rows, title, wall)
    atomic_write_text(path, md if path.suffix == ".md" else render_csv(rows))
    return md
