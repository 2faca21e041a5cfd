"""A suite's leaderboard, rebuilt from its run records with pandas.

``leaderboards/<suite>/`` gets ``README.md`` (the headline tables), ``leaderboard.csv``
and ``leaderboard.json`` (the same rows with every metric, plus the per-family
support rows and the per-seed rows of every run), four PNG plots (``board_plots``)
and ``index.html`` (tables, filters, a drill-down per cell and plots on one
self-contained page: ``board_page``). Every number comes from the records' per-problem
counts and exact log-probabilities, read through their manifests; nothing is copied
from a summary. Each plot carries a digest of the data it draws and of the code that
draws it in its PNG metadata, so ``--check`` can tell a stale plot from a current one
without comparing pixels.

This module assembles the board and keeps it current: ``render`` (every file's text and the plots' data),
``write``, ``stale`` (what ``--check`` reports, fast through ``rendered.json`` when nothing changed), the
digests of records and outputs, and whether a folder is a suite's. The numbers and text come from the
modules beside it, one job each: ``records`` (reading the run records), ``headline`` (the cells with 95%
intervals over pretraining seeds, problems and sampling from ``board_stats``, Benjamini-Hochberg q-values and
minimum detectable effects; expansion counted beyond each run's own tilt), ``control`` (the RL positive
control: did the control row train, ``did_train``), ``calibration`` (the intervals on real nulls),
``readme`` (the tables and ``README.md`` as text), ``verdicts`` (the paper's claims, generated from these
numbers), ``board_data``, ``board_plots`` and ``board_page``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
from PIL import Image

from ..evaluation.support import Thresholds
from ..storage.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..storage.numeric_text import same_up_to_rounding
from ..storage.run_records import RECORD
from ..suite.suite import SUITE_DIR, expand, load_suite
from . import board_data, board_page, board_plots, verdicts
from .board_page import same_page
from .board_plots import DIGEST_KEY, digest
from .calibration import CALIBRATION, calibration
from .control import control_status, positive_control
from .headline import cell_stats, family_cells, headline, paired, support_rows
from .readme import headline_text, readme_text, suite_text
from .records import Records, eval_splits, record_digest

# what other code and the tests reach through this module; the last two, by their names from before the board
# was split into the modules above (tests/test_suite.py, tests/test_board_stats.py)
__all__ = [
    "CSV",
    "HTML",
    "JSON",
    "PLOTS",
    "README",
    "RENDERED",
    "Records",
    "calibration",
    "changed_records",
    "expected_keys",
    "family_cells",
    "headline",
    "headline_text",
    "is_suite_folder",
    "png_digest",
    "record_digest",
    "render",
    "stale",
    "write",
    "_cell",
    "_paired",
]
_paired, _cell = paired, cell_stats

README, CSV, JSON, HTML = "README.md", "leaderboard.csv", "leaderboard.json", "index.html"

PLOTS = {
    "gain": "gain_vs_exposure.png",
    "tilt": "q_post_vs_q_base.png",
    "passk": "pass_at_k.png",
    "curves": "training_curves.png",
}


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _json(
    head: pd.DataFrame,
    support: pd.DataFrame,
    rec: Records,
    found: list,
    tilts: pd.DataFrame,
    cal: pd.DataFrame,
    per_seed: pd.DataFrame | None = None,
    control: pd.DataFrame | None = None,
) -> str:
    def clean(df):
        return json.loads(df.to_json(orient="records", double_precision=6)) if len(df) else []

    runs = {
        n: {
            **{
                k: r.get(k)
                for k in (
                    "kind",
                    "key",
                    "base",
                    "row",
                    "split",
                    "exposure",
                    "seed",
                    "algorithm",
                    "counters",
                    "timings",
                    "git_commit",
                    "git_dirty",
                    "results_version",
                )
            },
            "record_sha256": record_digest(rec.root / "records" / n),
        }
        for n, r in sorted(rec.runs.items())
    }
    return (
        json.dumps(
            {
                "suite": rec.suite,
                "headline": clean(head),
                "support": clean(support),
                "runs": runs,
                "verdicts": [v.as_dict() for v in found],
                "positive_control": clean(control) if control is not None else [],
                "tilts": clean(tilts),
                "calibration": clean(cal),
                # each headline cell's seeds, one line per (run, evaluated split): what the page's drill-down shows
                "per_seed": clean(per_seed) if per_seed is not None else [],
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


def png_digest(path: Path) -> str | None:
    try:
        with Image.open(path) as im:
            return (getattr(im, "text", None) or im.info).get(DIGEST_KEY)
    except Exception:  # a missing or damaged plot is simply stale
        return None


def render(
    root: Path, allow_dirty: bool = False, expected: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, tuple]]:
    """The text files (by name) and the plot data (by plot) of a suite folder's leaderboard."""
    rec = Records(root, allow_dirty, expected)
    th = Thresholds()
    head = headline(rec, th)
    support = support_rows(rec, th)
    expansions = verdicts.run_expansions(rec, th)
    control = positive_control(rec, head)
    status, why = control_status(control)
    withheld = f"the RL positive control failed ({why})" if status == "failed" else ""
    found = [] if withheld else verdicts.verdicts(rec, head, expansions)
    block = verdicts.markdown(rec.suite, found, withheld)
    cal = calibration(rec, th)
    readme = readme_text(rec, head, block, cal, control)
    # what the plots and the page draw beyond the tables: each seed's values, each family's cells, each problem
    per_seed = board_data.seed_rows(rec, th)
    families = family_cells(rec, head, th, board_data.headline_rows(rec))
    data = board_data.plot_data(rec, head, th, board_data.seed_rows(rec, th, by_family=True), families)
    texts = {
        README: readme,
        CSV: _csv(head),
        JSON: _json(head, support, rec, found, expansions, cal, per_seed, control),
    }
    extra = {"rec": rec, "head": head, "data": data, "readme": readme, "verdicts": block, "per_seed": per_seed}
    return texts, {
        **extra,
        "runs": board_data.run_rows(rec, th),
        "problems": board_data.problem_blob(rec, th),
        "examples": board_data.example_blob(rec),
    }


def _page(extra: dict, pngs: dict[str, bytes]) -> str:
    rec = extra["rec"]
    return board_page.page(
        rec,
        extra["head"],
        extra["per_seed"],
        extra["runs"],
        extra["problems"],
        extra["examples"],
        pngs,
        extra["readme"],
        splits=[s for s in eval_splits(rec) if s != "edge"],
        info=suite_text(rec),
        files=PLOTS,
    )


def write(root: Path, allow_dirty: bool = False, expected: dict[str, str] | None = None) -> Path:
    root = Path(root)
    texts, extra = render(root, allow_dirty, expected)

    pngs = {name: board_plots.png(name, extra["data"][name]) for name in PLOTS}
    for name, data in pngs.items():
        atomic_write_bytes(root / PLOTS[name], data)
    for name, text in texts.items():
        atomic_write_text(root / name, text)
    atomic_write_text(root / HTML, _page(extra, pngs))
    quoting = _quoting_readme(root, extra["rec"].suite)
    if quoting is not None:  # the project README quotes the block verbatim: renew the quote with the board
        text = quoting.read_text()
        atomic_write_text(quoting, text.replace(verdicts.block_in(text, extra["rec"].suite), extra["verdicts"]))
    atomic_write_json(
        root / RENDERED,
        {"inputs": _inputs_digest(root, allow_dirty, expected), "outputs": _outputs_digest(root, extra["rec"].suite)},
    )
    return root / README


RENDERED = "rendered.json"  # what the board was last rendered from, and what that gave: --check's fast path


def _inputs_digest(root: Path, allow_dirty: bool, expected: dict[str, str] | None) -> str:
    """sha256 of everything a board is made from: every file under ``records/`` and ``calibration/``, the
    code of this package (a change to how records are read re-renders), and the check's own arguments."""
    h = hashlib.sha256(json.dumps([allow_dirty, sorted((expected or {}).items())]).encode())
    for folder in (root / "records", root / CALIBRATION, Path(__file__).parents[1]):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(f"{path.relative_to(folder).as_posix()}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _outputs_digest(root: Path, suite: str) -> dict[str, str | None]:
    """sha256 of each published file of the board (and of the verdict block a README quotes)."""
    out = {}
    for name in (README, CSV, JSON, HTML, *PLOTS.values()):
        path = root / name
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    quoting = _quoting_readme(root, suite)
    if quoting is not None:
        out["quoted verdicts"] = hashlib.sha256(verdicts.block_in(quoting.read_text(), suite).encode()).hexdigest()
    return out


def _unchanged_since_rendered(root: Path, allow_dirty: bool, expected: dict[str, str] | None) -> bool:
    """True when the inputs are the ones the board was rendered from and no published file changed since:
    then nothing can be stale, and the check needs no rendering."""
    try:
        made = json.loads((root / RENDERED).read_text())
        suite = json.loads((root / JSON).read_text())["suite"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return made.get("inputs") == _inputs_digest(root, allow_dirty, expected) and made.get("outputs") == _outputs_digest(
        root, suite
    )


def stale(root: Path, allow_dirty: bool = False, expected: dict[str, str] | None = None) -> list[Path]:
    """Files of the leaderboard that differ from what the records give (missing ones included). Fast when
    neither the inputs nor any published file changed since the board was rendered; else renders again and
    compares, number by number at ``numeric_text``'s tolerance."""
    root = Path(root)
    if _unchanged_since_rendered(root, allow_dirty, expected):
        return []
    texts, extra = render(root, allow_dirty, expected)
    out = [
        root / name
        for name, text in texts.items()
        if not (root / name).is_file() or not same_up_to_rounding((root / name).read_text(errors="replace"), text)
    ]

    for name, file in PLOTS.items():
        if png_digest(root / file) != digest(extra["data"][name]):
            out.append(root / file)

    page = root / HTML
    if not page.is_file() or not same_page(page.read_text(errors="replace"), _page(extra, {n: b"" for n in PLOTS})):
        out.append(page)
    quoting = _quoting_readme(root, rec_suite := extra["rec"].suite)
    if quoting is not None and not same_up_to_rounding(
        verdicts.block_in(quoting.read_text(), rec_suite) or "", extra["verdicts"]
    ):
        out.append(quoting)
    return out


def _quoting_readme(root: Path, suite: str) -> Path | None:
    """The project README beside ``leaderboards/``, when it quotes this suite's verdict block."""
    readme = Path(root).resolve().parent.parent / README
    if readme.is_file() and verdicts.block_in(readme.read_text(errors="replace"), suite) is not None:
        return readme
    return None


def changed_records(root: Path) -> list[str]:
    """Runs whose ``record.json`` differs from the one the committed leaderboard was made from (an edit,
    or a run made again): named, so a reviewer looks at those records, not only at the tables."""
    try:
        made_from = json.loads((Path(root) / JSON).read_text()).get("runs", {})
    except (OSError, ValueError, AttributeError):
        return []
    out = []
    for name, entry in made_from.items():
        folder = Path(root) / "records" / name
        old = entry.get("record_sha256") if isinstance(entry, dict) else None
        if old and (folder / RECORD).is_file() and record_digest(folder) != old:
            out.append(name)
    return out


def is_suite_folder(root: Path) -> bool:
    return any(Path(root).glob(f"records/*/{RECORD}"))


def expected_keys(name: str, root: Path) -> dict[str, str]:
    """Run name -> key of an embedded suite's grid, when ``name`` is one and ``root`` is its folder."""

    if Path(root).name != name or not (SUITE_DIR / f"{name}.yaml").is_file():
        return {}
    return {s.name: s.key for s in expand(load_suite(name))}
