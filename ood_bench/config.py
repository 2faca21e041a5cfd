"""Loading typed configs from YAML, with dotted command-line overrides.

Domain-free: each config section is a dataclass that lives with the module that
uses it (``model.ModelConfig``, ``data.MixtureConfig``, ``pretrain.TrainConfig``,
``training.TrainerConfig``, ``evaluate.EvalConfig``, ...). This module only turns
mappings into those dataclasses, rejecting unknown keys and wrong types with a
message that names the key and the value, so a typo fails before any compute.
A section's ``validate`` uses ``check`` for its own rules.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"


def check(cond: bool, key: str, value: Any, why: str) -> None:
    """Raise the one-line ``ConfigError`` that names ``key=value`` and why it is wrong, unless ``cond``.

    Returns None. Use it in a config's ``validate`` so a bad knob ends the run before any work,
    as one line ``invalid config value algo.beta=-1: must be >= 0`` (exit 2).

    Example::

        def validate(self, prefix="algo"):
            super().validate(prefix)
            check(self.beta >= 0, f"{prefix}.beta", self.beta, "must be >= 0")
    """
    if not cond:
        raise ConfigError(f"invalid config value {key}={value!r}: {why}")


_check = check  # the name plugins used before 1.0


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


class Whole(dict):
    """A mapping given whole on the command line (``mixture.families={a: 0.5, b: 0.5}``): it replaces the
    mapping it overrides rather than merging into it, so a family can be dropped from a mixture."""


def parse_overrides(overrides: list[str]) -> dict:
    """``["train.max_steps=20", "mixture.exposure.depth=0.1"]`` -> nested dict."""
    out: dict = {}
    seen: set[str] = set()
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad override {item!r}: write key.subkey=value")
        if key in seen:
            raise ConfigError(f"override {key!r} is given twice: give it once")
        seen.add(key)
        try:
            value = yaml.load(raw, Loader=_StrictLoader) if raw else ""  # noqa: S506 (a SafeLoader)
        except DuplicateKey as exc:
            raise ConfigError(f"bad override {item!r}: {str(exc).split(' (line')[0]}") from None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"bad override {item!r}: {part} is not a section")
        node[parts[-1]] = Whole(value) if isinstance(value, dict) else value
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and not isinstance(v, Whole) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        elif isinstance(v, dict) and not isinstance(v, Whole) and k in out and out[k] is not None:
            raise ConfigError(
                f"config key {k!r} is {out[k]!r}, not a section, so {k}.{next(iter(v), '')} cannot be set"
            )
        else:
            out[k] = v
    return out


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one YAML mapping."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    keys = [loader.construct_object(k, deep=True) for k, _ in node.value]
    dupes = sorted({str(k) for k in keys if keys.count(k) > 1})
    if dupes:
        raise DuplicateKey(f"key {dupes[0]!r} is given twice (line {node.start_mark.line + 1})")
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: str | Path, builtin_dir: Path = CONFIG_DIR) -> dict:
    path = Path(path)
    if not path.is_file():
        builtin = builtin_dir / f"{path.name}.yaml"
        if builtin.is_file():  # a bare name such as "quick" picks an embedded config
            path = builtin
        else:
            raise ConfigError(f"config file {str(path)!r} not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not text (UTF-8)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        raise ConfigError(f"config file {str(path)!r} is empty: give at least one setting, or no --config")
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
