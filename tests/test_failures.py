"""The failure classifier on hand-made completions, its tables and probes, and the ``failures`` command."""

import json
import re
from pathlib import Path

import pytest

from ood_bench.cli import main
from ood_bench.evaluation.failures import (
    CATEGORIES,
    GREEDY,
    answer_probe,
    breakdown,
    by_k,
    classify,
    line_end_probe,
    line_format,
    start_copy_probe,
    trace_format,
)
from ood_bench.model.model import GPT, ModelConfig
from ood_bench.tasks.base import SPLITS

ROOT = Path(__file__).resolve().parents[1]
QUICK_BASE = ROOT / "leaderboards" / "quick" / "bases" / "base-e0-s0.safetensors"


@pytest.fixture(scope="module")
def graph(tasks):
    return tasks.get("graph")


@pytest.fixture(scope="module")
def string(tasks):
    return tasks.get("string")


def _deep(family, split="id", lines=2):
    """A problem of ``split`` whose gold trace has at least ``lines`` lines."""
    return next(p for p in (family.generate(split, 0, i) for i in range(200)) if len(p.steps) >= lines)


def _text(steps, answer):
    return "".join(s + "\n" for s in steps) + "#" + answer


def test_each_family_pattern_takes_its_own_gold_lines_and_never_the_others(families, graph, string):
    for fam in (graph, string):
        other = string if fam is graph else graph
        for split in SPLITS:
            for i in range(50):
                for line in fam.generate(split, 0, i).steps:
                    assert re.fullmatch(fam.step_pattern, line), (fam.name, line)
                    assert not re.fullmatch(other.step_pattern, line), (fam.name, line)
                    assert line_format(line, fam, families) == "own"
                    assert line_format(line, other, families) == "other"


def test_a_right_answer_is_no_failure_whatever_its_trace(graph, families):
    p = _deep(graph)
    assert classify(graph, p, p.completion, others=families) is None
    assert classify(graph, p, _text(["AxB"], p.answer), others=families) is None  # a wrong trace, a right answer


def test_the_categories_on_hand_made_graph_completions(graph, families):
    p = _deep(graph)
    gold, wrong_answer = list(p.steps), p.answer[:-1] + ("A" if p.answer[-1] != "A" else "B")
    bad_line = gold[0][:-1] + ("A" if gold[0][-1] != "A" else "B")  # right shape, wrong node

    def cls(text, finished=True):
        return classify(graph, p, text, finished, families)

    assert cls(gold[0] + "\nAxB", finished=False) == "token_cap"  # no <eos> within the budget
    assert cls(_text(["rev:ABCD", *gold[1:]], wrong_answer)) == "other_family"  # a string-family line
    assert cls(_text(["+-yF", *gold[1:]], wrong_answer)) == "format"  # a line of no family's shape
    assert cls("".join(s + "\n" for s in gold)) == "format"  # no answer line at all
    assert cls(_text(gold[:1], gold[0][-1])) == "stopped_early"  # the answer after one of several steps
    assert cls(_text([*gold, gold[-1]], wrong_answer)) == "extra_step"
    assert cls(_text([bad_line, *gold[1:]], wrong_answer)) == "wrong_step"
    assert cls(_text(gold, wrong_answer)) == "miscopy"  # every step right, the answer not
    assert cls("") == "format"  # nothing written: no answer line
    assert cls("#" + wrong_answer) == "stopped_early"  # the answer before any step


def test_the_categories_on_hand_made_string_completions(string, families):
    p = _deep(string, lines=2)
    gold = list(p.steps)
    wrong = p.answer[::-1]

    def cls(text, finished=True):
        return classify(string, p, text, finished, families)

    assert cls(_text(["AxB", *gold[1:]], wrong)) == "other_family"  # a graph-family line
    assert cls(_text(["swp::ABCD", *gold[1:]], wrong)) == "format"
    assert cls(_text(["xyz:ABCD", *gold[1:]], wrong)) == "format"  # not one of its ops
    # three lines of a deeper trace, leaving steps out: still an early stop, but not a clean one
    skipped = [gold[0], gold[-1]]
    assert cls(_text(skipped[:1], wrong)) == "stopped_early"
    assert cls(_text(gold, wrong)) == "miscopy"
    assert cls(_text(gold, p.answer + "A"), finished=False) == "token_cap"


def test_a_trace_format_is_another_family_s_if_any_line_is(graph, string, families):
    g = _deep(graph)
    assert trace_format(g.completion, graph, families) == "own"
    assert trace_format(_text([g.steps[0], "rot:ABCD"], "X"), graph, families) == "other"
    assert trace_format(_text([g.steps[0], "+-yF"], "X"), graph, families) == "none"
    assert trace_format("#AB", graph, families) == "own"  # no step line borrows anything


def test_breakdown_counts_failed_samples_by_reason_and_every_sample_for_cap_and_format():
    def row(category, sample=0, finished=True, fmt="own", prefix=False):
        return {
            "family": "graph",
            "split": "id",
            "sample": sample,
            "category": category,
            "finished": finished,
            "format": fmt,
            "gold_prefix": prefix,
        }

    rows = [
        row(None),
        row(None),
        row("stopped_early", prefix=True),
        row("stopped_early"),
        row("other_family", fmt="other"),
        row("token_cap", finished=False),
        row("wrong_step", sample=GREEDY),
    ]
    sampled, greedy = sorted(breakdown(rows), key=lambda r: r["decoding"], reverse=True)
    assert sampled["decoding"] == "sampled" and sampled["samples"] == 6
    assert sampled["failed"] == 4 / 6
    assert sampled["stopped_early"] == 0.5 and sampled["other_family"] == 0.25 and sampled["token_cap"] == 0.25
    assert sum(sampled[c] for c in CATEGORIES) == pytest.approx(1.0)
    assert sampled["clean_stop"] == 0.5  # one of the two early stops had only right lines
    assert sampled["capped"] == 1 / 6 and sampled["other_format"] == 1 / 6 and sampled["own_format"] == 5 / 6
    assert greedy["decoding"] == "greedy" and greedy["failed"] == 1.0 and greedy["wrong_step"] == 1.0


def test_probes_read_gold_traces_on_a_tiny_model(graph, string):
    import torch

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=256)).eval()
    deep = [string.generate("ood_depth", 0, i) for i in range(3)]
    rows = answer_probe(model, deep)
    assert [r["k"] for r in rows] == list(range(1, max(len(p.steps) for p in deep)))
    assert all(0 <= r["p_answer"] <= 1 and 0 <= r["next_line_right"] <= 1 for r in rows)
    long = [string.generate("ood_length", 0, i) for i in range(3)]
    rows = line_end_probe(model, long)
    assert {r["state_length"] for r in rows} == {len(p.answer) for p in long}
    assert sum(r["count"] for r in rows) == sum(len(s.split(":")[1]) for p in long for s in p.steps) + sum(
        len(p.answer) for p in long
    )
    table = by_k(rows, "p_end")
    assert all("k=1" in t for t in table)
    copies = start_copy_probe(model, [graph.generate(s, 0, i) for s in ("id", "ood_length") for i in range(4)])
    assert sum(r["count"] for r in copies) == 8 and {r["split"] for r in copies} == {"id", "ood_length"}


@pytest.mark.skipif(not QUICK_BASE.is_file(), reason="the published quick base is not in this checkout")
def test_the_failures_command_on_a_published_base(tmp_path, capsys):
    out = tmp_path / "f.json"
    rc = main(
        [
            "failures",
            "--checkpoint",
            str(QUICK_BASE),
            "--splits",
            "id",
            "ood_length",
            "--n-test",
            "2",
            "--n",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "stopped_early" in text and "own_format" in text and "copy distance" in text
    data = json.loads(out.read_text())
    assert len(data["samples"]) == 2 * 2 * 2 * (1 + 1)  # families x splits x problems x (sampled + greedy)
    assert {r["category"] for r in data["samples"]} <= {None, *CATEGORIES}
    assert "graph_start_copy" in data["probes"] and "string_line_end_ood_length" in data["probes"]


def test_the_failures_command_refuses_bad_values(capsys):
    if not QUICK_BASE.is_file():
        pytest.skip("the published quick base is not in this checkout")
    assert main(["failures", "--checkpoint", str(QUICK_BASE), "--n-test", "0"]) == 2
    assert "--n-test=0" in capsys.readouterr().err
    assert main(["failures", "--checkpoint", str(QUICK_BASE), "--splits", "ood_banana"]) == 2
    assert "ood_banana" in capsys.readouterr().err


def test_every_gold_completion_fits_the_decoding_budget_of_its_batch(families):
    """A split must never fail by the token cap on its own gold trace: the gold completion and its <eos>
    fit evaluation's max_new_tokens, and what block_size leaves after the longest prompt of the split
    (the rollout engine left-pads a batch to that prompt and decodes at most block_size minus it)."""
    from ood_bench.data import held_out_problems
    from ood_bench.evaluation.evaluate import EvalConfig
    from ood_bench.model.model import ModelConfig
    from ood_bench.model.tokenizer import TOKENIZER

    max_new, block = EvalConfig().max_new_tokens, ModelConfig().block_size
    for fam in families:
        for split in SPLITS:
            problems = held_out_problems(fam, split, 500)
            longest_prompt = max(len(TOKENIZER.encode(p.prompt, bos=True)) for p in problems)
            budget = min(max_new, block - longest_prompt)
            longest_gold = max(len(TOKENIZER.encode(p.completion, eos=True)) for p in problems)
            assert longest_gold <= budget, (fam.name, split, longest_gold, budget)


def test_graph_ood_length_copies_its_start_node_from_further_back_than_id_ever_does(graph):
    """The first trace line copies the start node from ``len(prompt) - 2`` tokens back. Every ood_length
    problem copies from further than any ID problem (the edge list grows with the nodes), so an
    ood_length failure may be a copy failure: ``start_copy_probe`` measures it against distance."""
    from ood_bench.data import held_out_problems

    def distances(split):
        return [len(p.prompt) - 2 for p in held_out_problems(graph, split, 500)]

    for split in ("id", "ood_length"):
        for p in held_out_problems(graph, split, 50):
            assert p.steps[0][0] == p.prompt[2]  # the first line starts with the start node
    assert max(distances("id")) < min(distances("ood_length"))
    assert max(distances("id")) <= 60  # 5 nodes, three 5-symbol steps: the layout's ID bound
