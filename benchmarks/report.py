"""The ratio table of one benchmark run.

    python -m pytest benchmarks --benchmark-enable --benchmark-json=bench.json
    python benchmarks/report.py bench.json

Each row pairs the project's side with the alternative measured in the same run and reports
what each benchmark stored in ``extra_info`` (tokens/s, seconds per step) and their ratio.
"""

from __future__ import annotations

import json
import platform
import sys

import pandas as pd

# (row label, ours, theirs, the quantity compared, True when larger is better)
PAIRS = [
    (
        "rollout, 512 rows x 32 tokens, <eos> off (vs HF generate)",
        "test_engine[fixed]",
        "test_hf_generate[fixed]",
        "tokens_per_s",
        True,
    ),
    (
        "rollout, GRPO default 32x8, real <eos> (vs HF generate)",
        "test_engine[grpo]",
        "test_hf_generate[grpo]",
        "tokens_per_s",
        True,
    ),
    ("rollout, no-cache floor (512 x 32)", "test_engine[fixed]", "test_no_cache_floor", "tokens_per_s", True),
    (
        "GRPO step, 64 prompts x 8, 32 tokens (vs TRL GRPOTrainer)",
        "test_grpo_step_ours",
        "test_grpo_step_trl",
        "seconds_per_step",
        False,
    ),
    (
        "GRPO step as post-training runs it, activation checkpointing on (vs TRL)",
        "test_grpo_step_ours_recompute",
        "test_grpo_step_trl",
        "seconds_per_step",
        False,
    ),
    (
        "evaluate one split, 100 problems x 16",
        "test_evaluate_split_ours",
        "test_evaluate_split_hf_generate",
        "problems_per_s",
        True,
    ),
    (
        "pretraining step (Lightning vs plain loop)",
        "test_pretrain_lightning",
        "test_pretrain_plain_loop",
        "seconds_per_step",
        False,
    ),
    (
        "pretraining step, bf16-mixed as the quick suite runs it (vs fp32)",
        "test_pretrain_lightning_bf16",
        "test_pretrain_lightning",
        "seconds_per_step",
        False,
    ),
]


def table(path: str) -> pd.DataFrame:
    data = json.loads(open(path).read())
    info = {b["name"]: b["extra_info"] for b in data["benchmarks"]}
    rows = []
    for label, ours, theirs, key, higher in PAIRS:
        if ours in info and theirs in info:
            a, b = info[ours][key], info[theirs][key]
            rows.append(
                {
                    "comparison": label,
                    "measure": key,
                    "ours": a,
                    "alternative": b,
                    "speed-up": a / b if higher else b / a,
                }
            )
    for name, extra in info.items():  # both sides in one benchmark, interleaved: the median ratio of its rounds
        if "speed_up" in extra:
            rows.append(
                {
                    "comparison": name + " (engine vs generate, interleaved)",
                    "measure": "tokens_per_s",
                    "ours": extra["engine_tokens_per_s"],
                    "alternative": extra["generate_tokens_per_s"],
                    "speed-up": extra["speed_up"],
                    "range": f"{extra['speed_up_min']:.2f}-{extra['speed_up_max']:.2f}",
                }
            )
        if "kernel_vs_eager" in extra:  # test_decode_kernel: the kernel against the eager engine (and generate)
            rows.append(
                {
                    "comparison": name + " (kernel vs eager engine, interleaved)",
                    "measure": "tokens_per_s",
                    "ours": extra["kernel_tokens_per_s"],
                    "alternative": extra["eager_tokens_per_s"],
                    "speed-up": extra["kernel_vs_eager"],
                    "range": f"{extra['kernel_vs_eager_min']:.2f}-{extra['kernel_vs_eager_max']:.2f}",
                }
            )
            if "kernel_vs_generate" in extra:
                rows.append(
                    {
                        "comparison": name + " (kernel vs generate, interleaved)",
                        "measure": "tokens_per_s",
                        "ours": extra["kernel_tokens_per_s"],
                        "alternative": extra["generate_tokens_per_s"],
                        "speed-up": extra["kernel_vs_generate"],
                        "range": f"{extra['kernel_vs_generate_min']:.2f}-{extra['kernel_vs_generate_max']:.2f}",
                    }
                )
        if "overhead" in extra:
            rows.append(
                {
                    "comparison": name + " (Lightning vs plain loop, interleaved)",
                    "measure": "seconds_per_step",
                    "ours": extra["lightning_seconds_per_step"],
                    "alternative": extra["plain_seconds_per_step"],
                    "speed-up": 1 / (1 + extra["overhead"]),
                    "range": f"overhead {extra['overhead_min']:+.1%} to {extra['overhead_max']:+.1%}",
                }
            )
    for name, extra in info.items():  # single measurements: MFU, evaluation throughput
        for key in ("mfu", "matmul_peak_gflops", "model_gflops"):
            if key in extra:
                rows.append({"comparison": name, "measure": key, "ours": extra[key]})
    return pd.DataFrame(rows)


def main(argv: list[str]) -> int:
    data = json.loads(open(argv[1]).read())
    machine = data.get("machine_info", {})
    print(
        f"machine: {machine.get('cpu', {}).get('brand_raw', platform.processor())}, "
        f"{machine.get('cpu', {}).get('count', '?')} cores; python {machine.get('python_version')}"
    )
    print(table(argv[1]).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
