"""Leaderboard tables regenerate from their records, and --check catches stale ones."""

import json
import shutil
from pathlib import Path

from ood_bench.cli import main
from ood_bench.results import manifest

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
