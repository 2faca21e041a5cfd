"""``trainer.precision: auto``: the numeric precision this CPU trains fastest in, chosen by a fixed rule.

bf16-mixed can be faster than fp32 on a CPU that multiplies bf16 natively (AVX512-BF16 or AMX) and is
many times slower where oneDNN has to emulate it (docs/precision.md and benchmarks/test_precision_speed.py
have the figures), so a fixed choice is wrong somewhere. The rule reads what PyTorch and the CPU report rather than timing anything: a
timing would flip under load, and the precision is part of a run's key, so the same machine must always
choose the same. ``OOD_BENCH_PRECISION`` (32-true, bf16-mixed or auto) overrides what ``auto`` becomes,
e.g. to reproduce bf16 records on a CPU without bf16 (slowly) or to get fp32 on one with it.
"""

from __future__ import annotations

import functools
import os
import platform

from .errors import ConfigError

AUTO = "auto"
ENV = "OOD_BENCH_PRECISION"
CHOICES = ("32-true", "bf16-mixed", AUTO)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of the native bf16 instructions


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo; empty where there is none (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read().split("\n\n", 1)[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, sep, v in (line.partition(":") for line in text.splitlines()) if sep}


def capability() -> str:
    """The vector instruction set PyTorch's CPU kernels use (DEFAULT, AVX2, AVX512, ...): what
    ``ATEN_CPU_CAPABILITY`` limits."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def _onednn_bf16() -> bool:
    """oneDNN runs bf16 with AVX-512 or better (what ``ONEDNN_MAX_CPU_ISA`` limits); True where the build
    cannot tell, so the other two conditions decide."""
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


def resolve_precision(precision) -> str:
    """What ``trainer.precision`` trains in: itself, unless it is ``auto``, which becomes ``OOD_BENCH_PRECISION``
    if set, else bf16-mixed where this CPU multiplies bf16 natively and 32-true everywhere else."""
    if str(precision) != AUTO:
        return precision
    chosen = env_precision()
    if chosen != AUTO:
        return chosen
    return "bf16-mixed" if cpu_info()["bf16_native"] else "32-true"


def why_auto() -> str:
    """One line on what ``auto`` resolves to here and why, for the run command to print."""
    chosen = resolve_precision(AUTO)
    if env_precision() != AUTO:
        return f"trainer.precision auto -> {chosen} ({ENV}={chosen})"
    cpu = cpu_info()
    why = "native bf16" if cpu["bf16_native"] else "no native bf16"
    return (
        f"trainer.precision auto -> {chosen} (this CPU: {cpu['model']}, PyTorch capability {cpu['capability']}, {why})"
    )
