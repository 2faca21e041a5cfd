"""The evaluation protocol: fixed test sets, greedy and sampled decoding, exact scoring.

For every (family, split) it writes one JSONL line per problem with the counts
later analyses need without sampling again: ``c`` correct answers out of ``n``
samples, the greedy verdict, and the exact log-probability of the gold trace
(one teacher-forced pass), the model's true mass on the known solution.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..config import check
from ..data import TEST_SET_SIZE, held_out_problems
from ..model.model import GPT
from ..model.rollout import sample, sequence_logprobs
from ..model.tokenizer import TOKENIZER
from ..phases import phase
from ..plugins import find_family, get_plugins
from ..storage.atomic import atomic_write_text
from ..storage.eval_records import EVAL_RECORD, format_table  # noqa: F401  (re-exported)
from ..tasks.base import SPLITS, Problem, TaskFamily, checked_score, torch_seed
from .metrics import MeanWithStderr, PassAtK, default_ks
from .support import Thresholds

# Gold mass below this is outside a model's effective support (see support.Thresholds).
OUTSIDE_LOGPROB = math.log(Thresholds().outside)


@dataclass
class EvalConfig:
    families: list[str] = field(default_factory=list)  # empty: every family of the mixture
    splits: list[str] = field(default_factory=lambda: list(SPLITS))
    n_test: int = 200  # problems per split, drawn from the reserved test stream
    n_samples: int = 16  # samples per problem for pass@k; k runs up to this
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 512  # sequences decoded together
    max_new_tokens: int = 128

    def validate(self, prefix: str = "eval") -> None:
        for name in self.families:
            find_family(name)
        check(bool(self.splits), f"{prefix}.splits", self.splits, "name at least one split")
        for split in self.splits:
            check(split in SPLITS, f"{prefix}.splits", split, f"unknown split (choose from {', '.join(SPLITS)})")
        check(
            0 < self.n_test <= TEST_SET_SIZE,
            f"{prefix}.n_test",
            self.n_test,
            f"must be in 1..{TEST_SET_SIZE}, the size of the reserved test stream",
        )
        check(self.n_samples >= 1, f"{prefix}.n_samples", self.n_samples, "must be >= 1")
        check(
            math.isfinite(self.temperature) and self.temperature > 0,
            f"{prefix}.temperature",
            self.temperature,
            "must be a positive number (greedy is always reported too)",
        )
        check(0 < self.top_p <= 1, f"{prefix}.top_p", self.top_p, "must be in (0, 1]")
        check(self.batch_size >= 1, f"{prefix}.batch_size", self.batch_size, "must be >= 1")
        check(self.max_new_tokens >= 1, f"{prefix}.max_new_tokens", self.max_new_tokens, "must be >= 1")


@dataclass
class SplitResult:
    summary: dict
    records: list[dict]


def _chunks(seq: list, size: int):
    for i in range(0, len(seq), size):
        yield i // size, seq[i : i + size]


SAMPLING = "per-problem-v1"  # how evaluation draws its samples; recorded in eval.json


def sample_uniforms(problems: list[Problem], n: int, seed: int, length: int) -> torch.Tensor:
    """Every random number the samples of ``problems`` will use, one row per (problem, sample).

    Row ``(p, j)`` is keyed by the problem's uid, the sampling seed and ``j``
    alone, so a problem's ``n`` samples are the same whatever batch it lands in
    and however many problems are evaluated: ``--n-test 10`` and ``--n-test 20``
    agree on the first ten, and the sample count of a smaller ``n`` is a prefix.
    """
    rows = []
    for p in problems:
        for j in range(n):
            gen = torch.Generator().manual_seed(torch_seed("eval-sample", seed, p.uid, j))
            rows.append(torch.rand(length, generator=gen, dtype=torch.float64))
    return torch.stack(rows)


def evaluate_split(
    model: GPT, family: TaskFamily, split: str, ecfg: EvalConfig, seed: int = 0, bar: tqdm | None = None
) -> SplitResult:
    problems: list[Problem] = held_out_problems(family, split, ecfg.n_test)
    prompts = [TOKENIZER.encode(p.prompt, bos=True) for p in problems]
    n = ecfg.n_samples
    t0 = time.perf_counter()
    gen_tokens = 0

    greedy_ok, greedy_trace = [], []
    for _, chunk in _chunks(list(range(len(problems))), ecfg.batch_size):
        with phase("eval.sampling"):
            r = sample(model, [prompts[i] for i in chunk], n=1, temperature=0.0, max_new_tokens=ecfg.max_new_tokens)
        gen_tokens += r.num_tokens()
        with phase("eval.scoring"):
            for i, text in zip(chunk, r.texts()):
                s = checked_score(family, problems[i], text)
                greedy_ok.append(s.answer)
                greedy_trace.append(s.trace)
        if bar is not None:
            bar.update(len(chunk))

    correct = [0] * len(problems)
    trace_correct = [0] * len(problems)
    full_correct = [0] * len(problems)  # trace and answer both right: what the exact mass Q measures
    example = [""] * len(problems)
    per_batch = max(1, ecfg.batch_size // n)
    for _, chunk in _chunks(list(range(len(problems))), per_batch):
        with phase("eval.sampling"):
            u = sample_uniforms([problems[i] for i in chunk], n, seed, ecfg.max_new_tokens)
            r = sample(
                model,
                [prompts[i] for i in chunk],
                n=n,
                temperature=ecfg.temperature,
                top_p=ecfg.top_p,
                max_new_tokens=ecfg.max_new_tokens,
                uniforms=u,
            )
        gen_tokens += r.num_tokens()
        with phase("eval.scoring"):
            for row, text in enumerate(r.texts()):
                i = chunk[int(r.prompt_index[row])]
                s = checked_score(family, problems[i], text)
                correct[i] += s.answer
                trace_correct[i] += s.trace
                full_correct[i] += s.trace and s.answer
                if not example[i]:
                    example[i] = text
        if bar is not None:
            bar.update(len(chunk))

    golds = [TOKENIZER.encode(p.completion, eos=True) for p in problems]
    with phase("eval.support"):  # the gold trace's log-probability, the support measures' input
        gold = sequence_logprobs(model, prompts, golds)
    seconds = time.perf_counter() - t0

    records = [
        {
            "family": family.name,
            "version": family.version,
            "split": split,
            "index": p.index,
            "uid": p.uid,
            "n": n,
            "c": correct[i],
            "trace_c": trace_correct[i],
            "full_c": full_correct[i],
            "greedy_correct": bool(greedy_ok[i]),
            "greedy_trace_correct": bool(greedy_trace[i]),
            "gold_logprob": float(gold[i]),
            "gold_tokens": len(golds[i]),
            "depth": p.meta.get("depth"),
            "length": p.meta.get("length"),
            "prompt": p.prompt,
            "gold": p.completion,
            "sample": example[i],
        }
        for i, p in enumerate(problems)
    ]

    ks = default_ks(n)
    passk = PassAtK(ks)
    passk.update(torch.tensor([n] * len(problems)), torch.tensor(correct))
    greedy = MeanWithStderr()
    greedy.update(torch.tensor(greedy_ok, dtype=torch.float64))
    steps_only = PassAtK([1])
    steps_only.update(torch.tensor([n] * len(problems)), torch.tensor(trace_correct))
    full = PassAtK([1])
    full.update(torch.tensor([n] * len(problems)), torch.tensor(full_correct))
    gold_mean = MeanWithStderr()
    gold_mean.update(gold)
    g, g_se = greedy.compute()
    lp, lp_se = gold_mean.compute()
    summary = {
        "family": family.name,
        "version": family.version,
        "split": split,
        "problems": len(problems),
        "n": n,
        "greedy": g,
        "greedy_stderr": g_se,
        **passk.compute(),
        # results version 2 renamed results version 1's step-only "trace_pass@1", so that no name means two
        # things: steps_pass@1 counts a sample whose every step is right (trace_c), full_pass@1 one whose steps
        # and answer are (full_c), which is what the boards' "trace pass@1" and the exact mass measure
        "steps_pass@1": steps_only.compute()["pass@1"],
        "full_pass@1": full.compute()["pass@1"],
        "trace_mass": float(gold.double().exp().mean()),
        "gold_logprob": lp,
        "gold_logprob_stderr": lp_se,
        "gold_logprob_per_token": float(gold.double().sum() / sum(len(g) for g in golds)),
        "outside_support_frac": float((gold < OUTSIDE_LOGPROB).double().mean()),
        "gen_tokens": gen_tokens,
        "seconds": round(seconds, 2),
    }
    summary.update(plugin_metrics(records))
    return SplitResult(summary, records)


def plugin_metrics(records: list[dict]) -> dict:
    """Metrics contributed through the ``register_metrics`` hook, computed on the per-problem records."""

    out = {}
    for name, factory in get_plugins().metrics.items():
        metric = factory()
        metric.update(records)
        value = metric.compute()
        if isinstance(value, dict):
            out.update({f"{name}/{k}": float(v) for k, v in value.items()})
        else:
            out[name] = float(value)
    return out


def evaluate(
    model: GPT,
    families: list[TaskFamily],
    ecfg: EvalConfig,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate every (family, split); write ``samples/<family>__<split>.jsonl`` under ``out_dir``."""
    pairs = [(f, s) for f in families for s in ecfg.splits]
    total = len(pairs) * ecfg.n_test * 2  # greedy pass + sampled pass per problem
    rows = []
    with tqdm(total=total, desc="evaluate", unit="prob", disable=not progress, dynamic_ncols=True) as bar:
        for family, split in pairs:
            bar.set_postfix_str(f"{family.name}/{split}")
            res = evaluate_split(model, family, split, ecfg, seed=seed, bar=bar)
            rows.append(res.summary)
            if out_dir is not None:
                path = Path(out_dir) / "samples" / f"{family.name}__{split}.jsonl"
                atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in res.records))
    return pd.DataFrame(rows)
