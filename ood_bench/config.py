"""Typed configs, loaded from YAML with dotted command-line overrides.

Every section is a plain dataclass with a ``validate`` method; loading rejects
unknown keys and wrong types with a message that names the key and the value,
so a typo in a suite file fails before any compute is spent.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .tasks.base import AXES, SPLITS

CONFIG_DIR = Path(__file__).parent / "configs"


def _check(cond: bool, key: str, value: Any, why: str) -> None:
    if not cond:
        raise ConfigError(f"invalid config value {key}={value!r}: {why}")


@dataclass
class ModelConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 256
    pos_encoding: str = "rope"  # "rope" or "learned": length OOD depends on it
    # Share of each head's channels that RoPE rotates (GPT-NeoX's rotary_pct);
    # the others carry content only, which content lookups (the graph family) need.
    rope_fraction: float = 1.0
    # Width of the causal convolution that opens every block (0 or 1: none). It
    # hands each position its neighbours' tokens, so edge-list lookups need no
    # induction circuit to form first (see model.py).
    conv_kernel: int = 4
    dropout: float = 0.0

    def validate(self, prefix: str = "model") -> None:
        for k in ("n_layer", "n_head", "n_embd", "block_size"):
            _check(getattr(self, k) > 0, f"{prefix}.{k}", getattr(self, k), "must be positive")
        _check(self.n_embd % self.n_head == 0, f"{prefix}.n_embd", self.n_embd, "must be divisible by n_head")
        _check((self.n_embd // self.n_head) % 2 == 0, f"{prefix}.n_embd", self.n_embd, "head size must be even")
        _check(self.pos_encoding in ("rope", "learned"), f"{prefix}.pos_encoding", self.pos_encoding,
               "choose rope or learned")
        _check(0 <= self.conv_kernel <= 16, f"{prefix}.conv_kernel", self.conv_kernel, "must be in 0..16")
        _check(0.0 < self.rope_fraction <= 1.0, f"{prefix}.rope_fraction", self.rope_fraction, "must be in (0, 1]")
        _check(0.0 <= self.dropout < 1.0, f"{prefix}.dropout", self.dropout, "must be in [0, 1)")


@dataclass
class MixtureConfig:
    """What the base model sees: each family's share, and per-axis OOD exposure.

    ``exposure[axis]`` is the fraction of the whole corpus drawn from that axis's
    OOD split (spread over families by their shares); the rest is ID.
    """

    families: dict[str, float] = field(default_factory=lambda: {"string": 0.5, "graph": 0.5})
    exposure: dict[str, float] = field(default_factory=lambda: {a: 0.0 for a in AXES})

    def validate(self, prefix: str = "mixture") -> None:
        from .plugins import get_tasks

        tasks = get_tasks()
        _check(bool(self.families), f"{prefix}.families", self.families, "name at least one family")
        for name, share in self.families.items():
            tasks.get(name)
            _check(isinstance(share, (int, float)) and share >= 0, f"{prefix}.families.{name}", share,
                   "share must be a non-negative number")
        total = sum(self.families.values())
        _check(abs(total - 1.0) < 1e-6, f"{prefix}.families", self.families, f"shares sum to {total:g}, not 1")
        for axis, frac in self.exposure.items():
            _check(axis in AXES, f"{prefix}.exposure.{axis}", frac, f"unknown axis (choose from {', '.join(AXES)})")
            _check(isinstance(frac, (int, float)) and 0.0 <= frac <= 1.0, f"{prefix}.exposure.{axis}", frac,
                   "exposure must be in [0, 1]")
        total_exp = sum(self.exposure.values())
        _check(total_exp <= 1.0, f"{prefix}.exposure", self.exposure, f"exposures sum to {total_exp:g} > 1")


@dataclass
class TrainConfig:
    batch_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    warmup_steps: int = 50
    max_steps: int = 600  # matched across exposures: compare at equal steps, not wall time
    grad_clip: float = 1.0
    ckpt_every: int = 50
    log_every: int = 10
    loss_on_prompt: bool = False  # prompts are random draws; only the completion is learnable
    # Pack each step's examples into rows of this many tokens (block-diagonal
    # attention) instead of padding each to the longest: the same examples, about
    # half the compute on a CPU. Short rows keep attention cheap. 0: no packing.
    pack_len: int = 128
    # Positional skip (PoSE): move the positions after a random cut of each
    # example on by up to this many, so positions and distances past the ID
    # lengths are trained without longer problems. 0: off. Lets a reader tell
    # "a deeper / longer problem" from "a problem at untrained positions".
    position_skip: int = 0

    def validate(self, prefix: str = "train") -> None:
        for k in ("batch_size", "max_steps", "ckpt_every", "log_every"):
            _check(getattr(self, k) > 0, f"{prefix}.{k}", getattr(self, k), "must be positive")
        _check(self.lr > 0, f"{prefix}.lr", self.lr, "must be positive")
        _check(self.pack_len >= 0, f"{prefix}.pack_len", self.pack_len, "must be >= 0 (0: no packing)")
        _check(self.position_skip >= 0, f"{prefix}.position_skip", self.position_skip, "must be >= 0 (0: off)")
        _check(0 <= self.min_lr_ratio <= 1, f"{prefix}.min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]")
        _check(self.warmup_steps >= 0, f"{prefix}.warmup_steps", self.warmup_steps, "must be >= 0")
        _check(self.weight_decay >= 0, f"{prefix}.weight_decay", self.weight_decay, "must be >= 0")
        _check(self.grad_clip >= 0, f"{prefix}.grad_clip", self.grad_clip, "must be >= 0")


@dataclass
class TrainerConfig:
    """Passed straight to ``lightning.Trainer``: the same config scales to GPUs and nodes."""

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"

    def validate(self, prefix: str = "trainer") -> None:
        _check(self.num_nodes >= 1, f"{prefix}.num_nodes", self.num_nodes, "must be >= 1")


@dataclass
class EvalConfig:
    families: list[str] = field(default_factory=list)  # empty: every family of the mixture
    splits: list[str] = field(default_factory=lambda: list(SPLITS))
    n_test: int = 200  # problems per split, drawn from the reserved test stream
    n_samples: int = 16  # samples per problem for pass@k; k runs up to this
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 512  # sequences decoded together
    max_new_tokens: int = 128

    def validate(self, prefix: str = "eval") -> None:
        from .data import TEST_SET_SIZE
        from .plugins import get_tasks

        for name in self.families:
            get_tasks().get(name)
        for split in self.splits:
            _check(split in SPLITS, f"{prefix}.splits", split, f"unknown split (choose from {', '.join(SPLITS)})")
        _check(0 < self.n_test <= TEST_SET_SIZE, f"{prefix}.n_test", self.n_test,
               f"must be in 1..{TEST_SET_SIZE}, the size of the reserved test stream")
        _check(self.n_samples >= 1, f"{prefix}.n_samples", self.n_samples, "must be >= 1")
        _check(self.temperature > 0, f"{prefix}.temperature", self.temperature, "must be > 0 (greedy is always reported too)")
        _check(0 < self.top_p <= 1, f"{prefix}.top_p", self.top_p, "must be in (0, 1]")
        _check(self.batch_size >= 1, f"{prefix}.batch_size", self.batch_size, "must be >= 1")
        _check(self.max_new_tokens >= 1, f"{prefix}.max_new_tokens", self.max_new_tokens, "must be >= 1")


@dataclass
class PretrainConfig:
    seed: int = 0
    out_dir: str = "runs/quick/base"
    model: ModelConfig = field(default_factory=ModelConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "validate"):
                value.validate(f.name)
        if not self.eval.families:
            self.eval.families = [f for f, share in self.mixture.families.items() if share > 0]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- loading

def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against a dataclass field type; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"invalid config value {key}={value!r}: expected a mapping")
        return build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"invalid config value {key}={value!r}: expected {tp}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"invalid config value {key}={value!r}: expected a mapping")
        _, vt = typing.get_args(tp)
        return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"invalid config value {key}={value!r}: expected a list")
        (it,) = typing.get_args(tp)
        return [_coerce(v, it, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads "3e-4" (no dot) as a string; a float field takes it as the number it is.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"invalid config value {key}={value!r}: expected a number") from None
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"invalid config value {key}={value!r}: expected true or false")
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"invalid config value {key}={value!r}: expected a number")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"invalid config value {key}={value!r}: expected {tp.__name__}")
    return value


def build(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys by name."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in (data or {}).items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {full!r} (known: {', '.join(sorted(names))})")
        kwargs[key] = _coerce(value, hints[key], full)
    return cls(**kwargs)


def parse_overrides(overrides: list[str]) -> dict:
    """``["train.max_steps=20", "mixture.exposure.depth=0.1"]`` -> nested dict."""
    out: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad override {item!r}: write key.subkey=value")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"bad override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        builtin = CONFIG_DIR / f"{path.name}.yaml"
        if builtin.is_file():  # a bare name such as "quick" picks an embedded config
            path = builtin
        else:
            raise ConfigError(f"config file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return data


def load_config(cls: type, path: str | Path | None, overrides: list[str] | None = None, section: str | None = None):
    data = read_yaml(path) if path else {}
    if section is not None:
        data = data.get(section, {}) or {}
    data = deep_merge(data, parse_overrides(overrides or []))
    cfg = build(cls, data)
    cfg.validate()
    return cfg
