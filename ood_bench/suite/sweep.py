"""A sweep of one algorithm's settings on one base: which of them make it train, and how fast.

Each point of the grid is one ``posttrain`` run from the same base on the same prompt stream (the sweep's
seed), so the points differ only in what the grid varies. A finished point is skipped and an interrupted
one resumes, as any post-training run does. The sweep then measures each point the way a board judges a
run (``did_train``): the objective's mean over the first and the last tenth of the steps, their difference
with a 95% interval, and whether the objective's slope is significant. With ``heldout`` it also scores the
base and each point on held-out problems of the training split (the same problems and random numbers for
all), since a rising training reward that does not carry to held-out problems is not the training wanted.

Writes, atomically, into the sweep's folder: ``sweep.csv`` (one row per point), ``README.md`` (the table
and the command that made it) and ``curves.png`` (each point's objective, smoothed).
"""

from __future__ import annotations

import io
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import pandas as pd
from tqdm import tqdm

from ..errors import ConfigError
from ..evaluation import did_train
from ..evaluation.did_train import objective_trend
from ..evaluation.evaluate import EvalConfig, evaluate_split
from ..palette import BLACK, BLUE, GREEN, ORANGE, PURPLE, SKY, VERMILLION, YELLOW
from ..plugins import get_plugins
from ..storage.atomic import atomic_write_bytes, atomic_write_text
from ..storage.numeric_text import same_up_to_rounding
from ..storage.run_records import training_curves
from ..training.algorithms import build_algorithm_config
from ..training.posttrain import PostTrainConfig, load_posttrain_config, posttrain
from ..training.pretrain import load_base

SMOOTH = 5  # steps in the plot's moving average


@dataclass
class Point:
    name: str  # the folder under the sweep's, made of the varied values
    values: dict  # key -> value, as given on the command line
    config: PostTrainConfig


@dataclass
class SweepSpec:
    out: Path
    base: str
    algorithm: str
    fixed: list[str] = field(default_factory=list)  # key=value applied to every point
    grid: dict[str, list[str]] = field(default_factory=dict)  # key -> values to cross
    heldout: int = 0  # held-out problems of the training split to score base and points on (0: none)
    heldout_samples: int = 8


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``key=v1,v2`` items into {key: [v1, v2]}; one line naming the item when it is malformed."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values or "" in values.split(","):
            raise ConfigError(f"invalid --grid {item!r}: write KEY=V1,V2,... (e.g. algo.lr=1e-4,3e-4)")
        if key in grid:
            raise ConfigError(f"invalid --grid {item!r}: {key} is varied twice")
        grid[key] = values.split(",")
    return grid


def _label(value: str) -> str:
    """A grid value as part of a folder name: a path by its file's stem (a base: ``base-e0-s1``)."""
    return Path(value).stem if "/" in value else value


def _part(key: str, value: str) -> str:
    """One key's part of a point's name: ``lr0.001``; a value that already starts with the key's name
    keeps it once (``base-e2-s0``, not ``basebase-e2-s0``)."""
    short, label = key.split(".")[-1], _label(value)
    return label if label.startswith(short) else f"{short}{label}"


def positive_control(table: pd.DataFrame) -> dict:
    """The RL positive control over the bases of a sweep that varies ``base`` (one point per pretraining
    seed, the same recipe), judged by ``did_train.positive_control``."""
    runs = [
        {"change": r.change, "change_low": r.change_low, "change_high": r.change_high, "first": r.first_tenth}
        for r in table.itertuples()
    ]
    held = float(table["heldout_change"].mean()) if "heldout_change" in table else float("nan")
    return did_train.positive_control(runs, held)


def points(spec: SweepSpec) -> list[Point]:
    """Every point of the grid with its validated config: a bad key or value anywhere fails here, before
    any run starts."""
    keys = list(spec.grid)
    out = []
    for combo in itertools.product(*(spec.grid[k] for k in keys)) if keys else [()]:
        values = dict(zip(keys, combo))
        name = "-".join(_part(k, v) for k, v in values.items()) or "default"
        overrides = [
            f"algorithm={spec.algorithm}",
            *([] if "base" in values else [f"base={spec.base}"]),  # a grid over bases names each point's own
            f"out_dir={spec.out / 'runs' / name}",
            *spec.fixed,
            *(f"{k}={v}" for k, v in values.items()),
        ]
        try:
            cfg = load_posttrain_config(None, overrides)
            build_algorithm_config(get_plugins().algorithm(cfg.algorithm), cfg.algo)  # its knobs, checked too
        except ConfigError as exc:
            raise ConfigError(f"sweep point {name}: {exc}") from None
        out.append(Point(name, values, cfg))
    return out


def measure(point: Point, objective: tuple[str, str]) -> dict:
    """One finished point as the sweep table shows it."""
    folder = Path(point.config.out_dir)
    curve = pd.read_csv(io.StringIO(training_curves(folder)))
    column = "objective" if "objective" in curve.columns else "reward"
    trend = objective_trend(curve, column, objective[1])
    record = json.loads((folder / "posttrain_record.json").read_text())
    c = record.get("counters", {})
    y = curve[column].dropna() if column in curve.columns else pd.Series(dtype=float)
    tenth = max(3, len(y) // 10)
    return {
        "point": point.name,
        **point.values,
        "objective": objective[0],
        "first_tenth": float(y.head(tenth).mean()) if len(y) else float("nan"),
        "last_tenth": float(y.tail(tenth).mean()) if len(y) else float("nan"),
        "change": trend["change"],
        "change_low": trend["change_low"],
        "change_high": trend["change_high"],
        "slope_p": trend["p"],
        "trained": trend["trained"],
        "grad_steps": c.get("grad_steps"),
        "rollout_tokens": c.get("rollout_tokens"),
        "train_tokens": c.get("train_tokens"),
        "kl_ref_last": float(curve["kl_ref"].dropna().tail(tenth).mean()) if "kl_ref" in curve else float("nan"),
        "plateau_at_step": (record.get("stopped") or {}).get("plateau_at_step"),
    }


def heldout_pass(checkpoint: Path | str, split: str, families: list[str], n_test: int, n_samples: int) -> float:
    """Sampled pass@1 on ``n_test`` held-out problems per family of ``split`` (the evaluation's own problems
    and random numbers, so base and post-trained models are compared on the same draws)."""
    model = load_base(checkpoint)[0]
    ecfg = EvalConfig(splits=[split], n_test=n_test, n_samples=n_samples)
    tasks = get_plugins().tasks
    scores = [evaluate_split(model, tasks.get(f), split, ecfg).summary["pass@1"] for f in families]
    return float(sum(scores) / len(scores))


def _train_seconds(run: Path) -> float | None:
    """The point's own training time from its record, earlier sessions included: unlike the wall time of this
    session, it survives a re-run that skips the finished point (the compute each point used)."""
    try:
        record = json.loads((run / "posttrain_record.json").read_text())
    except (OSError, ValueError):
        return None
    seconds = (record.get("train_seconds") or 0.0) + (record.get("train_seconds_earlier") or 0.0)
    return round(seconds, 1) if seconds else None


def run_sweep(spec: SweepSpec, argv: list[str], progress: bool = True) -> pd.DataFrame:
    """Run every point (skipping finished ones), then write the table, its README and the curves plot."""
    grid = points(spec)
    algo_cls = get_plugins().algorithm(spec.algorithm)
    objective = tuple(getattr(algo_cls, "objective", ("reward", "max")))
    base_cfg = load_base(spec.base)[1]
    rows, wall = [], {}
    base_pass: dict[tuple[str, str], float] = {}  # (base, split) -> its held-out pass@1, scored once
    for point in tqdm(grid, desc="sweep", unit="point", disable=not progress, dynamic_ncols=True):
        start = time.perf_counter()
        ckpt = posttrain(point.config, progress=False)
        wall[point.name] = time.perf_counter() - start
        row = measure(point, objective)
        row["train_s"] = _train_seconds(Path(ckpt).parent)
        if spec.heldout:
            cfg = point.config
            families = cfg.families or [f for f, s in base_cfg.mixture.families.items() if s > 0]
            row["heldout_pass@1"] = heldout_pass(ckpt, cfg.rl_split, families, spec.heldout, spec.heldout_samples)
            # Each point against its own base: a grid over bases (pretraining seeds) has one per point.
            key = (cfg.base, cfg.rl_split)
            if key not in base_pass:
                base_pass[key] = heldout_pass(cfg.base, cfg.rl_split, families, spec.heldout, spec.heldout_samples)
            row["heldout_base"] = base_pass[key]
            row["heldout_change"] = row["heldout_pass@1"] - row["heldout_base"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table["wall_s_this_session"] = [round(wall[p], 1) for p in table["point"]]
    write(spec, table, grid, argv)
    return table


def write(spec: SweepSpec, table: pd.DataFrame, grid: list[Point], argv: list[str]) -> None:
    spec.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(spec.out / "sweep.csv", table.to_csv(index=False, float_format="%.4g", lineterminator="\n"))
    shown = _shown(table)
    lines = [
        f"# Sweep: {spec.algorithm} on `{spec.base}`",
        "",
        "Made by `ood-bench " + " ".join(argv) + "`.",
        "",
        "Each row is one post-training run from the same base on the same prompts. `change` is the mean of the"
        " run's objective over the last tenth of its steps minus that over the first tenth, with a 95% Welch"
        " interval; `trained` is whether the objective's slope over the steps is significant in the right"
        " direction (one-sided p < 0.05)."
        + (
            " `heldout_pass@1` is sampled pass@1 on held-out problems of the training split; `heldout_base`"
            " is the base's on the same problems and random numbers."
            if spec.heldout
            else ""
        ),
        "",
        _markdown(shown),
        "",
        "![objective per step](curves.png)",
        "",
    ]
    if list(spec.grid) == ["base"] and len(table) > 1:
        pc = positive_control(table)
        lines += ["## Positive control over the bases", "", did_train.control_sentence(pc), ""]
    atomic_write_text(spec.out / "README.md", "\n".join(lines))
    atomic_write_bytes(spec.out / "curves.png", _plot(table, grid))


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the README shows it: the change with its interval in one cell, no wall time."""
    shown = table.drop(columns=["wall_s_this_session", "change_low", "change_high"]).copy()
    shown["change"] = [
        f"{c:+.3f} [{lo:+.3f}, {hi:+.3f}]" for c, lo, hi in zip(table.change, table.change_low, table.change_high)
    ]
    return shown


MEASURED = ("first_tenth", "last_tenth", "change", "change_low", "change_high", "slope_p", "kl_ref_last")


def _read(csv: Path) -> pd.DataFrame:
    """A sweep.csv as ``measure`` made it: grid values as written on the command line, measurements as floats."""
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    for col in table.columns:
        if col in MEASURED or col.startswith("heldout"):
            table[col] = pd.to_numeric(table[col])
    return table


def stale(root: Path) -> list[Path]:
    """The sweep READMEs under ``root`` whose table no longer matches their ``sweep.csv`` (numbers compared up
    to the rounding of the csv): what ``ood-bench leaderboard sweeps --check`` reports."""

    out = []
    for csv in sorted(Path(root).glob("*/sweep.csv")):
        readme = csv.parent / "README.md"
        table = _markdown(_shown(_read(csv)))
        text = readme.read_text() if readme.is_file() else ""
        committed = "\n".join(ln for ln in text.splitlines() if ln.startswith("|"))
        if not same_up_to_rounding(committed, table):
            out.append(readme)
    return out


def _markdown(df: pd.DataFrame) -> str:
    def cell(v) -> str:
        if v is None or v == "" or (isinstance(v, float) and v != v):
            return "-"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns)
    return head + "".join("\n| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False))


def _plot(table: pd.DataFrame, grid: list[Point]) -> bytes:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # late: only after matplotlib.use("Agg") has picked the headless backend

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    palette = [BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY, BLACK, YELLOW]  # Okabe-Ito: colour-blind safe
    for i, point in enumerate(grid):
        curve = pd.read_csv(io.StringIO(training_curves(Path(point.config.out_dir))))
        column = "objective" if "objective" in curve.columns else "reward"
        if column not in curve:
            continue
        y = curve[column].rolling(SMOOTH, min_periods=1).mean()
        ax.plot(
            curve["step"],
            y,
            color=palette[i % len(palette)],
            ls=("-", "--")[i // len(palette) % 2],
            label=point.name,
            lw=1.5,
        )
    ax.set_xlabel("gradient step")
    ax.set_ylabel(f"{table['objective'].iloc[0]} (moving average of {SMOOTH} steps)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
