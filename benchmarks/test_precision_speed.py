"""bf16-mixed against 32-true on this CPU: what ``trainer.precision: auto`` decides between.

A pretraining step of the quick config (0.8M parameters, 64 examples packed into 128-token rows; forward
and loss under CPU autocast to bf16 as Lightning's bf16-mixed runs them, backward, clipping, AdamW) in each
precision, on the same batches, alternating in short rounds so a drift in the machine's speed falls on both;
and one autocast matmul of the model's MLP shape, forward and backward. Each stores this CPU's capability,
whether its bf16 is native, and what ``auto`` resolves to, so a saved run says which rule it tested.

On a CPU with native bf16 (AVX512-BF16 or AMX) bf16 should be the faster; under
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (PyTorch and oneDNN limited to AVX2, as on a CPU
without it) it should be many times slower, which is why ``auto`` chooses fp32 there. Nothing asserts a time.
"""

import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from ood_bench.config import load_config
from ood_bench.data import IGNORE_INDEX
from ood_bench.training.precision import cpu_info, resolve_precision
from ood_bench.training.pretrain import PretrainConfig, PretrainModule, pretrain_loader

ROUNDS, STEPS = 3, 3  # per round and precision: 3 timed steps after one untimed (under AVX2, bf16 takes seconds)
MATMUL_REPS = 5


def _machine(benchmark, bf16_s: float, fp32_s: float, unit: str) -> None:
    benchmark.extra_info.update(
        cpu=dict(cpu_info()),
        auto_resolves_to=resolve_precision("auto"),
        threads=torch.get_num_threads(),
        **{f"bf16_{unit}": bf16_s, f"fp32_{unit}": fp32_s},
        bf16_over_fp32=bf16_s / fp32_s,
    )


@pytest.fixture(scope="module")
def setup():
    cfg = load_config(PretrainConfig, "quick", ["trainer.accelerator=cpu", "trainer.devices=1"])
    batches = []
    for batch in pretrain_loader(cfg):
        batches.append(batch)
        if len(batches) == STEPS + 1:
            return cfg, batches


def _steps(cfg, batches, bf16: bool) -> float:
    """Seconds per pretraining step of a fresh module, after one untimed step."""
    torch.manual_seed(0)
    module = PretrainModule(cfg.to_dict())
    model, opt = module.model, module.configure_optimizers()["optimizer"]
    marks = []
    for batch in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch["x"], batch.get("positions"), batch.get("attn_mask"), doc_index=batch.get("doc_index"))
            loss = F.cross_entropy(logits.flatten(0, 1), batch["y"].flatten(), ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        marks.append(time.perf_counter())
    return (marks[-1] - marks[0]) / (len(marks) - 1)


@pytest.mark.benchmark(group="precision")
def test_pretrain_step_bf16_against_fp32(benchmark, setup):
    cfg, batches = setup
    bf16, fp32 = [], []

    def one_round():
        fp32.append(_steps(cfg, batches, False))
        bf16.append(_steps(cfg, batches, True))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    _machine(benchmark, statistics.median(bf16), statistics.median(fp32), "seconds_per_step")


@pytest.mark.benchmark(group="precision")
def test_matmul_bf16_against_fp32(benchmark, setup):
    """One linear layer of the model's MLP (width to 4x width) on a batch's tokens, forward and backward."""
    cfg, batches = setup
    width, tokens = cfg.model.n_embd, batches[0]["x"].numel()
    x = torch.randn(tokens, width, requires_grad=True)
    w = torch.randn(4 * width, width, requires_grad=True)

    def seconds(bf16: bool) -> float:
        t0 = time.perf_counter()
        for _ in range(MATMUL_REPS):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = F.linear(x, w)
            y.float().sum().backward()
        return (time.perf_counter() - t0) / MATMUL_REPS

    bf16, fp32 = [], []

    def one_round():
        fp32.append(seconds(False))
        bf16.append(seconds(True))

    seconds(False), seconds(True)  # warm-up: oneDNN builds its kernels on first use
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(shape=[tokens, width, 4 * width])
    _machine(benchmark, statistics.median(bf16), statistics.median(fp32), "seconds")
