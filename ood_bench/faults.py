"""A plugin's code failing inside a run: one line naming the plugin, the hook and the error.

An exception (a NaN loss included) or a value of the wrong type from a plugin's hook — an
algorithm's ``step``, ``extra_modules``, ``state_dict`` or ``load_state_dict``, a family's ``score`` or
``_generate`` — becomes a ``PluginFault``, which the
CLI prints as one line and exit status 2 (the traceback only with ``OOD_BENCH_DEBUG=1``): the
fault is in the plugin, and its author needs to know which hook to look at, not Lightning's frames.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping

from .errors import OodBenchError, RunInterrupted


class PluginFault(OodBenchError):
    """A plugin's hook raised, or returned what it may not."""


# (kind, name) -> the entry-point name of the plugin that registered it, noted by ``ood_bench.plugins`` as
# it registers (this module imports nothing of the core, so the core's lowest modules can use it).
OWNERS: dict[tuple[str, str], str] = {}


def note_owner(kind: str, name: str, plugin: str) -> None:
    OWNERS[(kind, name)] = plugin


def _owner(kind: str, name: str) -> str:
    return OWNERS.get((kind, name), "?")


def fault(kind: str, name: str, hook: str, what: str) -> PluginFault:
    return PluginFault(f"plugin {_owner(kind, name)!r} ({kind} {name!r}) failed in {hook}: {what}")


class plugin_call:
    """``with plugin_call("algorithm", "grpo", "step"):`` turns an exception from the block into a
    ``PluginFault``; a fault already named (from a family's score inside an algorithm's step) and an
    interruption pass through unchanged."""

    def __init__(self, kind: str, name: str, hook: str) -> None:
        self.kind, self.name, self.hook = kind, name, hook

    def __enter__(self) -> None:
        return None

    def __exit__(self, tp, exc, tb) -> bool:
        if exc is None or isinstance(exc, (PluginFault, RunInterrupted)) or not isinstance(exc, Exception):
            return False
        raise fault(self.kind, self.name, self.hook, f"{type(exc).__name__}: {exc}") from exc


def checked_diagnostics(name: str, diag) -> dict[str, float]:
    """What an algorithm's ``step`` returned, as the floats the logger takes: a dict of numbers (or 0-dim tensors)."""
    if not isinstance(diag, dict):
        raise fault(
            "algorithm", name, "step", f"it returned {type(diag).__name__}, not a dict of diagnostics (name -> number)"
        )
    try:
        return {str(k): float(v) for k, v in diag.items()}
    except (TypeError, ValueError, RuntimeError) as exc:
        raise fault("algorithm", name, "step", f"a diagnostic it returned is not a number ({exc})") from exc


def checked_extra_modules(name: str, modules) -> dict:
    """What an algorithm's ``extra_modules`` returned: a dict of name -> ``torch.nn.Module``. ``None`` (a
    forgotten ``return``) is refused rather than taken as no modules: the head it meant would go untrained
    and unsaved."""

    # late: it loads torch, which importing this module does not
    from torch import nn

    if not isinstance(modules, (Mapping, nn.ModuleDict)):
        raise fault(
            "algorithm",
            name,
            "extra_modules",
            f"it returned {type(modules).__name__}, not a dict of trainable modules (name -> torch.nn.Module)",
        )
    for key, module in modules.items():
        if not isinstance(module, nn.Module):
            raise fault(
                "algorithm", name, "extra_modules", f"its {key!r} is a {type(module).__name__}, not a torch.nn.Module"
            )
    return dict(modules)


def checked_state(name: str, state) -> dict:
    """What an algorithm's ``state_dict`` returned: a dict that a checkpoint can hold (plain values and tensors),
    checked before anything is written, so a bad value stops the run with its key named and no checkpoint."""

    if not isinstance(state, dict):
        raise fault(
            "algorithm",
            name,
            "state_dict",
            f"it returned {type(state).__name__}, not a dict of the algorithm's state (plain values and tensors)",
        )
    for key, value in state.items():
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise fault(
                "algorithm",
                name,
                "state_dict",
                f"its {key!r} cannot be saved in a checkpoint, only plain values and tensors "
                f"({type(exc).__name__}: {exc})",
            ) from exc
    return state
