"""``ood-bench dev-check ALGO``: does a new algorithm train at all, before a suite spends an hour on it?

A few gradient steps of a real post-training run (the same Lightning loop, context, rollouts and checkpoint
hooks as ``posttrain`` and the suite runner) from a small base, the committed smoke base by default, on one
batch of ID prompts trained on at every step: fitting one batch is the first thing a policy-gradient method
must manage, and on fixed prompts the reward moves with the policy alone (over fresh prompts, how hard each
step's draw happens to be swings a step's mean reward by more than a dozen steps of GRPO move it). Then a
short report of what a plugin author checks first:

- **loss finite**: every step's loss and, after the last step, every weight (a NaN stops the run at its step);
- **reward moved**: the step's mean training reward against the step, by the rule boards use to decide
  whether a run trained (``ood_bench.evaluation.did_train.reward_trend``: least-squares slope, one-sided p < 0.05);
- **clip fraction**: the mean of what the algorithm logs as ``clip_frac`` (PPO-style ratio clipping), if it
  logs one;
- **KL to the reference**: the core's ``kl_ref`` (k3, per token) at the last step.

The check is **healthy** when the loss stayed finite and the reward rose; an algorithm that logs no rollout
reward (SFT) is judged on finiteness alone. Exit status: 0 healthy, 1 not (``EXIT_UNHEALTHY``), 2 bad input
before any compute, or a plugin that raised (as in every command).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from lightning.pytorch.callbacks import Callback

from ..errors import NonFiniteError, OodBenchError
from ..evaluation.did_train import ALPHA, MIN_STEPS, reward_trend
from ..plugins import get_plugins
from ..training import posttrain as posttraining  # called through the module, so a stand-in is used
from ..training.algorithms import build_algorithm_config

EXIT_UNHEALTHY = 1
# The committed smoke base (ood_bench/configs/smoke.yaml), found beside the package in a clone of the
# repository; an installed wheel has no leaderboards/ folder, so there --base is needed.
SMOKE_BASE = Path(__file__).resolve().parents[2] / "leaderboards" / "smoke" / "bases" / "smoke.safetensors"
# A few steps of few prompts: about half a minute of one CPU core for GRPO on the smoke base, and enough steps
# for the reward trend test (which needs at least did_train.MIN_STEPS) to see GRPO's rise at its defaults
# (p ~ 2e-5 there; 8 steps of 8 prompts, which the tests use, still give p ~ 0.002).
DEFAULTS = {"budget.grad_steps": 12, "prompts_per_step": 16}
RULE = (
    f"the reward moved when the least-squares slope of the step's mean training reward on the step is "
    f"positive with one-sided p < {ALPHA} (at least {MIN_STEPS} steps; the rule boards use for 'trained', "
    f"ood_bench/evaluation/did_train.py)"
)


def default_base() -> Path:
    if not SMOKE_BASE.is_file():
        raise OodBenchError(
            f"no smoke base at {str(SMOKE_BASE)!r} (it comes with a clone of the ood-bench repository): pass "
            f"--base, e.g. a base made by `ood-bench pretrain --config smoke` (runs/smoke/base/base.ckpt)"
        )
    return SMOKE_BASE


class _StepLog(Callback):
    """Every step's logged scalars, kept in memory as they come (a run stopped by a NaN keeps those before it)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append({k: float(v) for k, v in pl_module.last_logs.items() if k.startswith(("algo/", "diag/"))})


@dataclass
class Report:
    algorithm: str
    base: str
    steps: list[dict[str, float]] = field(default_factory=list)
    finite: bool = True
    stopped: str = ""  # why the run stopped early (a non-finite loss or weight), if it did
    trend: dict = field(default_factory=dict)
    seconds: float = 0.0
    prompts_per_step: int = 0
    group_size: int = 0
    split: str = "id"

    @property
    def rewards(self) -> list[float]:
        return [s["diag/reward"] for s in self.steps if "diag/reward" in s]

    @property
    def healthy(self) -> bool:
        return self.finite and self.trend.get("trained") is not False

    def value(self, key: str, how: str = "last") -> float | None:
        values = [s[key] for s in self.steps if key in s and math.isfinite(s[key])]
        if not values:
            return None
        return values[-1] if how == "last" else sum(values) / len(values)


def dev_check(cfg, progress: bool = False, out: Path | None = None) -> Report:
    """Run ``cfg`` (a validated ``PostTrainConfig``) into ``out`` (a temporary folder, removed after, when
    None) and judge it."""

    algo = build_algorithm_config(get_plugins().algorithm(cfg.algorithm), cfg.algo)
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="ood-bench-dev-check-"))
    cfg.out_dir = str(folder)
    log = _StepLog()
    report = Report(cfg.algorithm, str(cfg.base), prompts_per_step=cfg.prompts_per_step, group_size=algo.group_size)
    report.split = cfg.rl_split
    t0 = time.perf_counter()
    try:
        # FiniteGuard stops the run the step a loss or a weight is no longer finite; Context.optimize refuses a
        # non-finite loss inside the plugin's step, where it arrives as a PluginFault caused by it
        posttraining.posttrain(cfg, progress=progress, callbacks=[log], repeat_prompts=True)
    except NonFiniteError as exc:
        report.finite, report.stopped = False, str(exc)
    except OodBenchError as exc:
        if not isinstance(exc.__cause__, NonFiniteError):
            raise
        report.finite, report.stopped = False, str(exc.__cause__)
    finally:
        if out is None:
            shutil.rmtree(folder, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    report.steps = log.steps
    if any(not math.isfinite(s["algo/loss"]) for s in log.steps if "algo/loss" in s):  # logged, never stepped on
        report.finite = False
        report.stopped = report.stopped or "a loss the algorithm logged is not finite"
    rewards = [(i, s["diag/reward"]) for i, s in enumerate(log.steps) if "diag/reward" in s]
    report.trend = reward_trend(pd.DataFrame(rewards, columns=["step", "reward"]))
    return report


def _num(value: float | None, fmt: str = ".4f") -> str:
    return "n/a" if value is None else format(value, fmt)


def format_report(r: Report) -> str:
    lines = [
        f"dev-check {r.algorithm} on {r.base}: {len(r.steps)} steps on one batch of {r.prompts_per_step} "
        f"{r.split} prompts x {r.group_size} samples, {r.seconds:.0f} s",
        "",
        f"{'step':>4}  {'reward':>7}  {'loss':>10}  {'kl_ref':>9}  {'clip_frac':>9}",
    ]
    for i, s in enumerate(r.steps):
        lines.append(
            f"{i:>4}  {_num(s.get('diag/reward'), '.3f'):>7}  {_num(s.get('algo/loss'), '.4g'):>10}  "
            f"{_num(s.get('diag/kl_ref'), '.2e'):>9}  {_num(s.get('algo/clip_frac'), '.3f'):>9}"
        )
    lines.append("")
    if r.finite:
        lines.append("loss finite:      yes (every step's loss, and every weight after the last step)")
    else:
        lines.append(f"loss finite:      NO ({r.stopped})")
    rewards = r.rewards
    t = r.trend
    if t.get("trained") is None:
        why = (
            "no rollout reward was logged (an algorithm that samples nothing, like SFT)"
            if not rewards
            else f"{len(rewards)} steps, the rule needs {MIN_STEPS}"
        )
        lines.append(f"reward moved:     cannot tell: {why}")
    else:
        lines.append(
            f"reward moved:     {'yes' if t['trained'] else 'NO'}: {rewards[0]:.3f} at the first step, "
            f"{rewards[-1]:.3f} at the last; slope {t['reward_slope']:+.4f} per step, one-sided p = "
            f"{t['reward_p']:.3g}"
        )
    lines.append(f"  rule: {RULE}")
    clip = r.value("algo/clip_frac", "mean")
    lines.append(
        "clip fraction:    "
        + (
            f"{clip:.4f} (mean over steps of the algorithm's clip_frac)"
            if clip is not None
            else "n/a (the algorithm logs no clip_frac)"
        )
    )
    kl = r.value("diag/kl_ref")
    lines.append(
        "KL to reference:  "
        + (f"{kl:.3g} per token at the last step (k3)" if kl is not None else "n/a (no rollouts to score it on)")
    )
    verdict = (
        "healthy (exit 0)"
        if r.healthy
        else f"NOT healthy (exit {EXIT_UNHEALTHY}): "
        + ("the loss or the weights stopped being finite" if not r.finite else "the training reward did not rise")
    )
    lines.append(f"verdict:          {verdict}")
    return "\n".join(lines)
