"""Leaderboard tables (and a plot) regenerated from committed evaluation records.

A records folder holds one sub-folder per evaluated model, each with the
``eval.json`` and ``samples/*.jsonl`` that ``ood-bench evaluate`` wrote; a
post-trained model's folder also holds the ``support.json`` that names its base.
Everything published here is recomputed from those files: the results table
from ``eval.json``, the support table from the per-problem counts of the model
and of its base (never copied from ``support.json``), so ``--check`` can tell
whether the committed tables still match their records.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from ..errors import OodBenchError
from ..evaluation.support import SUPPORT_COLUMNS, compare_evals
from ..storage.atomic import atomic_write_text
from ..storage.eval_records import TABLE_COLUMNS, read_eval_folder
from ..storage.numeric_text import same_up_to_rounding

LEADERBOARDS_DIR = Path("leaderboards")
RESULTS_CSV, SUPPORT_CSV, MARKDOWN, PLOT = "results.csv", "support.csv", "leaderboard.md", "leaderboard.png"


def resolve(name: str) -> Path:
    """A records folder given as a path, or by its name under ``leaderboards/``."""
    for candidate in (Path(name), LEADERBOARDS_DIR / name):
        if candidate.is_dir():
            return candidate
    raise OodBenchError(f"no records folder {name!r} (neither a folder nor one under {LEADERBOARDS_DIR}/)")


def _runs(root: Path) -> list[Path]:
    runs = sorted(p.parent for p in root.rglob("eval.json"))
    if not runs:
        raise OodBenchError(f"no evaluation records (eval.json) under {str(root)!r}")
    return runs


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OodBenchError(f"unreadable record {path}: {exc}") from None


REQUIRED = ("family", "split", "problems", "n", "greedy", "pass@1", "pass@1_stderr")


def _summary_row(r, where: Path) -> dict:
    """A summary row of ``eval.json`` (an object: ``read_eval_folder`` saw to that), checked: the keys the
    tables need, numbers where numbers belong."""
    missing = [k for k in REQUIRED if k not in r]
    n = r.get("n")
    if not missing and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise OodBenchError(f"{where}: result {r.get('family')}/{r.get('split')} has n={n!r}, not a count >= 1")
    if not missing and f"pass@{n}" not in r:
        missing.append(f"pass@{n}")
    if missing:
        raise OodBenchError(f"{where}: result row {r.get('family')}/{r.get('split')} lacks {', '.join(missing)}")
    for key in ("problems", *TABLE_COLUMNS[2:], f"pass@{n}"):
        value = r.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise OodBenchError(f"{where}: result {r['family']}/{r['split']} has {key}={value!r}, not a number")
    return r


def results_table(root: Path) -> pd.DataFrame:
    rows = []
    for run in _runs(root):
        record, _ = read_eval_folder(run)  # the manifest must hold before anything is published
        for r in record["results"]:
            r = _summary_row(r, run / "eval.json")
            n = r["n"]
            rows.append(
                {
                    "run": run.relative_to(root).as_posix(),
                    "problems": r["problems"],
                    "n": n,
                    # records older than a column (trace_mass) leave it empty
                    **{c: r.get(c, float("nan")) for c in TABLE_COLUMNS},
                    "pass@n": r[f"pass@{n}"],
                }
            )
    if not rows:
        raise OodBenchError(f"the evaluation records under {str(root)!r} hold no results")
    return pd.DataFrame(rows)


def support_leaderboard(root: Path) -> pd.DataFrame:
    """Each post-trained model against its base, recomputed from both sets of per-problem counts."""
    frames = []
    for run in _runs(root):
        if not (run / "support.json").is_file():
            continue
        # The base is named by folder; records of one suite sit side by side.
        named = _read_json(run / "support.json")
        if not isinstance(named, dict) or not isinstance(named.get("base_eval"), str):
            raise OodBenchError(f"{run / 'support.json'} does not name its base evaluation (base_eval)")
        base = run.parent / Path(named["base_eval"]).name
        table = compare_evals(base, run)
        table.insert(0, "base", base.relative_to(root).as_posix())
        table.insert(0, "run", run.relative_to(root).as_posix())
        frames.append(table)
    columns = ["run", "base", *SUPPORT_COLUMNS]
    return pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _markdown(results: pd.DataFrame, support: pd.DataFrame, root: Path) -> str:
    fmt = {"float_format": lambda v: f"{v:.3f}", "index": False}
    out = io.StringIO()
    out.write(
        "# Leaderboard\n\n"  # no folder name: a copied or renamed records folder stays current
        "Regenerated by `ood-bench leaderboard FOLDER` from the evaluation records below this folder; "
        f"`--check` fails when this file is stale.\n\n## Results\n\n```\n{results.to_string(**fmt)}\n```\n"
    )
    if len(support):
        out.write(
            "\n## Support against the base\n\nExact trace mass Q (primary): problems outside the base's "
            "support (Q_base < 1e-6) that the post-trained model solves (Q_post >= 1e-2), with the Wilson "
            "interval of that rate; the log-odds shift on problems the base measurably solves (mean, s.d., "
            "slope against logit Q_base with its s.e.; pure reweighting is one shift with slope 0). Sampled "
            "traces at budget n: P kept, E gained, S lost, each next to its null (the base re-sampled "
            "against itself; where the base's samples solved no problem, the null's ratios are NaN, since "
            "a re-sample could only gain). Answers (secondary): the pass@1 change with its paired "
            "standard error, and problems that moved by Fisher's exact test at FDR 0.05.\n\n"
            f"```\n{support.to_string(**fmt)}\n```\n"
        )
    return out.getvalue()


def render(root: Path, results: pd.DataFrame, support: pd.DataFrame) -> dict[str, str]:
    """The text files of the leaderboard, by file name."""
    return {RESULTS_CSV: _csv(results), SUPPORT_CSV: _csv(support), MARKDOWN: _markdown(results, support, root)}


def plot(results: pd.DataFrame, path: Path) -> None:
    """ID pass@1 of every run, one bar per family, with its standard error."""
    # late: it loads matplotlib, which importing this module does not
    import matplotlib

    matplotlib.use("Agg")
    # late: it loads matplotlib, which importing this module does not
    import matplotlib.pyplot as plt

    ident = results[results["split"] == "id"].pivot(index="run", columns="family", values="pass@1")
    err = results[results["split"] == "id"].pivot(index="run", columns="family", values="pass@1_stderr")
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(ident) + 2))
    ident.plot.barh(ax=ax, xerr=err, xlim=(0, 1))
    ax.set_xlabel("ID pass@1")
    ax.legend(title="family", loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)


def write(root: Path) -> list[Path]:
    results = results_table(root)
    files = render(root, results, support_leaderboard(root))
    for name, text in files.items():
        atomic_write_text(root / name, text)
    plot(results, root / PLOT)
    return [root / name for name in (*files, PLOT)]


def stale(root: Path) -> list[Path]:
    """Committed table files that differ from what the records regenerate (missing ones included), beyond
    the last-digit noise of floating point (``numeric_text``)."""
    out = []
    for name, text in render(root, results_table(root), support_leaderboard(root)).items():
        path = root / name
        if not path.is_file() or not same_up_to_rounding(path.read_text(errors="replace"), text):
            out.append(path)
    return out
