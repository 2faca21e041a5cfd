"""The committed leaderboard pages, opened in a real headless Chromium: no console error, the generated
verdicts at the top, significance marked, sorting that works, and a screenshot."""

import json
from pathlib import Path

import pytest

from .browser import chromium_page

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("suite", ["quick", "standard"])
def test_the_committed_page_opens_clean_and_answers_in_the_browser(suite, tmp_path):
    page_file = ROOT / "leaderboards" / suite / "index.html"
    board = json.loads((ROOT / "leaderboards" / suite / "leaderboard.json").read_text())
    with chromium_page() as (page, errors):
        page.goto(page_file.as_uri())
        verdicts = page.locator("ul.verdicts li")
        assert verdicts.count() == len(board["verdicts"])
        assert verdicts.first.inner_text().startswith(board["verdicts"][0]["claim"])
        # cells at q < 0.05 are marked, and only they
        significant = sum(
            1
            for r in board["headline"]
            if r["q"] is not None
            and r["q"] < 0.05
            and r["split"] != "edge"
            and not (r["trace_base"] == 0 and r["trace_post"] == 0)
        )
        assert page.locator("table.sortable").first.locator("strong.sig").count() == significant
        # sorting by a column reorders the rows
        table = page.locator("table.sortable").first
        first_cells = lambda: table.locator("tbody tr td:first-child").all_inner_texts()  # noqa: E731
        before = first_cells()
        table.locator("th", has_text="algorithm").click()
        after = first_cells()
        assert after == sorted(before) and after != before
        shot = page.screenshot(full_page=False)
    assert not errors, errors
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
    (tmp_path / f"{suite}.png").write_bytes(shot)
