"""--check on what the page and plots add to the tables: the page's cell and per-seed data, its per-problem
block, leaderboard.json's per-seed rows, and a plot drawn by another version of the drawing code are all
stale when they no longer match the records."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from ood_bench.board import board_plots, suite_board
from ood_bench.board.board_page import PROBLEMS_BLOCK, _script_json
from ood_bench.cli import main

from .test_suite import golden_records


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    golden_records(root)
    suite_board.write(root)
    return root


def _check(folder, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["leaderboard", str(folder), "--check"])
    return code, capsys.readouterr().err


def test_check_catches_a_stale_drill_down_per_problem_block_and_per_seed_rows(board, tmp_path, capsys):
    folder = tmp_path / "board"
    shutil.copytree(board, folder)
    assert _check(folder, capsys)[0] == 0
    page = folder / "index.html"
    good = page.read_text()

    # a seed's change in the drill-down's data, moved by 0.1: stale
    block = re.compile(r'(<script type="application/json" id="board-data">)(.*?)(</script>)', re.S)
    data = json.loads(block.search(good).group(2))
    seeds = data["seeds"]
    seeds["rows"][0][seeds["columns"].index("d_trace")] += 0.1
    page.write_text(block.sub(lambda m: m.group(1) + _script_json(data) + m.group(3), good))
    code, err = _check(folder, capsys)
    assert code == 2 and "index.html" in err

    # one problem's byte in the per-problem block: stale (the block is compared exactly)
    blob = PROBLEMS_BLOCK.search(good)
    posts = json.loads(blob.group(2))["posts"]
    run, splits = next(iter(posts.items()))
    split, encoded = next(iter(splits.items()))
    other = ("A" if encoded[0] != "A" else "B") + encoded[1:]
    page.write_text(good.replace(f'"{split}":"{encoded}"', f'"{split}":"{other}"', 1))
    code, err = _check(folder, capsys)
    assert code == 2 and "index.html" in err
    page.write_text(good)

    # leaderboard.json's per-seed rows are part of the published numbers
    lb = folder / "leaderboard.json"
    board_json = json.loads(lb.read_text())
    board_json["per_seed"][0]["trace_post"] += 0.25
    lb.write_text(json.dumps(board_json, indent=1, sort_keys=True) + "\n")
    code, err = _check(folder, capsys)
    assert code == 2 and "leaderboard.json" in err and "index.html" not in err


def test_check_catches_a_plot_drawn_by_other_drawing_code(board, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "board"
    shutil.copytree(board, folder)
    assert _check(folder, capsys)[0] == 0
    # the same data drawn by a changed board_plots: every plot is stale, and nothing else is
    real = board_plots.Path.read_text
    monkeypatch.setattr(
        board_plots.Path,
        "read_text",
        lambda self, *a, **k: (
            real(self, *a, **k) + "# changed" if self.name == "board_plots.py" else real(self, *a, **k)
        ),
    )
    (folder / "rendered.json").unlink()  # the fast path would see no change of the inputs it hashes
    code, err = _check(folder, capsys)
    assert code == 2
    assert all(name in err for name in suite_board.PLOTS.values())
    assert "index.html" not in err and "README.md" not in err
