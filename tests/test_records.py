"""Evaluation folders that cannot be trusted are refused by ``compare`` and ``leaderboard``, one line
each, exit 2: no manifest, files that disagree with it, malformed rows, and evaluations that do not
belong together (other sampling settings, another base, a "null" that is not a re-sample)."""

import json
import shutil

import pytest

from ood_bench.cli import main

from .conftest import write_eval_folder

ROW = {
    "family": "string",
    "version": 2,
    "split": "id",
    "uid": "u0",
    "n": 4,
    "c": 1,
    "trace_c": 1,
    "full_c": 1,
    "gold_logprob": -1.0,
}


def rows(k=3, **change):
    return [{**ROW, "uid": f"u{i}", **change} for i in range(k)]


def pair(tmp_path, post_rows=None, **post_meta):
    base = write_eval_folder(
        tmp_path / "base", {"string__id": rows()}, eval_config={"temperature": 1.0}, checkpoint_sha256="aaa"
    )
    post = write_eval_folder(
        tmp_path / "post",
        {"string__id": post_rows or rows(c=2)},
        **{"eval_config": {"temperature": 1.0}, "base_checkpoint_sha256": "aaa", **post_meta},
    )
    return base, post


def _drop_manifest(post):
    rec = json.loads((post / "eval.json").read_text())
    del rec["files"]
    (post / "eval.json").write_text(json.dumps(rec))


def _stale_file(post):
    shutil.copy(post / "samples" / "string__id.jsonl", post / "samples" / "string__ood_depth.jsonl")


def _edit_file(post):
    f = post / "samples" / "string__id.jsonl"
    f.write_text(f.read_text().replace('"c": 2', '"c": 3', 1))


def _remove_file(post):
    (post / "samples" / "string__id.jsonl").unlink()


def _garbage_record(post):
    (post / "eval.json").write_text("{not json")


def _summary_without_file(post):
    rec = json.loads((post / "eval.json").read_text())
    rec["results"] = [{"family": "graph", "split": "id"}]
    (post / "eval.json").write_text(json.dumps(rec))


def _wrong_rows(post):
    rec = json.loads((post / "eval.json").read_text())
    rec["files"]["samples/string__id.jsonl"]["rows"] = 5
    (post / "eval.json").write_text(json.dumps(rec))


DAMAGE = [
    (_wrong_rows, "gives samples/string__id.jsonl 5 rows"),
    (_drop_manifest, "no manifest"),
    (_stale_file, "is not in the manifest"),
    (_edit_file, "was changed after"),
    (_remove_file, "but missing"),
    (_garbage_record, "unreadable evaluation record"),
    (_summary_without_file, "without its per-problem file"),
]


@pytest.mark.parametrize("damage,message", DAMAGE, ids=[d.__name__ for d, _ in DAMAGE])
def test_a_folder_that_disagrees_with_its_manifest_is_refused(tmp_path, capsys, damage, message):
    base, post = pair(tmp_path)
    assert main(["compare", str(base), str(post), "--json"]) == 0
    capsys.readouterr()
    damage(post)
    assert main(["compare", str(base), str(post), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("ood-bench: error:")


BAD_ROWS = [
    ([], "holds no per-problem records"),
    ([{k: v for k, v in ROW.items() if k != "c"}], "lack c"),
    (rows(c=5), "c=5 is outside 0..n"),
    (rows(n=0, c=0, trace_c=0, full_c=0), "n=0 must be at least 1"),
    (rows(c="two"), "is not a whole number"),
    (rows(c=1.5), "is not a whole number"),
    (rows(gold_logprob=0.5), "not a log-probability"),
    (rows(gold_logprob="low"), "not a log-probability"),
    (["just a string"], "is not a JSON object"),
    (rows(c=10**400), "not a count or a log-probability"),
]


@pytest.mark.parametrize("post_rows,message", BAD_ROWS, ids=[m for _, m in BAD_ROWS])
def test_malformed_per_problem_rows_are_one_line_errors(tmp_path, capsys, post_rows, message):
    base, post = pair(tmp_path)
    shutil.rmtree(post)
    write_eval_folder(post, {"string__id": post_rows})
    assert main(["compare", str(base), str(post)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_evaluations_that_do_not_belong_together_are_refused(tmp_path, capsys):
    base, post = pair(tmp_path, eval_config={"temperature": 0.7})
    assert main(["compare", str(base), str(post)]) == 2
    assert "sampled with temperature=0.7" in capsys.readouterr().err

    base, post = pair(tmp_path / "b", base_checkpoint_sha256="bbb")
    assert main(["compare", str(base), str(post)]) == 2
    assert "post-trained from another base" in capsys.readouterr().err

    base, post = pair(tmp_path / "s", checkpoint_sha256="ppp")
    assert main(["compare", str(post), str(base)]) == 2
    assert "the arguments are swapped" in capsys.readouterr().err

    base, post = pair(tmp_path / "c")
    same_seed = write_eval_folder(tmp_path / "c" / "null", {"string__id": rows()}, checkpoint_sha256="aaa")
    assert main(["compare", str(base), str(post), "--null", str(same_seed)]) == 2
    assert "used the base's own sampling seed" in capsys.readouterr().err
    other = write_eval_folder(tmp_path / "c" / "null2", {"string__id": rows()}, seed=1, checkpoint_sha256="ccc")
    assert main(["compare", str(base), str(post), "--null", str(other)]) == 2
    assert "evaluates another checkpoint than the base" in capsys.readouterr().err
    good = write_eval_folder(tmp_path / "c" / "null3", {"string__id": rows()}, seed=1, checkpoint_sha256="aaa")
    assert main(["compare", str(base), str(post), "--null", str(good), "--json"]) == 0


SUMMARY = {
    "family": "string",
    "split": "id",
    "problems": 3,
    "n": 4,
    "greedy": 0.5,
    "pass@1": 0.25,
    "pass@1_stderr": 0.1,
    "pass@4": 0.5,
}


@pytest.mark.parametrize(
    "row,message",
    [
        ({k: v for k, v in SUMMARY.items() if k != "pass@1"}, "lacks pass@1"),
        ({**SUMMARY, "n": "4"}, "not a count"),
        ({k: v for k, v in SUMMARY.items() if k != "pass@4"}, "lacks pass@4"),
        ({**SUMMARY, "greedy": "high"}, "greedy='high', not a number"),
        ("a string", "is not an object"),
    ],
    ids=["missing-key", "n-string", "missing-pass@n", "wrong-type", "not-object"],
)
def test_a_leaderboard_record_with_a_bad_summary_row_is_one_line(tmp_path, capsys, row, message):
    run = write_eval_folder(tmp_path / "suite" / "base", {"string__id": rows()})
    rec = json.loads((run / "eval.json").read_text())
    rec["results"] = [SUMMARY]
    (run / "eval.json").write_text(json.dumps(rec))
    assert main(["leaderboard", str(tmp_path / "suite")]) == 0
    rec["results"] = [row]
    (run / "eval.json").write_text(json.dumps(rec))
    capsys.readouterr()
    assert main(["leaderboard", str(tmp_path / "suite"), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_support_record_without_its_base_is_one_line(tmp_path, capsys):
    run = write_eval_folder(tmp_path / "suite" / "post", {"string__id": rows()})
    rec = json.loads((run / "eval.json").read_text())
    rec["results"] = [SUMMARY]
    (run / "eval.json").write_text(json.dumps(rec))
    (run / "support.json").write_text(json.dumps({"results": []}))
    assert main(["leaderboard", str(tmp_path / "suite")]) == 2
    assert "does not name its base evaluation" in capsys.readouterr().err


def test_a_binary_support_record_or_table_is_one_line(tmp_path, capsys):
    run = write_eval_folder(tmp_path / "suite" / "post", {"string__id": rows()})
    rec = json.loads((run / "eval.json").read_text())
    rec["results"] = [SUMMARY]
    (run / "eval.json").write_text(json.dumps(rec))
    (run / "support.json").write_bytes(b"\xff\xfe\x00")
    assert main(["leaderboard", str(tmp_path / "suite")]) == 2
    assert "unreadable record" in capsys.readouterr().err
    (run / "support.json").unlink()
    assert main(["leaderboard", str(tmp_path / "suite")]) == 0
    (tmp_path / "suite" / "results.csv").write_bytes(b"\xff\xfe\x00")
    capsys.readouterr()
    assert main(["leaderboard", str(tmp_path / "suite"), "--check"]) == 2
    assert "stale leaderboard files" in capsys.readouterr().err


def test_published_weights_are_the_same_bytes_whichever_directory_the_run_wrote_to(tmp_path):
    # the config's out_dir named the machine's work directory, so every clone published other bytes
    import torch

    from ood_bench.storage.checkpoints import CHECKSUM_KEY, atomic_torch_save, read_checkpoint, state_digest
    from ood_bench.storage.run_records import restore_checkpoint, save_weights

    state = {"model.w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    published = []
    for where in ("/home/alice/ood/runs/quick/base-e0-s0", "/tmp/clone/runs/quick/base-e0-s0"):
        ckpt = {
            "state_dict": state,
            CHECKSUM_KEY: state_digest(state),
            "global_step": 7,
            "hyper_parameters": {"config": {"seed": 0, "out_dir": where}, "identity": "abc"},
        }
        src = tmp_path / f"{len(published)}.ckpt"
        atomic_torch_save(ckpt, src)
        target = tmp_path / f"{len(published)}.safetensors"
        save_weights(src, target)
        published.append(target.read_bytes())
    assert published[0] == published[1]
    assert b"alice" not in published[0] and b"/tmp/" not in published[0]
    restore_checkpoint(tmp_path / "0.safetensors", tmp_path / "restored.ckpt")
    restored = read_checkpoint(tmp_path / "restored.ckpt")
    assert restored["hyper_parameters"] == {"config": {"seed": 0, "out_dir": "base-e0-s0"}, "identity": "abc"}
    assert torch.equal(restored["state_dict"]["model.w"], state["model.w"]) and restored["global_step"] == 7


def test_weights_published_with_three_metadata_entries_still_restore(tmp_path):
    import json

    import torch
    from safetensors.torch import save_file

    from ood_bench.storage.checkpoints import CHECKSUM_KEY, read_checkpoint, state_digest
    from ood_bench.storage.run_records import restore_checkpoint

    state = {"model.w": torch.ones(2, 2)}
    old = tmp_path / "old.safetensors"
    save_file(
        state,
        str(old),
        metadata={
            "hyper_parameters": json.dumps({"config": {"seed": 1}}),
            "sha256": state_digest(state),
            "global_step": "3",
        },
    )
    restore_checkpoint(old, tmp_path / "restored.ckpt")
    ckpt = read_checkpoint(tmp_path / "restored.ckpt")
    assert ckpt["hyper_parameters"] == {"config": {"seed": 1}} and ckpt["global_step"] == 3
    assert ckpt[CHECKSUM_KEY] == state_digest(state)
