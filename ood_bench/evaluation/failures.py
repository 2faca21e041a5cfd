"""Why samples fail: one named reason per failed sample, and probes of the reasons a split should not have.

Each split should fail for its named reason (a longer chain, a longer string, new symbols, a new pair),
not because decoding hit the token cap, the model wrote another family's trace, or it stopped at the
ID depth. ``classify`` names, for each sample whose answer is wrong, the first thing that went wrong,
using the family's own scorer, trace parser and line format (``TaskFamily.step_pattern``):

- ``token_cap``: it never ended; the decoding budget (``max_new_tokens``, or what ``block_size``
  leaves after the prompt) ran out first;
- ``other_family``: a step line is in another family's trace format and not in its own;
- ``format``: a step line is in no family's format, or there is no answer line (``#``);
- ``stopped_early``: it wrote the answer after fewer step lines than the gold trace has (whatever
  those lines are: a model that stops at the ID depth often leaves steps out to get there);
- ``extra_step``: more step lines than the gold trace has;
- ``wrong_step``: as many lines as the gold trace, one of them wrong;
- ``miscopy``: the whole gold trace, right to the last step, then a wrong answer.

The comparison with the gold trace is the default scorer's (the families shipped here have one
correct trace); a family that accepts several traces gets ``wrong_step`` where its lines differ.

``sample_splits`` draws greedy and sampled completions of a model on the held-out test problems,
``breakdown`` tabulates them; ``line_end_probe``, ``answer_probe`` and ``start_copy_probe`` read the
model's next-token probabilities along gold traces, to tell a model that stops from a harness that
stops it. ``ood-bench failures --checkpoint FILE`` prints all of them.
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch

from ..data import held_out_problems
from ..model.rollout import pack, sample
from ..model.tokenizer import EOS, TOKENIZER
from ..tasks.base import Problem, TaskFamily, checked_score, parse_completion

CATEGORIES = ("token_cap", "other_family", "format", "stopped_early", "extra_step", "wrong_step", "miscopy")
GREEDY = -1  # the ``sample`` number of a greedy completion


def line_format(line: str, family: TaskFamily, others=()) -> str:
    """``"own"`` when ``line`` is in ``family``'s trace format, ``"other"`` when only in one of ``others``',
    ``"none"`` when in no family's. A family without a ``step_pattern`` calls every line its own."""
    if family.step_pattern is None or re.fullmatch(family.step_pattern, line):
        return "own"
    if any(f.step_pattern and f.name != family.name and re.fullmatch(f.step_pattern, line) for f in others):
        return "other"
    return "none"


def trace_format(completion: str, family: TaskFamily, others=()) -> str:
    """The format of a whole completion's step lines: ``"own"`` when every line is its family's,
    ``"other"`` when some line is only another family's, else ``"none"``."""
    formats = {line_format(line, family, others) for line in parse_completion(completion)[0]}
    return "other" if "other" in formats else "none" if "none" in formats else "own"


def classify(family: TaskFamily, problem: Problem, completion: str, finished: bool = True, others=()) -> str | None:
    """The reason a completion's answer is wrong (one of ``CATEGORIES``), or None when it is right.

    ``finished`` says whether decoding ended with ``<eos>`` (``Rollout.finished``); ``others`` are the
    other installed families, whose line formats a completion may borrow.

    Example::

        classify(graph, p, "CxE\\n#E")  # "stopped_early" when the gold trace has more lines
    """
    if checked_score(family, problem, completion).answer:
        return None
    if not finished:
        return "token_cap"
    steps, answer = parse_completion(completion)
    fmt = trace_format(completion, family, others)
    if fmt == "other":
        return "other_family"
    if fmt == "none" or answer is None:
        return "format"
    gold = problem.steps
    if len(steps) != len(gold):
        return "stopped_early" if len(steps) < len(gold) else "extra_step"
    return "miscopy" if tuple(steps) == gold else "wrong_step"


def sample_splits(
    model,
    families: list[TaskFamily],
    splits: list[str],
    n_test: int = 50,
    n_samples: int = 4,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    seed: int = 0,
    others: list[TaskFamily] | None = None,
) -> list[dict]:
    """One row per completion: greedy (``sample`` = ``GREEDY``) and ``n_samples`` sampled ones of each of the
    first ``n_test`` test problems of every (family, split), drawn as evaluation draws them.

    A row holds the completion, whether it ended (``finished``), its tokens and its ``budget`` (what the
    rollout engine allowed: ``max_new_tokens`` or less where ``block_size`` leaves less), its trace
    format and its failure category."""
    # late: it loads torchmetrics, pandas, matplotlib, scipy, PIL, which importing this module does not
    from .evaluate import sample_uniforms

    others = list(others if others is not None else families)
    rows = []
    for family in families:
        for split in splits:
            problems = held_out_problems(family, split, n_test)
            prompts = [TOKENIZER.encode(p.prompt, bos=True) for p in problems]
            budget = min(max_new_tokens, model.cfg.block_size - max(len(p) for p in prompts))
            greedy = sample(model, prompts, n=1, temperature=0.0, max_new_tokens=max_new_tokens)
            drawn = sample(
                model,
                prompts,
                n=n_samples,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                uniforms=sample_uniforms(problems, n_samples, seed, max_new_tokens),
            )
            for r, per in ((greedy, 1), (drawn, n_samples)):
                for row, text in enumerate(r.texts()):
                    p = problems[int(r.prompt_index[row])]
                    finished = bool(r.finished[row])
                    rows.append(
                        {
                            "family": family.name,
                            "split": split,
                            "index": p.index,
                            "sample": GREEDY if per == 1 else row % per,
                            "completion": text,
                            "finished": finished,
                            "tokens": int(r.lengths[row]),
                            "budget": budget,
                            "lines": len(parse_completion(text)[0]),
                            "gold_prefix": _gold_prefix(p, text),
                            "gold_lines": len(p.steps),
                            "format": trace_format(text, family, others),
                            "category": classify(family, p, text, finished, others),
                        }
                    )
    return rows


def _gold_prefix(problem: Problem, completion: str) -> bool:
    """Every step line written is the gold trace's line at its place."""
    steps = parse_completion(completion)[0]
    return tuple(steps) == problem.steps[: len(steps)]


def breakdown(rows: list[dict]) -> list[dict]:
    """Per (family, split, decoding): the failure rate, each category's share of the failed samples, the
    share of all samples that hit the token cap or wrote their own family's or another family's
    format, and the share of the early stops whose lines were all right (``clean_stop``: the gold
    trace cut short, not steps left out)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["family"], r["split"], "greedy" if r["sample"] == GREEDY else "sampled")].append(r)
    out = []
    for (family, split, decoding), rs in groups.items():
        failed = [r for r in rs if r["category"] is not None]
        nf = max(len(failed), 1)
        early = [r for r in failed if r["category"] == "stopped_early"]
        out.append(
            {
                "family": family,
                "split": split,
                "decoding": decoding,
                "samples": len(rs),
                "failed": len(failed) / len(rs),
                **{c: sum(r["category"] == c for r in failed) / nf for c in CATEGORIES},
                "clean_stop": sum(r["gold_prefix"] for r in early) / max(len(early), 1),
                "capped": sum(not r["finished"] for r in rs) / len(rs),
                "own_format": sum(r["format"] == "own" for r in rs) / len(rs),
                "other_format": sum(r["format"] == "other" for r in rs) / len(rs),
            }
        )
    return out


def format_rows(rows: list[dict], columns: list[str] | None = None) -> str:
    """A fixed-width table of ``rows`` (dicts of the same keys), floats to three places."""
    if not rows:
        return "(nothing)"
    columns = columns or list(rows[0])
    cells = [[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


BREAKDOWN_COLUMNS = ["family", "split", "decoding", "samples", "failed", *CATEGORIES, "clean_stop", "capped"]
FORMAT_COLUMNS = ["family", "split", "decoding", "samples", "own_format", "other_format"]


# ----------------------------------------------------------------------------- probes on gold traces


@torch.no_grad()
def gold_probs(model, problems: list[Problem], batch_size: int = 256) -> list[torch.Tensor]:
    """For each problem, the model's next-token distribution before each token of its gold completion and
    before the closing ``<eos>`` (teacher forced): a tensor (len(completion) + 1, vocab)."""

    was_training = model.training
    model.eval()
    out = []
    for s in range(0, len(problems), batch_size):
        chunk = problems[s : s + batch_size]
        prompts = [TOKENIZER.encode(p.prompt, bos=True) for p in chunk]
        golds = [TOKENIZER.encode(p.completion, eos=True) for p in chunk]
        ids, _ = pack(prompts, golds, next(model.parameters()).device)
        probs = model(ids[:, :-1]).float().softmax(-1).cpu()
        for i, (pr, g) in enumerate(zip(prompts, golds)):
            out.append(probs[i, len(pr) - 1 : len(pr) - 1 + len(g)])
    model.train(was_training)
    return out


def line_end_probe(model, problems: list[Problem], separator: str = ":") -> list[dict]:
    """Where the model ends a state: for each count k of state symbols written (after ``separator`` on a
    trace line, or after ``#`` on the answer line), the mean probability that the line ends there (a
    newline, or ``<eos>`` after the answer) and the share of problems whose most likely token ends it.
    Teacher forced on the gold trace, so what stops a line is the model's own distribution, not the
    harness. Returns one row per (k, gold state length)."""
    newline = TOKENIZER.stoi["\n"]
    acc = defaultdict(lambda: [0.0, 0, 0])
    for p, probs in zip(problems, gold_probs(model, problems)):
        text, pos = p.completion, 0
        for line in [*p.steps, "#" + p.answer]:
            cut = line.index("#" if line.startswith("#") else separator) + 1
            state = line[cut:]
            end = EOS if line.startswith("#") else newline
            for k in range(1, len(state) + 1):
                dist = probs[pos + cut + k]  # before the token after k state symbols
                a = acc[(k, len(state))]
                a[0] += float(dist[end])
                a[1] += int(dist.argmax()) == end
                a[2] += 1
            pos += len(line) + 1
        assert pos == len(text) + 1
    return [
        {"k": k, "state_length": n, "p_end": s / c, "argmax_end": m / c, "count": c}
        for (k, n), (s, m, c) in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]


def answer_probe(model, problems: list[Problem]) -> list[dict]:
    """How ready the model is to answer early: after k gold trace lines (of a deeper gold trace), the mean
    probability of the answer marker ``#`` in place of the next step line, the share of problems where
    ``#`` is the most likely token there (greedy answers), and the share where greedy, kept from
    answering there, writes the next gold line exactly (``next_line_right``: what stopping costs).
    Teacher forced; one row per k."""
    mark = TOKENIZER.stoi["#"]
    acc = defaultdict(lambda: [0.0, 0, 0, 0])
    for p, probs in zip(problems, gold_probs(model, problems)):
        pos = 0
        for k, (line, after) in enumerate(zip(p.steps, p.steps[1:]), start=1):
            pos += len(line) + 1
            dist = probs[pos]
            first = dist.clone()
            first[mark] = 0.0  # kept from answering: the most likely other token
            want = TOKENIZER.encode(after + "\n")
            right = int(first.argmax()) == want[0] and all(
                int(probs[pos + j].argmax()) == t for j, t in enumerate(want[1:], start=1)
            )
            a = acc[k]
            a[0] += float(dist[mark])
            a[1] += int(dist.argmax()) == mark
            a[2] += right
            a[3] += 1
    return [
        {"k": k, "p_answer": s / c, "argmax_answer": m / c, "next_line_right": r / c, "count": c}
        for k, (s, m, r, c) in sorted(acc.items())
    ]


def start_copy_probe(model, problems: list[Problem], start_at: int = 2, bin_width: int = 8) -> list[dict]:
    """Copy accuracy against copy distance: the first completion token must copy the prompt symbol at
    ``start_at`` (a graph route's start node, after ``G:``), ``len(prompt) - start_at`` tokens back.
    Per distance bin and split: the mean probability of that symbol (teacher forced) and the share of
    problems where it is the most likely token (what greedy writes)."""
    acc = defaultdict(lambda: [0.0, 0, 0, 10**9, 0])
    for p, probs in zip(problems, gold_probs(model, problems)):
        want = TOKENIZER.stoi[p.prompt[start_at]]
        distance = len(p.prompt) - start_at
        a = acc[(p.split, distance // bin_width * bin_width)]
        a[0] += float(probs[0, want])
        a[1] += int(probs[0].argmax()) == want
        a[2] += 1
        a[3], a[4] = min(a[3], distance), max(a[4], distance)
    return [
        {"split": split, "distance": f"{lo}-{hi}", "p_copy": s / c, "copy_acc": m / c, "count": c}
        for (split, _), (s, m, c, lo, hi) in sorted(acc.items())
    ]


def by_k(rows: list[dict], value: str, keys: tuple[str, ...] = ("state_length",)) -> list[dict]:
    """``rows`` of a probe, one row per ``keys`` with a column per k holding ``value``: a compact table."""
    table: dict = {}
    for r in rows:
        table.setdefault(tuple(r[k] for k in keys), {**{k: r[k] for k in keys}})[f"k={r['k']}"] = r[value]
    columns = sorted({c for t in table.values() for c in t if c.startswith("k=")}, key=lambda c: int(c[2:]))
    return [{**t, **{c: t.get(c, "") for c in columns}} for t in table.values()]
