"""What an algorithm plugin implements, and what the core hands it.

An algorithm is a class with a ``name``, a ``config_class`` (a dataclass whose
fields are its knobs, all logged with the run) and a ``step`` method that turns
one batch of training prompts into zero or more optimizer steps through the
``Context`` (``ood_bench.training.context``). The context owns the policy, the frozen reference, the one
rollout engine, the verifier rewards, the optimizer and the budget counters, so
every algorithm is measured the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..config import ConfigError, build, check
from ..faults import checked_extra_modules
from ..plugins import ALGORITHM_CHECKS
from .context import Context, Counters, LogProbs, RolloutBatch

if TYPE_CHECKING:
    from ..tasks.base import Problem

PostTrainContext = Context  # the name before API 1.0


def knob(default, help: str):
    """A knob of an algorithm's config with its one-line help (``ood-bench algorithms NAME`` shows it).
    Returns a dataclass ``field`` whose metadata holds the help (a list, dict or set default is copied per
    config).

    Example::

        @dataclass
        class MyConfig(AlgorithmConfig):
            beta: float = knob(0.0, "KL coefficient")
    """
    if isinstance(default, (list, dict, set)):  # a mutable default: each config gets its own copy
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class AlgorithmConfig:
    """Knobs every algorithm has; subclass it (a dataclass) to add an algorithm's own.

    Each field is an ``algo.*`` override on the command line; declare it with ``knob(default, help)`` so its
    help line shows in ``ood-bench algorithms NAME``. Override ``validate(prefix)`` (call ``super().validate``) to
    refuse bad values with ``check``.

    Example::

        @dataclass
        class MyConfig(AlgorithmConfig):
            beta: float = knob(0.0, "KL coefficient")

            def validate(self, prefix="algo"):
                super().validate(prefix)
                check(self.beta >= 0, f"{prefix}.beta", self.beta, "must be >= 0")
    """

    lr: float = knob(3e-4, "AdamW learning rate; the quick base ends pretraining at 3e-4 (its cosine floor)")
    weight_decay: float = knob(0.0, "AdamW weight decay of the policy (and of extra modules)")
    grad_clip: float = knob(1.0, "clip the gradient norm to this before each step (0: no clipping)")
    group_size: int = knob(8, "G samples per prompt")
    temperature: float = knob(1.0, "sampling temperature of rollouts; log-probs are scored at the same temperature")
    top_p: float = knob(1.0, "nucleus sampling of rollouts; algorithms that score samples require 1")
    max_new_tokens: int = knob(128, "longest completion a rollout may write")
    trace_reward: float = knob(0.0, "weight of the process (trace) reward added to the answer reward")
    adam_beta2: float = knob(0.99, "AdamW's second-moment decay (pretraining's train.adam_beta2 is 0.95)")

    def validate(self, prefix: str = "algo") -> None:
        check(math.isfinite(self.lr) and self.lr > 0, f"{prefix}.lr", self.lr, "must be a positive number")
        check(self.weight_decay >= 0, f"{prefix}.weight_decay", self.weight_decay, "must be >= 0")
        check(self.grad_clip >= 0, f"{prefix}.grad_clip", self.grad_clip, "must be >= 0")
        check(self.group_size >= 1, f"{prefix}.group_size", self.group_size, "must be >= 1")
        check(
            math.isfinite(self.temperature) and self.temperature > 0,
            f"{prefix}.temperature",
            self.temperature,
            "must be a positive number",
        )
        check(0 < self.top_p <= 1, f"{prefix}.top_p", self.top_p, "must be in (0, 1]")
        check(self.max_new_tokens >= 1, f"{prefix}.max_new_tokens", self.max_new_tokens, "must be >= 1")
        check(self.trace_reward >= 0, f"{prefix}.trace_reward", self.trace_reward, "must be >= 0")
        check(0 < self.adam_beta2 < 1, f"{prefix}.adam_beta2", self.adam_beta2, "must be in (0, 1)")


class Algorithm:
    """Base class of every post-training algorithm plugin.

    Set ``name``, ``description`` and ``config_class``; implement ``step(problems)``, which trains
    on one batch through ``self.ctx`` (a ``Context``) and returns a dict of float diagnostics.
    ``self.cfg`` is the validated config.

    Example::

        class MyAlgo(Algorithm):
            name, config_class = "mine", MyConfig

            def step(self, problems):
                batch = self.ctx.rollout(problems, self.cfg.group_size)
                lp = self.ctx.logprobs(self.ctx.policy, batch.ids, batch.cmask)
                adv, _ = group_advantages(batch.rewards, self.cfg.group_size)
                loss = aggregate(-adv[:, None] * lp.logp, lp.mask, "token-mean")
                self.ctx.optimize(loss, train_tokens=int(lp.mask.sum()))
                return {"loss": float(loss)}
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_class: ClassVar[type] = AlgorithmConfig
    # Whether the loss uses the log-probabilities of the sampled tokens (ratios,
    # KL, policy gradients). ``ctx.logprobs`` scores the full softmax, so such an
    # algorithm refuses ``top_p < 1``, whose samples come from a truncated one.
    # Fine-tuning on fixed or verified texts (SFT, expert iteration) sets False.
    uses_sample_logprobs: ClassVar[bool] = True
    # The run's own objective: a key of the step's logged values (the core's ``reward`` where the step
    # rolled out, or one of the diagnostics ``step`` returns) and whether it should rise ("max") or fall
    # ("min"). The plateau stopping rule (``budget.stop``) and the "did it train" check read it. SFT sets
    # ("loss", "min"): its loss is the gold traces' negative log-likelihood.
    objective: ClassVar[tuple[str, str]] = ("reward", "max")

    def __init__(self, config: AlgorithmConfig, ctx: Context) -> None:
        self.cfg = config
        self.ctx = ctx

    def extra_modules(self) -> dict[str, nn.Module]:
        """Trainable modules besides the policy (PPO's value head); saved and optimised with it."""
        return {}

    def step(self, problems: list[Problem]) -> dict[str, float]:
        """Train on one batch of prompts; return the diagnostics to log."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """State of the algorithm itself (not of ``extra_modules``, which are saved with the model): a
        running baseline, a schedule's position... Saved with every checkpoint and given back to
        ``load_state_dict`` on resume, so an interrupted run continues exactly. Plain Python values
        and tensors only."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (called before the first step of a resumed run)."""

    @classmethod
    def fields(cls) -> list[tuple[str, str, object]]:
        """(name, type, default) of every knob, for ``ood-bench algorithms``."""
        out = []
        for f in dataclasses.fields(cls.config_class):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore
            out.append((f.name, getattr(f.type, "__name__", str(f.type)), default))
        return out

    @classmethod
    def knob_docs(cls) -> dict[str, str]:
        """One line per knob, from ``knob(default, help)``."""
        return knob_docs(cls.config_class)


def knob_docs(config_class: type) -> dict[str, str]:
    """Each knob's one-line help, from its field's ``help`` metadata (``knob(default, help)``). Returns a dict
    from field name to its line; a field without help is missing from it (``ood-bench algorithms NAME``
    shows that knob without a line).

    Example::

        knob_docs(MyConfig)["beta"]  # "KL coefficient"
    """
    return {f.name: f.metadata["help"] for f in dataclasses.fields(config_class) if "help" in f.metadata}


def build_algorithm_config(algo_cls: type[Algorithm], data: dict) -> AlgorithmConfig:
    cfg = build(algo_cls.config_class, data, prefix="algo")
    cfg.validate("algo")
    if algo_cls.uses_sample_logprobs:
        check(
            cfg.top_p == 1.0,
            "algo.top_p",
            cfg.top_p,
            f"{algo_cls.name} scores samples with the full softmax, so it samples from it too (top_p=1); "
            "a truncated sampler would make its ratios and KL inconsistent",
        )
    return cfg


def standalone(
    algorithm_class: type[Algorithm],
    policy: nn.Module,
    families: list,
    knobs: dict | None = None,
    seed: int = 0,
    draw=None,
) -> Algorithm:
    """An algorithm wired to a ``Context`` around a plain model and AdamW, with no Lightning.

    For unit tests and notebooks: ``algo = standalone(MyAlgo, model, [family]); algo.ctx.begin_step();
    algo.step(problems); algo.ctx.end_step()``. ``knobs`` are checked like ``algo.*`` overrides.
    Returns the algorithm instance (its context is ``algo.ctx``).

    Example::

        algo = standalone(MyAlgo, GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16)), [family], {"group_size": 4})
    """

    config = build_algorithm_config(algorithm_class, knobs or {})
    reference = copy.deepcopy(policy).requires_grad_(False).eval()
    ctx = Context(policy, reference, families, config, optimizer=None, seed=seed, draw=draw)
    algo = algorithm_class(config, ctx)
    extra = checked_extra_modules(algorithm_class.name, algo.extra_modules())
    params = list(policy.parameters()) + [p for m in extra.values() for p in m.parameters()]
    ctx.optimizer = torch.optim.AdamW(
        params, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, config.adam_beta2)
    )
    return algo


__all__ = [
    "Algorithm",
    "AlgorithmConfig",
    "Context",
    "Counters",
    "LogProbs",
    "RolloutBatch",
    "PostTrainContext",
    "build_algorithm_config",
    "knob_docs",
    "standalone",
    "ConfigError",
]


def _default_fits(value: Any, tp: Any) -> bool:
    """Whether a config field's default has its annotated type (ints count as floats, bools as nothing else)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_default_fits(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple, dict, set, frozenset):
        return isinstance(value, origin)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # Literal and the like: not checked here


def algorithm_fault(algo_cls: Any) -> str | None:
    """What makes ``algo_cls`` unusable, in words naming it, or None: caught at registration, not at run time."""
    if not (isinstance(algo_cls, type) and issubclass(algo_cls, Algorithm)):
        return f"{algo_cls!r} is not a subclass of Algorithm (register the class, not an instance)"
    cls = algo_cls.__name__
    if not getattr(algo_cls, "name", ""):
        return f"algorithm class {cls} has no name"
    if algo_cls.step is Algorithm.step:
        return f"algorithm class {cls} has no step method (def step(self, problems) -> dict of diagnostics)"
    config = algo_cls.config_class
    if not dataclasses.is_dataclass(config) or not isinstance(config, type):
        return f"config_class {getattr(config, '__name__', config)!r} of {cls} is not a dataclass (add @dataclass)"
    fields = {f.name: f for f in dataclasses.fields(config)}
    lost = [n for n in vars(config).get("__annotations__", {}) if n not in fields and not n.startswith("_")]
    lost = [n for n in lost if not any(w in str(vars(config)["__annotations__"][n]) for w in ("ClassVar", "InitVar"))]
    if lost:
        return (
            f"config_class {config.__name__} of {cls} is not a dataclass (add @dataclass): "
            f"its knobs {', '.join(lost)} would be ignored"
        )
    try:
        hints = typing.get_type_hints(config)
    except Exception as exc:  # an annotation that names nothing importable
        return f"config_class {config.__name__} of {cls}: its annotations do not resolve ({type(exc).__name__}: {exc})"
    for name, f in fields.items():
        if f.default is not dataclasses.MISSING and name in hints and not _default_fits(f.default, hints[name]):
            tp = getattr(hints[name], "__name__", str(hints[name]))
            return f"config_class {config.__name__} of {cls}: knob {name}: {tp} = {f.default!r} is not a {tp}"
    return None


ALGORITHM_CHECKS.append(algorithm_fault)
