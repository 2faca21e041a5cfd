"""Pretraining: the Lightning module against a plain PyTorch loop on the same model, data and
optimizer, and the model FLOPs utilisation against this machine's measured fp32 matmul peak; and the
Lightning step in bf16-mixed, as the quick suite pretrains, against the fp32 one and the bf16 peak.

Both sides run the quick config's model (0.8M parameters) on the quick mixture's packed batches
(64 examples in 128-token rows), AdamW with the same groups and schedule, gradient clipping at 1;
each is timed per step after two warm-up steps, data generation included.
"""

import math
import statistics
import time

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from ood_bench.config import load_config
from ood_bench.data import IGNORE_INDEX
from ood_bench.training.pretrain import PretrainConfig, PretrainModule, pretrain_loader

STEPS, WARMUP = 30, 2  # 28 timed steps a side: a 12-step run moved the Lightning-vs-loop gap by several percent
ROUNDS, ROUND_STEPS = 5, 12  # the interleaved comparison: 5 rounds of 10 timed steps a side


def matmul_peak_gflops(n: int = 2048, seconds: float = 2.0, dtype=torch.float32) -> float:
    """GFLOP/s of a large square matmul in ``dtype``: the ceiling MFU is measured against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def flops_per_token(module: PretrainModule, row: int) -> float:
    """Training FLOPs per token, nanoGPT's estimate: 6 per non-embedding parameter, plus attention
    (12 * layers * width * context)."""
    cfg = module.model.cfg
    n = module.model.num_params() - module.model.tok_emb.weight.numel()
    return 6 * n + 12 * cfg.n_layer * cfg.n_embd * row


@pytest.fixture(scope="module")
def config():
    return load_config(
        PretrainConfig,
        "quick",
        ["trainer.accelerator=cpu", "trainer.devices=1", f"train.max_steps={STEPS}", "train.warmup_steps=2"],
    )


@pytest.fixture(scope="module")
def peak():
    return matmul_peak_gflops()


@pytest.fixture(scope="module")
def peak_bf16():
    return matmul_peak_gflops(dtype=torch.bfloat16)


class StepTimer(Callback):
    def __init__(self):
        self.marks, self.tokens = [], 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.marks.append(time.perf_counter())
        self.tokens = batch["x"].numel()  # positions computed per step, padding included


def _record(benchmark, marks, tokens, module, peak):
    per_step = _per_step(marks)
    achieved = tokens * flops_per_token(module, module.cfg.train.pack_len) / per_step / 1e9
    benchmark.extra_info.update(
        seconds_per_step=per_step,
        tokens_per_step=tokens,
        model_gflops=achieved,
        matmul_peak_gflops=peak,
        mfu=achieved / peak,
    )


def _lightning_steps(config, steps: int, precision: str = "32-true") -> tuple[list[float], int, PretrainModule]:
    """``steps`` pretraining steps of a fresh module under Lightning's Trainer: the time at each step's end."""
    torch.manual_seed(0)
    module = PretrainModule(config.to_dict())
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        gradient_clip_val=config.train.grad_clip,
        precision=precision,
    )
    trainer.fit(module)
    assert trainer.global_step == steps
    return timer.marks, timer.tokens, module


def _plain_steps(config, steps: int) -> tuple[list[float], int, PretrainModule]:
    """The same steps driven by hand: the module's own data, model, optimizer and schedule."""
    torch.manual_seed(0)
    module = PretrainModule(config.to_dict())
    model = module.model
    loader = pretrain_loader(module.cfg)
    opt_cfg = module.configure_optimizers()
    opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    marks, tokens = [], 0
    for i, batch in enumerate(loader):
        logits = model(batch["x"], batch.get("positions"), batch.get("attn_mask"), doc_index=batch.get("doc_index"))
        loss = F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten(), ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        opt.step()
        sched.step()
        tokens = batch["x"].numel()
        marks.append(time.perf_counter())
        if i + 1 == steps:
            break
    assert len(marks) == steps and all(math.isfinite(float(p.sum())) for p in model.parameters())
    return marks, tokens, module


def _per_step(marks: list[float]) -> float:
    return (marks[-1] - marks[WARMUP - 1]) / (len(marks) - WARMUP)


def _lightning(benchmark, config, peak, precision):
    _record(
        benchmark, *benchmark.pedantic(lambda: _lightning_steps(config, STEPS, precision), rounds=1, iterations=1), peak
    )


@pytest.mark.benchmark(group="pretrain")
def test_pretrain_lightning(benchmark, config, peak):
    _lightning(benchmark, config, peak, "32-true")


@pytest.mark.benchmark(group="pretrain")
def test_pretrain_lightning_bf16(benchmark, config, peak_bf16):
    """As the quick suite pretrains: bf16 matmuls, fp32 weights, attention and loss; its MFU is against
    the bf16 matmul peak."""
    _lightning(benchmark, config, peak_bf16, "bf16-mixed")


@pytest.mark.benchmark(group="pretrain")
def test_pretrain_plain_loop(benchmark, config, peak):
    _record(benchmark, *benchmark.pedantic(lambda: _plain_steps(config, STEPS), rounds=1, iterations=1), peak)


@pytest.mark.benchmark(group="pretrain-interleaved")
def test_pretrain_lightning_and_plain_loop_interleaved(benchmark, config):
    """Lightning and the plain loop in alternation, a short fresh run of each per round, so a drift in the
    machine's speed falls on both alike (run one after the other, the gap moved between 1% and 5%):
    Lightning's overhead is the median of the rounds' step-time ratios, minus one."""
    ratios, light, plain = [], [], []

    def one_round():
        a = _per_step(_lightning_steps(config, ROUND_STEPS)[0])
        b = _per_step(_plain_steps(config, ROUND_STEPS)[0])
        light.append(a)
        plain.append(b)
        ratios.append(a / b)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    ordered = sorted(ratios)
    benchmark.extra_info.update(
        lightning_seconds_per_step=statistics.median(light),
        plain_seconds_per_step=statistics.median(plain),
        overhead=statistics.median(ratios) - 1,
        overhead_min=ordered[0] - 1,
        overhead_max=ordered[-1] - 1,
    )
