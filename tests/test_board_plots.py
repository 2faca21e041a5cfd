"""The published plots, rebuilt from the committed records through the functions that drew them: no legend
covers what a figure draws (read from matplotlib's own layout), and what each plot shows holds together with
the tables (each seed's values average to its headline cell)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from ood_bench.board import board_data, board_plots, suite_board
from ood_bench.evaluation.support import Thresholds

from .legend_layout import legend_overlaps

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_the_legend_check_sees_a_legend_over_data_and_none_beside_it():
    # a legend in the middle of a panel, over a line, a scatter and an error bar: caught, each by name
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="line")
    ax.scatter([0.5], [0.5], label="points")
    ax.errorbar([0.45], [0.55], yerr=[0.1], label="interval")
    ax.legend(loc="center")
    hits = legend_overlaps(fig)
    assert any("Line2D" in h for h in hits) and any("PathCollection" in h for h in hits), hits
    plt.close(fig)
    # a legend in an empty corner of the panel covers nothing; nor does one outside every panel
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="line")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    assert legend_overlaps(fig) == []
    plt.close(fig)
    fig, ax = plt.subplots(layout="constrained")
    ax.fill_between([0, 1], [0, 0], [1, 1], label="band")
    fig.legend(loc="outside lower center")
    assert legend_overlaps(fig) == []
    plt.close(fig)


@pytest.fixture(scope="module", params=["quick", "standard"])
def published(request):
    """A committed board's plot data, rebuilt from its records as ``ood-bench leaderboard`` builds it."""
    root = ROOT / "leaderboards" / request.param
    rec = suite_board.Records(root)
    th = Thresholds()
    head = suite_board.headline(rec, th)
    families = suite_board.family_cells(rec, head, th, board_data.headline_rows(rec))
    data = board_data.plot_data(rec, head, th, board_data.seed_rows(rec, th, by_family=True), families)
    return root, rec, head, data


def test_no_legend_of_a_published_plot_covers_what_it_draws(published):
    root, _, _, data = published
    for name, file in suite_board.PLOTS.items():
        # the figure checked is the one published: its PNG carries the digest of the same data
        assert suite_board.png_digest(root / file) == board_plots.digest(data[name]), f"{file} is stale"
        fig = board_plots.figure(name, data[name])
        try:
            assert legend_overlaps(fig) == [], f"{root.name}/{file}: a legend covers {legend_overlaps(fig)[:5]}"
            assert fig.legends, f"{root.name}/{file} has no legend"
        finally:
            plt.close(fig)


def test_each_seed_of_a_headline_cell_averages_to_it(published):
    root, rec, head, _ = published
    per_seed = board_data.seed_rows(rec, Thresholds())
    mean = per_seed.groupby(["row", "trained_on", "exposure", "split"])[["d_trace", "trace_base", "trace_post"]].mean()
    cells = head.set_index(["row", "trained_on", "exposure", "split"])
    for column in ("d_trace", "trace_base", "trace_post"):
        np.testing.assert_allclose(mean[column].loc[cells.index], cells[column], atol=1e-9)
    seeds = per_seed.groupby(["row", "trained_on", "exposure", "split"]).size()
    assert (seeds.loc[cells.index].to_numpy() == cells["seeds"].to_numpy()).all()
    # and leaderboard.json publishes exactly these rows
    published_rows = json.loads((root / "leaderboard.json").read_text())["per_seed"]
    assert len(published_rows) == len(per_seed)
