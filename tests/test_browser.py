"""The committed leaderboard pages, opened in a real headless Chromium: no console error, the generated
verdicts at the top, significance marked, sorting that works, filters that show the rows they say, a drill-down
whose per-seed values are leaderboard.json's, and screenshots.

The screenshots go to a temporary folder; with ``OOD_BENCH_SCREENSHOTS=1`` they renew the published ones in
``docs/screenshots/`` (the page's top, the filtered table, a drill-down), which the README shows.
"""

import json
import os
from pathlib import Path

import pytest

from .browser import chromium_page

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"


def _shot(page, tmp_path, name: str) -> bytes:
    shot = page.screenshot(full_page=False)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
    folder = SHOTS if os.environ.get("OOD_BENCH_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(shot)
    return shot


@pytest.mark.parametrize("suite", ["quick", "standard"])
def test_the_committed_page_opens_clean_and_answers_in_the_browser(suite, tmp_path):
    page_file = ROOT / "leaderboards" / suite / "index.html"
    board = json.loads((ROOT / "leaderboards" / suite / "leaderboard.json").read_text())
    with chromium_page() as (page, errors):
        page.goto(page_file.as_uri())
        verdicts = page.locator("ul.verdicts li")
        if board["verdicts"]:
            assert verdicts.count() == len(board["verdicts"])
            assert verdicts.first.inner_text().startswith(board["verdicts"][0]["claim"])
        else:  # a board whose positive control failed publishes none, and says why where they would stand
            assert verdicts.count() == 1 and verdicts.first.inner_text().startswith("No verdicts on the")
        # the positive control comes first, one row per exposure level it names, with its status
        control = page.locator("table.control tbody tr")
        assert control.count() == len(board["positive_control"]) and control.first.is_visible()
        # cells at q < 0.05 are marked, and only they
        significant = sum(
            1
            for r in board["headline"]
            if r["q"] is not None
            and r["q"] < 0.05
            and r["split"] != "edge"
            and not (r["trace_base"] == 0 and r["trace_post"] == 0)
        )
        table = page.locator("table.sortable").first
        assert table.locator("strong.sig").count() == significant
        # ... and coloured by their sign
        gains = sum(1 for r in board["headline"] if r["split"] != "edge" and r["q"] is not None and r["q"] < 0.05
                    and r["d_trace"] > 0 and not (r["trace_base"] == 0 and r["trace_post"] == 0))  # fmt: skip
        assert table.locator("td.pos-sig").count() == gains
        assert table.locator("td.neg-sig").count() == significant - gains
        _shot(page, tmp_path, f"{suite}.png")

        # sorting by a column reorders the rows
        first_cells = lambda: table.locator("tbody tr td:first-child").all_inner_texts()  # noqa: E731
        before = first_cells()
        table.locator("th", has_text="algorithm").click()
        after = first_cells()
        assert after == sorted(before) and after != before

        # the filters: each shows the rows leaderboard.json has for it, and says how many
        lines = {(r["row"], r["trained_on"], r["exposure"]) for r in board["headline"]}
        visible = lambda: page.locator("#gain-table tbody tr:visible").count()  # noqa: E731
        assert visible() == len(lines)
        page.select_option("#f-row", "grpo")
        grpo = {line for line in lines if line[0] == "grpo"}
        assert visible() == len(grpo) < len(lines)
        assert page.locator("#shown").inner_text() == f"Showing {len(grpo)} of {len(lines)} rows"
        page.select_option("#f-trained", "id")
        assert visible() == len({line for line in grpo if line[1] == "id"})
        page.select_option("#f-split", "ood_depth")  # one evaluated axis: its column alone
        assert page.locator("#gain-table thead th[data-split]:visible").count() == 1
        assert page.locator("#gain-table tbody tr:visible td.cell:visible").count() == visible()
        # one exposure: the one whose cell has traces right (a drill-down with something in it)
        exposure = max(
            (r for r in board["headline"] if (r["row"], r["trained_on"], r["split"]) == ("grpo", "id", "ood_depth")),
            key=lambda r: r["trace_base"],
        )["exposure"]
        page.select_option("#f-exposure", exposure)
        assert visible() == 1
        # the filters are reachable by keyboard, in order
        page.locator("#f-split").focus()
        reached = []
        for _ in range(3):
            page.keyboard.press("Tab")
            reached.append(page.evaluate("document.activeElement.id"))
        assert reached == ["f-exposure", "f-row", "f-trained"]
        _shot(page, tmp_path, f"{suite}-filtered.png")

        # a drill-down, opened from the keyboard: each seed's values are leaderboard.json's
        button = page.locator("#gain-table tbody tr:visible td.cell:visible button.open").first
        cell = board["headline"][int(button.get_attribute("data-cell"))]
        assert (cell["row"], cell["trained_on"], cell["exposure"], cell["split"]) == (
            "grpo",
            "id",
            exposure,
            "ood_depth",
        )
        button.focus()
        page.keyboard.press("Enter")
        dialog = page.locator("dialog#drill")
        assert dialog.is_visible()
        assert cell["row"] in page.locator("#drill-title").inner_text()
        seeds = [
            s
            for s in board["per_seed"]
            if (s["row"], s["trained_on"], s["exposure"], s["split"])
            == (cell["row"], cell["trained_on"], cell["exposure"], cell["split"])
        ]
        rows = dialog.locator("#drill-seeds tbody tr")
        assert rows.count() == len(seeds) == cell["seeds"]
        for i, seed in enumerate(seeds):
            shown = {
                td.get_attribute("data-k"): td.get_attribute("data-v") for td in rows.nth(i).locator("td[data-k]").all()
            }
            for key in ("seed", "problems", "trace_base", "trace_post", "d_trace", "d_answer", "outside", "expanded"):
                if seed[key] is None:  # no tilt fitted: no expansion count, an empty cell
                    assert shown[key] == "", (key, shown, seed)
                    continue
                assert float(shown[key]) == pytest.approx(seed[key], rel=1e-12, abs=1e-15), (key, shown, seed)
            run = board["runs"][seed["run"]]  # and each run's compute is its record's
            assert float(shown["rollouts"]) == run["counters"]["rollouts"]
            assert float(shown["train_tokens"]) == run["counters"]["train_tokens"]
            assert rows.nth(i).locator("td[data-k=d_trace]").inner_text() == f"{seed['d_trace']:+.3f}".replace("-", "−")
        # the scatter has one point per problem and seed
        points = dialog.locator("svg circle:not(.expanded)").count()
        assert points == sum(s["problems"] for s in seeds)
        # the sample texts: the first seed's run that kept them, and its base, on the cell's split, marked as
        # their records say
        expected = []
        for seed in seeds:
            kept = ROOT / "leaderboards" / suite / "records" / seed["run"] / "examples.jsonl"
            found = [json.loads(x) for x in kept.read_text().splitlines()] if kept.is_file() else []
            expected = [e for e in found if e["split"] == cell["split"]]
            if expected:
                break
        shown = dialog.locator(".example")
        assert shown.count() == len(expected)
        if not expected:
            assert "None kept: these runs were recorded before" in dialog.inner_text()
        for i, e in enumerate(expected):
            post = shown.nth(i).locator(".ex-col").nth(1)
            assert post.locator("pre").inner_text() == e["sample"]
            mark = "right" if e["answer_ok"] and e["trace_ok"] else "wrong"
            assert post.locator(f"span.{mark}").count() == 1
        _shot(page, tmp_path, f"{suite}-drilldown.png")
        page.keyboard.press("Escape")
        assert not dialog.is_visible()
    assert not errors, errors
