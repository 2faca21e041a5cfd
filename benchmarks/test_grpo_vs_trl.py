"""One GRPO step, rollout + scoring + update: the project's GRPO against TRL's ``GRPOTrainer``.

The matched shape: 64 prompts x 8 samples, completions of exactly 32 tokens (<eos> suppressed in
both models by a -30 logit bias, so neither stops early), temperature 1, beta = 0, one optimizer
step per rollout batch, fp32 on the CPU. The prompts are the same 64 string-family ID problems,
rewarded by the family's own verifier on both sides; the models are the project's default GPT
and a GPT-2 of the same width, depth, heads and vocabulary (character-level tokenizer). Each side
is timed per step after one warm-up step. TRL runs at its defaults otherwise.
"""

import time

import pytest

from ood_bench.data import held_out_problems
from ood_bench.model.tokenizer import BOS, TOKENIZER
from ood_bench.plugins import get_plugins
from ood_bench.training.algorithms import standalone

from .conftest import eos_bias, gpt2_twin, our_model

trl = pytest.importorskip("trl", reason="the bench extra: pip install -e '.[bench]'")
pytest.importorskip("datasets", reason="the bench extra: pip install -e '.[bench]'")

PROMPTS, GROUP, NEW, STEPS = 64, 8, 32, 4


@pytest.fixture(scope="module")
def task():
    family = get_plugins().tasks.get("string")
    return family, held_out_problems(family, "id", PROMPTS)


@pytest.mark.benchmark(group="grpo-step")
def test_grpo_step_ours(benchmark, task):
    _grpo_steps(benchmark, task, recompute=False)


@pytest.mark.benchmark(group="grpo-step")
def test_grpo_step_ours_recompute(benchmark, task):
    """As post-training runs it: activation checkpointing on (the same gradients, less memory)."""
    _grpo_steps(benchmark, task, recompute=True)


def _grpo_steps(benchmark, task, recompute: bool):
    family, problems = task
    model = our_model().train()
    model.recompute = recompute
    hook = eos_bias(model.head, -30.0)
    algo = standalone(
        get_plugins().algorithm("grpo"), model, [family], {"group_size": GROUP, "max_new_tokens": NEW, "beta": 0.0}
    )
    marks = []

    def run():
        for _ in range(STEPS):
            algo.ctx.begin_step()
            algo.step(problems)
            algo.ctx.end_step()
            marks.append(time.perf_counter())

    t0 = time.perf_counter()
    benchmark.pedantic(run, rounds=1, iterations=1)
    hook.remove()
    per_step = (marks[-1] - marks[0]) / (STEPS - 1)
    benchmark.extra_info.update(seconds_per_step=per_step, first_step=marks[0] - t0, rollouts_per_step=PROMPTS * GROUP)


def char_tokenizer():
    """A Hugging Face fast tokenizer with the project's character vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(WordLevel(vocab=dict(TOKENIZER.stoi), unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS)])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", padding_side="left"
    )
    assert hf("A:b\n")["input_ids"] == [BOS] + TOKENIZER.encode("A:b\n")
    return hf


@pytest.mark.benchmark(group="grpo-step")
def test_grpo_step_trl(benchmark, task, tmp_path):
    from datasets import Dataset
    from transformers import TrainerCallback

    class StepTimes(TrainerCallback):
        """Notes when each optimizer step ends."""

        def __init__(self):
            self.marks = []

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

    family, problems = task
    by_prompt = {p.prompt: p for p in problems}

    def verifier(prompts, completions, **kwargs):
        return [float(family.score(by_prompt[p], c).answer) for p, c in zip(prompts, completions)]

    model = gpt2_twin(our_model()).train()
    hook = eos_bias(model.lm_head, -30.0)
    args = trl.GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        per_device_train_batch_size=PROMPTS * GROUP,
        num_generations=GROUP,
        gradient_accumulation_steps=1,
        max_completion_length=NEW,
        temperature=1.0,
        beta=0.0,
        max_steps=STEPS,
        learning_rate=3e-4,
        dataloader_num_workers=0,
        seed=0,
    )
    timer = StepTimes()
    trainer = trl.GRPOTrainer(
        model=model,
        reward_funcs=verifier,
        args=args,
        processing_class=char_tokenizer(),
        train_dataset=Dataset.from_dict({"prompt": [p.prompt for p in problems] * STEPS}),
        callbacks=[timer],
    )
    t0 = time.perf_counter()
    benchmark.pedantic(trainer.train, rounds=1, iterations=1)
    hook.remove()
    marks = timer.marks
    assert len(marks) == STEPS
    benchmark.extra_info.update(
        seconds_per_step=(marks[-1] - marks[0]) / (STEPS - 1),
        first_step=marks[0] - t0,
        rollouts_per_step=PROMPTS * GROUP,
    )
