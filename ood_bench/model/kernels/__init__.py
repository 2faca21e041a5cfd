"""The decode engine's path: eager PyTorch, or a C++ kernel for the per-row attention of a decode step.

``OOD_BENCH_ENGINE`` chooses: ``auto`` (the default: the kernel if it builds here, else eager with a
one-line note), ``kernel`` (build it or fail with one line, exit 2) or ``eager``. The kernel
(``decode_attention.cpp``) is compiled on first use by ``torch.utils.cpp_extension.load`` (it needs a C++
compiler and ninja) into a cache folder, ``OOD_BENCH_KERNEL_DIR`` or torch's ``~/.cache/torch_extensions``,
and loaded from there afterwards. Records name the path that decoded them (``engine`` in ``eval.json``
and run records): the two paths sum in another order, so a sampled token can differ between them.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from ...errors import ConfigError, OodBenchError
from ..cpuinfo import read_cpuinfo

ENV = "OOD_BENCH_ENGINE"
DIR_ENV = "OOD_BENCH_KERNEL_DIR"
CHOICES = ("eager", "kernel", "auto")
# The kernel sums in another order than eager, which changes sampled tokens, so the default moved from
# "eager" to "auto" with results version 2, which re-ran the suites; a record names the path it used.
DEFAULT = "auto"
SOURCE = Path(__file__).with_name("decode_attention.cpp")

_loaded: dict[str, object] = {}  # the built module (or the reason it failed), once per process
_noted = False


def env_engine() -> str:
    """``OOD_BENCH_ENGINE``, checked: unset means the default; an unknown value is one line (exit 2)."""
    value = os.environ.get(ENV, "").strip() or DEFAULT
    if value not in CHOICES:
        raise ConfigError(f"invalid {ENV}={value!r}: choose from {', '.join(CHOICES)}")
    return value


def _cpu_tag() -> str:
    """A short hash of this CPU's model and flags. ``-march=native`` builds for the machine it runs on, so
    a cache folder shared between machines (a network home) must keep one build per kind of CPU."""

    info = read_cpuinfo()
    text = f"{info.get('model name', '')}|{info.get('flags', '')}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def build():
    """Compile (first time) and load the extension; raises whatever the compiler or loader raised."""
    # late: it loads torch, which importing this module does not
    import torch.utils.cpp_extension as ext

    name = f"ood_bench_decode_attention_{_cpu_tag()}"
    root = os.environ.get(DIR_ENV)
    folder = None
    if root:
        folder = Path(root).expanduser() / name
        folder.mkdir(parents=True, exist_ok=True)
    return ext.load(
        name=name,
        sources=[str(SOURCE)],
        build_directory=str(folder) if folder else None,
        extra_cflags=["-O3", "-march=native", "-fopenmp-simd"],
        verbose=False,
    )


def _reason(exc: Exception) -> str:
    """A failed build in a few words: the compiler's first error line where there is one (a build error's
    message is the whole compiler command and output), else the message's last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
    found = next((line for line in lines if "error:" in line), lines[-1])
    return f"{type(exc).__name__}: {' '.join(found.split())}"[:200]


def _try_build():
    if "module" not in _loaded:
        try:
            _loaded["module"] = build()
        except Exception as exc:  # noqa: BLE001 - a compiler's or linker's failure comes as anything
            _loaded["module"] = None
            _loaded["error"] = _reason(exc)
    return _loaded["module"]


def decode_kernel():
    """The kernel module if this process decodes with it, else None (the eager path).

    Resolved once per process and value of ``OOD_BENCH_ENGINE``; with ``kernel`` a failed build is an
    ``OodBenchError``, with ``auto`` it prints one note on stderr and decoding goes on eagerly."""
    global _noted
    mode = env_engine()
    if mode == "eager":
        return None
    module = _try_build()
    if module is not None:
        return module
    if mode == "kernel":
        raise OodBenchError(
            f"{ENV}=kernel but the decode kernel cannot be built ({_loaded['error']}); set {ENV}=eager or auto"
        )
    if not _noted:
        _noted = True
        print(
            f"ood-bench: note: decode kernel unavailable ({_loaded['error']}): using the eager path",
            file=sys.stderr,
            flush=True,
        )
    return None


def engine() -> str:
    """The path this process decodes with, as records name it: ``eager`` or ``kernel``."""
    return "kernel" if decode_kernel() is not None else "eager"


def reset() -> None:
    """Forget the loaded module and the note (tests that simulate a failed build)."""
    global _noted
    _loaded.clear()
    _noted = False
