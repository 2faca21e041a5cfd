"""``trainer.precision: auto``: the numeric precision this CPU trains fastest in, measured once per machine.

bf16-mixed can be faster than fp32 on a CPU that multiplies bf16 natively (AVX512-BF16 or AMX) and is
many times slower where oneDNN has to emulate it; and native instructions are not enough either (a Xeon
with avx512_bf16 and no AMX pretrained 1.38x slower in bf16). So ``auto`` decides in two stages:

1. the CPU's report: without native bf16 (the flag, PyTorch's AVX-512 kernels, oneDNN allowed to use them)
   bf16 is emulated and never pays, so ``auto`` is 32-true with nothing timed;
2. where bf16 is native, a probe of about a second times a few training steps of a model of the quick
   shape in both precisions, and ``auto`` is bf16-mixed only if that is at least ``PROBE_MARGIN`` faster.

The precision is part of a run's key, so one machine must always choose the same: the probe's verdict is
cached per CPU model, PyTorch capability, PyTorch version and thread count (``probe_cache_path``), and
every record carries it. ``OOD_BENCH_PRECISION`` (32-true, bf16-mixed or auto) overrides what ``auto``
becomes, e.g. to reproduce bf16 records on a CPU where fp32 won (or without bf16, slowly).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import time
from pathlib import Path

from ..errors import ConfigError
from ..model.cpuinfo import read_cpuinfo as _cpuinfo
from ..storage.atomic import atomic_write_json

AUTO = "auto"
ENV = "OOD_BENCH_PRECISION"
CACHE_ENV = "OOD_BENCH_CACHE"  # folder of machine-local caches; default ~/.cache/ood-bench
CHOICES = ("32-true", "bf16-mixed", AUTO)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of the native bf16 instructions
# bf16 must beat fp32 by this factor in the probe to be chosen: a near-tie, which load could flip, stays fp32
# (fp32 is the precision whose bytes reproduce on every kind of CPU's kernels most nearly).
PROBE_MARGIN = 1.15


def capability() -> str:
    """The vector instruction set PyTorch's CPU kernels use (DEFAULT, AVX2, AVX512, ...): what
    ``ATEN_CPU_CAPABILITY`` limits."""
    # late: it loads torch, which importing this module does not
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def _onednn_bf16() -> bool:
    """oneDNN runs bf16 with AVX-512 or better (what ``ONEDNN_MAX_CPU_ISA`` limits); True where the build
    cannot tell, so the other two conditions decide."""
    # late: it loads torch, which importing this module does not
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """This machine's CPU as a run record states it: PyTorch's capability, whether bf16 is native (the rule
    below), and the model name. Asked once per process: the answer cannot change while it runs."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    cap = capability()
    # Native bf16 needs all three: the instructions (a CPU flag), PyTorch's AVX-512 kernels, and oneDNN
    # allowed to use them. A CPU whose flags cannot be read is taken to emulate bf16 (fp32 is never slow).
    native = cap.startswith("AVX512") and bool(flags & set(BF16_FLAGS)) and _onednn_bf16()
    return {
        "capability": cap,
        "bf16_native": native,
        "model": info.get("model name") or platform.processor() or platform.machine(),
    }


def env_precision() -> str:
    """``OOD_BENCH_PRECISION``, checked: unset means auto; an unknown value is one line (exit 2)."""
    value = os.environ.get(ENV, "").strip() or AUTO
    if value not in CHOICES:
        raise ConfigError(f"invalid {ENV}={value!r}: choose from {', '.join(CHOICES)}")
    return value


def probe_cache_path() -> Path:
    """Where the probe's verdict for this machine is kept (``OOD_BENCH_CACHE``, else ~/.cache/ood-bench)."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "ood-bench")
    return Path(root) / "precision-probe.json"


def _probe_key() -> str:
    # late: it loads torch, which importing this module does not
    import torch

    cpu = cpu_info()
    return f"{cpu['model']} | {cpu['capability']} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def time_steps(rounds: int = 3, rows: int = 4) -> dict:
    """Seconds per training step (forward, loss, backward) of a model of the quick shape on ``rows`` packed
    128-token rows, in fp32 and under bf16 autocast, alternating so a drift in the machine's speed falls on
    both; the median of ``rounds`` each, after one untimed step of each. About a second on a 2-core CPU."""
    # late: it loads torch, which importing this module does not
    import torch

    # late: it loads torch, which importing this module does not
    import torch.nn.functional as F

    # late: it loads torch, which importing this module does not
    from ..model.model import GPT, ModelConfig

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=256))  # the quick recipe's shape
    ids = torch.randint(0, model.vocab_size, (rows, 129))

    def step(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    # One thread: the ratio is a property of the kernels, and a single thread is far less disturbed by other
    # work on the machine than a team of spinning ones (with 2 busy cores, team timings swing 2-3x).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step(False), step(True)
        times = {False: [], True: []}
        for _ in range(rounds):
            for bf16 in (False, True):
                times[bf16].append(step(bf16))
    finally:
        torch.set_num_threads(threads)
    return {"fp32_s": statistics.median(times[False]), "bf16_s": statistics.median(times[True])}


@functools.lru_cache(maxsize=1)
def bf16_probe() -> dict:
    """Whether bf16-mixed pays on this machine: ``{"bf16_faster", "fp32_s", "bf16_s", "speedup", "cached"}``.
    Without native bf16 nothing is timed (``speedup`` is None). With it, the probe runs once per machine and
    its verdict is kept in ``probe_cache_path()`` so later runs (and other processes) choose the same."""
    if not cpu_info()["bf16_native"]:
        return {"bf16_faster": False, "fp32_s": None, "bf16_s": None, "speedup": None, "cached": False}
    path, key = probe_cache_path(), _probe_key()
    try:
        cached = json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        cached = None
    if isinstance(cached, dict) and {"bf16_faster", "fp32_s", "bf16_s", "speedup"} <= set(cached):
        return {**cached, "cached": True}
    timing = time_steps()
    speedup = timing["fp32_s"] / timing["bf16_s"]
    verdict = {**timing, "speedup": round(speedup, 3), "bf16_faster": speedup >= PROBE_MARGIN}
    try:  # a read-only home only costs a probe per process
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            table = {}
        atomic_write_json(path, {**(table if isinstance(table, dict) else {}), key: verdict})
    except OSError:
        pass
    return {**verdict, "cached": False}


def resolve_precision(precision) -> str:
    """What ``trainer.precision`` trains in: itself, unless it is ``auto``, which becomes ``OOD_BENCH_PRECISION``
    if set, else bf16-mixed where this CPU's bf16 is native and measured faster (``bf16_probe``), and 32-true
    everywhere else."""
    if str(precision) != AUTO:
        return precision
    chosen = env_precision()
    if chosen != AUTO:
        return chosen
    return "bf16-mixed" if bf16_probe()["bf16_faster"] else "32-true"


def why_auto() -> str:
    """One line on what ``auto`` resolves to here and why, for the run command to print."""
    chosen = resolve_precision(AUTO)
    if env_precision() != AUTO:
        return f"trainer.precision auto -> {chosen} ({ENV}={chosen})"
    cpu = cpu_info()
    where = f"this CPU: {cpu['model']}, PyTorch capability {cpu['capability']}"
    if not cpu["bf16_native"]:
        return f"trainer.precision auto -> {chosen} ({where}, no native bf16)"
    probe = bf16_probe()
    return (
        f"trainer.precision auto -> {chosen} ({where}, native bf16 measured {probe['speedup']:.2f}x fp32's speed, "
        f"bf16 needs >= {PROBE_MARGIN}x{'; cached' if probe['cached'] else ''})"
    )
