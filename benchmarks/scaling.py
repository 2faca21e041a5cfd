"""How rollout and training cost grow with batch size, completion length and model width.

    python benchmarks/scaling.py

Prints one markdown table: for each setting, the engine's decoding throughput (new tokens/s,
<eos> suppressed, 24-token prompts, 8 samples per prompt) and the time of one training pass
(forward and backward over those rows, prompt and completion) on random-init models.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.conftest import eos_bias, random_prompts  # noqa: E402
from ood_bench.model.model import GPT, ModelConfig  # noqa: E402
from ood_bench.model.rollout import sample  # noqa: E402


def timed(fn, repeats: int = 3) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def row(width: int, rows: int, new: int) -> dict:
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_embd=width, n_head=4)).eval()
    hook = eos_bias(model.head, -1e4)
    prompts = random_prompts(rows // 8, 24)
    decode = timed(lambda: sample(model, prompts, n=8, max_new_tokens=new))
    ids = torch.randint(3, model.vocab_size, (rows, 24 + new))
    model.train()

    def train_pass():
        logits = model(ids)
        F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()

    train = timed(train_pass, 2)
    hook.remove()
    return {
        "width": width,
        "params": f"{model.num_params() / 1e6:.1f}M",
        "rows": rows,
        "new tokens": new,
        "decode tokens/s": f"{rows * new / decode:,.0f}",
        "decode s": f"{decode:.2f}",
        "train pass s": f"{train:.2f}",
    }


def main() -> int:
    import pandas as pd

    settings = [(128, 128, 32), (128, 512, 32), (128, 2048, 32), (128, 512, 128), (256, 512, 32), (512, 512, 32)]
    table = pd.DataFrame([row(*s) for s in settings])
    print(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
