"""Leaderboard tables regenerate from their records, and --check catches stale ones."""

import json
import shutil
from pathlib import Path

from ood_bench.cli import main
from ood_bench.storage.eval_records import manifest

RECORDS = Path(__file__).resolve().parents[1] / "leaderboards" / "records"


def test_committed_leaderboard_matches_its_records():
    assert main(["leaderboard", str(RECORDS), "--check"]) == 0


def test_check_catches_records_that_changed_after_the_tables(tmp_path, capsys):
    for run in ("base-id500", "grpo-id-s0-id500"):
        shutil.copytree(RECORDS / "quick" / run, tmp_path / "suite" / run)
    assert main(["leaderboard", str(tmp_path)]) == 0
    for name in ("results.csv", "support.csv", "leaderboard.md", "leaderboard.png"):
        assert (tmp_path / name).is_file(), name
    support = (tmp_path / "support.csv").read_text().splitlines()
    assert support[0].startswith("run,base,family,split") and len(support) == 3  # graph and string rows
    assert main(["leaderboard", str(tmp_path), "--check"]) == 0
    capsys.readouterr()

    # one problem of the post-trained model scores one sample differently: the support table moves
    counts = tmp_path / "suite" / "grpo-id-s0-id500" / "samples" / "graph__id.jsonl"
    recs = [json.loads(line) for line in counts.read_text().splitlines()]
    recs[0]["c"] += 1 if recs[0]["c"] < recs[0]["n"] else -1
    counts.write_text("".join(json.dumps(r) + "\n" for r in recs))
    # edited behind its evaluation's back, the file no longer matches the manifest: refused
    assert main(["leaderboard", str(tmp_path), "--check"]) == 2
    assert "was changed after" in capsys.readouterr().err
    # a legitimate new evaluation (its manifest rewritten with it) leaves the committed tables stale
    record = json.loads((counts.parent.parent / "eval.json").read_text())
    record["files"] = manifest(counts.parent.parent)
    (counts.parent.parent / "eval.json").write_text(json.dumps(record))
    assert main(["leaderboard", str(tmp_path), "--check"]) == 2
    err = capsys.readouterr().err
    assert "support.csv" in err and "results.csv" not in err  # the summary rows did not change


def test_unknown_records_folder_is_a_one_line_error(capsys):
    assert main(["leaderboard", "no-such-records", "--check"]) == 2
    assert "no records folder 'no-such-records'" in capsys.readouterr().err


def _copy_records_board(tmp_path):
    board = tmp_path / "records"
    shutil.copytree(RECORDS, board)
    return board


def test_check_ignores_last_digit_noise_of_another_machines_arithmetic(tmp_path):
    # A sum of tiny probabilities came out 2.23073e-11 on one machine and 2.23075e-11 on another: the
    # records are the same, so the tables are not stale.
    board = _copy_records_board(tmp_path)
    support = board / "support.csv"
    text = support.read_text()
    import re

    tiny = re.search(r"(?<=,)(\d\.\d{5})e-(1\d)(?=,)", text)
    assert tiny, "the committed support table should hold a tiny probability to perturb"
    last = int(tiny.group(1)[-1])
    bumped = f"{tiny.group(1)[:-1]}{(last + 2) % 10 if last < 8 else last - 2}e-{tiny.group(2)}"
    support.write_text(text[: tiny.start()] + bumped + text[tiny.end() :])
    assert main(["leaderboard", str(board), "--check"]) == 0


def test_check_catches_a_change_a_reader_could_see(tmp_path, capsys):
    board = _copy_records_board(tmp_path)
    markdown = board / "leaderboard.md"
    text = markdown.read_text()
    import re

    cell = re.search(r"(?<= )0\.(\d)(\d\d)(?= )", text)
    changed = f"0.{(int(cell.group(1)) + 1) % 10}{cell.group(2)}"  # +0.1 in a three-decimal cell
    markdown.write_text(text[: cell.start()] + changed + text[cell.end() :])
    assert main(["leaderboard", str(board), "--check"]) == 2
    assert "leaderboard.md" in capsys.readouterr().err


def test_numbers_compare_at_the_stated_tolerance():
    from ood_bench.storage.numeric_text import same_up_to_rounding

    assert same_up_to_rounding("E_null 2.23073e-11 x", "E_null 2.23075e-11 x")
    assert same_up_to_rounding("| 0.123 |", "| 0.124 |")  # a rounding boundary crossed by last-bit noise
    assert not same_up_to_rounding("| 0.123 |", "| 0.126 |")
    assert not same_up_to_rounding("E 2.23e-11", "E 4.46e-11")
    assert not same_up_to_rounding("base-e0 0.5", "base-e2 0.5")  # words and names compare exactly
    assert not same_up_to_rounding("0.5 0.5", "0.5")
    assert same_up_to_rounding("nan, 12,345", "nan, 12,345")
