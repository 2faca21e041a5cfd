"""The plugin manager: loads every ``ood_bench`` entry point, resiliently.

Loading is idempotent (the manager is built once per process), honours an
allowlist ``OOD_BENCH_LOAD_PLUGINS`` and a blocklist ``OOD_BENCH_DISABLE_PLUGINS``
(comma-separated entry-point names), and never lets one broken plugin stop the
others: the failure is recorded with the plugin's name, shown by the CLI as a
warning, and raised only in strict mode (``OOD_BENCH_STRICT_PLUGINS=1`` or
``strict=True``).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import OodBenchError
from .faults import note_owner
from .tasks.base import TaskFamily
from .tasks.registry import DuplicateRegistration, TaskRegistry

ENTRY_POINT_GROUP = "ood_bench"
CORE_PLUGINS = ("ood_bench.tasks.builtin",)
HOOKS = "register_algorithms / register_tasks / register_metrics"


class PluginError(OodBenchError):
    """A plugin failed to import or to register (raised in strict mode)."""


class PluginWarning(RuntimeWarning):
    """Something about plugin loading a user should see: a broken plugin, a name that matches none."""


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {x.strip() for x in raw.split(",") if x.strip()}


def _strict_from_env() -> bool:
    return os.environ.get("OOD_BENCH_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


class Plugins:
    """Everything the loaded plugins contributed, with who contributed what."""

    def __init__(self, strict: bool | None = None) -> None:
        self.strict = _strict_from_env() if strict is None else strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._load()
        self.tasks = TaskRegistry()
        self.algorithms: dict[str, type] = {}
        self.metrics: dict[str, Callable[..., Any]] = {}
        self._owners: dict[tuple[str, str], str] = {}
        self._collect()
        self._warn_registers_nothing()

    # ----------------------------------------------------------------- loading
    def _fail(self, name: str, what: str, exc: BaseException, hint: str = "") -> None:
        msg = f"plugin {name!r} failed to {what}: {type(exc).__name__}: {exc}{hint}"
        self.info[name].error = msg
        if self.strict:
            raise PluginError(msg) from exc
        warnings.warn(msg, PluginWarning, stacklevel=3)

    def _load(self) -> None:
        for mod in CORE_PLUGINS:
            __import__(mod)
            self.pm.register(sys.modules[mod], name=mod)
            self.info[mod] = PluginInfo(name=mod, module=mod, distribution="ood-bench", version=_version("ood-bench"))
        allow = _env_list("OOD_BENCH_LOAD_PLUGINS")
        block = _env_list("OOD_BENCH_DISABLE_PLUGINS") or set()
        seen: set[str] = set()
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            if (allow is not None and ep.name not in allow) or ep.name in block:
                continue
            dist = ep.dist.name if ep.dist is not None else None
            self.info[ep.name] = PluginInfo(
                name=ep.name, module=ep.value, distribution=dist, version=_version(dist) if dist else None
            )
            try:
                obj = ep.load()
                self.pm.register(obj, name=ep.name)
            except (ImportError, AttributeError) as exc:
                self._fail(ep.name, "import", exc, _import_hint(ep, exc))
            except Exception as exc:  # any import-time error of third-party code
                self._fail(ep.name, "import", exc)
            except SystemExit as exc:  # a plugin must not end the program by importing it
                self._fail(ep.name, "import", RuntimeError(f"it called sys.exit({exc.code!r}) at import"))
        for var, names in (("OOD_BENCH_LOAD_PLUGINS", allow or set()), ("OOD_BENCH_DISABLE_PLUGINS", block)):
            for name in sorted(names - seen):
                warnings.warn(
                    f"{var} names {name!r}, which matches no installed plugin "
                    f"(installed: {', '.join(sorted(seen)) or 'none'})",
                    PluginWarning,
                    stacklevel=2,
                )

    def _warn(self, msg: str) -> None:
        """One warning line about a plugin that loaded (raised in strict mode)."""
        if self.strict:
            raise PluginError(msg)
        warnings.warn(msg, PluginWarning, stacklevel=4)

    def _warn_registers_nothing(self) -> None:
        """A plugin whose hook is misspelled or lacks ``@hookimpl`` loads fine and contributes nothing:
        say so, naming each hook pluggy does not know (``check_pending``)."""
        unknown: dict[str, list[str]] = {}
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:  # pluggy stops at the first: name them all, by plugin
            for hook_name, caller in vars(self.pm.hook).items():
                if hook_name.startswith("_") or caller.has_spec():
                    continue
                for impl in caller.get_hookimpls():
                    unknown.setdefault(impl.plugin_name, []).append(hook_name)
        for name, info in self.info.items():
            if info.error or name in CORE_PLUGINS:
                continue
            odd = ", ".join(map(repr, unknown.get(name, [])))
            hooks = [c for c in self.pm.get_hookcallers(self.pm.get_plugin(name)) or [] if c.has_spec()]
            if not info.registered and not hooks:  # (a hook that ran and registered nothing chose to)
                also = f" (it implements {odd}, which is no hook)" if odd else ""
                self._warn(
                    f"plugin {name!r} registers nothing: is its hook decorated with @hookimpl and named {HOOKS}?{also}"
                )
            elif odd:
                self._warn(f"plugin {name!r} implements {odd}, which is no hook: the hooks are {HOOKS}")

    def _each_impl(self, hook_name: str, register_for: Callable[[str], Callable[..., None]]) -> None:
        """Call one hook plugin by plugin, so each registration knows its owner
        and a plugin whose hook raises is reported alone."""
        hook = getattr(self.pm.hook, hook_name)
        # ood-bench's own plugins first, then the others by entry-point name: on a name two plugins register,
        # the first keeps it, so a third-party plugin never displaces a built-in algorithm or family
        impls = sorted(hook.get_hookimpls(), key=lambda impl: self.info[impl.plugin_name].distribution != "ood-bench")
        for impl in impls:
            name = impl.plugin_name
            if self.info[name].error:
                continue
            try:
                impl.function(register=register_for(name))
            except PluginError:
                raise  # strict mode
            except OodBenchError as exc:
                self._fail(name, f"register ({hook_name})", exc)
            except Exception as exc:
                self._fail(name, f"register ({hook_name})", exc)

    def _note(self, plugin: str, kind: str, item: str) -> None:
        self.info[plugin].registered.setdefault(kind, []).append(item)
        note_owner({"tasks": "task family", "algorithms": "algorithm"}.get(kind, kind), item, plugin)

    def _collect(self) -> None:
        def tasks_for(plugin):
            def register(family):
                if isinstance(family, type):
                    raise OodBenchError(
                        f"task family {family.__name__} registered as a class; register an instance: "
                        f"register({family.__name__}())"
                    )
                try:
                    self.tasks.register(family, owner=f"plugin {plugin!r}")
                except DuplicateRegistration as exc:
                    self._warn(f"{exc}; the second is dropped{_rename(plugin)}")
                    return
                self._note(plugin, "tasks", family.name)

            return register

        def algorithms_for(plugin):
            def register(algo_cls):
                fault = _algorithm_fault(algo_cls)
                if fault:
                    raise OodBenchError(fault)
                self._add(self.algorithms, "algorithm", algo_cls.name, algo_cls, plugin)

            return register

        def metrics_for(plugin):
            def register(name, factory):
                self._add(self.metrics, "metric", name, factory, plugin)

            return register

        self._each_impl("register_tasks", tasks_for)
        self._each_impl("register_algorithms", algorithms_for)
        self._each_impl("register_metrics", metrics_for)

    def _add(self, table: dict, kind: str, name: str, item, plugin: str) -> None:
        if name in table:
            self._warn(
                f"{kind} {name!r} registered twice: by plugin {self._owners[(kind, name)]!r} and by plugin "
                f"{plugin!r}; the second is dropped{_rename(plugin)}"
            )
            return
        table[name] = item
        self._owners[(kind, name)] = plugin
        self._note(plugin, f"{kind}s", name)

    # ----------------------------------------------------------------- lookups
    def algorithm(self, name: str) -> type:
        try:
            return self.algorithms[name]
        except KeyError:
            raise OodBenchError(
                f"unknown algorithm {name!r} (available: "
                f"{', '.join(sorted(self.algorithms)) or 'none'}{self.load_failures_note()})"
            ) from None

    def load_failures_note(self) -> str:
        """``; plugin 'x' failed to load, as warned above`` when any did, else empty: for "unknown ..." errors,
        since a plugin that failed to load may be the one that registers the name (the built-ins too, when the
        installed package points at a checkout that moved)."""
        failed = ", ".join(repr(i.name) for i in self.info.values() if i.error)
        return f"; plugin {failed} failed to load, as warned above" if failed else ""

    def algorithm_owner(self, name: str) -> str:
        return self._owners[("algorithm", name)]

    def failures(self) -> list[str]:
        return [i.error for i in self.info.values() if i.error]


def _rename(plugin: str) -> str:
    return f" (rename it in plugin {plugin!r}, or set OOD_BENCH_DISABLE_PLUGINS={plugin} to load only the first)"


def _import_hint(ep: md.EntryPoint, exc: BaseException) -> str:
    """The fix for an entry point that fails to load: its pyproject.toml when what is missing is the entry
    point's own module or object, the dependency when the module imports one that is not installed."""
    module, attr = ep.module, ep.attr
    missing = getattr(exc, "name", None)
    point = (
        f" (check the entry point in its pyproject.toml: [project.entry-points.ood_bench] "
        f'{ep.name} = "{ep.value}", then reinstall it)'
    )
    if isinstance(exc, ModuleNotFoundError) and missing:
        if module == missing or module.startswith(missing + "."):
            return point
        return f" (its module {module!r} imports {missing!r}, which is not installed)"
    if isinstance(exc, AttributeError) and attr and missing in attr.split(".") and module in sys.modules:
        return point
    return ""


# Checks an algorithm class must pass when it registers, each giving a fault in words or None. The registry
# sits below the training code, so it cannot import ``Algorithm`` to check against; the module that defines it
# (``ood_bench.training.algorithms``) adds its check here on import. Every algorithm plugin imports that module
# (through ``ood_bench.api``) before its class exists, so the check is in place before any registration.
ALGORITHM_CHECKS: list[Callable[[Any], str | None]] = []


def _algorithm_fault(algo_cls: Any) -> str | None:
    """The first fault any of ``ALGORITHM_CHECKS`` finds in ``algo_cls``, or None."""
    for check in ALGORITHM_CHECKS:
        if fault := check(algo_cls):
            return fault
    return None


def _version(dist: str | None) -> str | None:
    try:
        return md.version(dist) if dist else None
    except md.PackageNotFoundError:
        return None


_PLUGINS: Plugins | None = None


def get_plugins(strict: bool | None = None, reload: bool = False) -> Plugins:
    """The process-wide plugin set, built on first use (idempotent)."""
    global _PLUGINS
    if _PLUGINS is None or reload:
        _PLUGINS = Plugins(strict=strict)
    return _PLUGINS


def get_tasks() -> TaskRegistry:
    return get_plugins().tasks


_CORE_TASKS: TaskRegistry | None = None


def core_tasks() -> TaskRegistry:
    """The families the core ships, registered without loading any entry point."""
    global _CORE_TASKS
    if _CORE_TASKS is None:
        registry = TaskRegistry()
        for mod in CORE_PLUGINS:
            __import__(mod)
            sys.modules[mod].register_tasks(
                register=lambda family, r=registry, m=mod: (
                    r.register(family, m),
                    note_owner("task family", family.name, m),
                )
            )
        _CORE_TASKS = registry
    return _CORE_TASKS


def find_family(name: str) -> TaskFamily:
    """A family by name. A built-in one is found without importing any plugin (so
    checking a pretraining config on ``string`` and ``graph`` does not import GRPO);
    any other name loads the plugins and asks them."""
    if _PLUGINS is None and name in core_tasks():
        return core_tasks().get(name)
    plugins = get_plugins()
    note = plugins.load_failures_note()
    if name not in plugins.tasks and note:
        raise OodBenchError(f"unknown task family {name!r} (available: {', '.join(plugins.tasks.names())}{note})")
    return plugins.tasks.get(name)


def family_source(name: str) -> dict:
    """Version, plugin and distribution of a family (what a checkpoint records about it)."""
    if _PLUGINS is None and name in core_tasks():
        return {"version": core_tasks().get(name).version, "plugin": CORE_PLUGINS[0], "distribution": "ood-bench"}
    tasks = get_tasks()
    if name not in tasks:
        return {}
    plugin = tasks.plugin_name(name)
    info = get_plugins().info.get(plugin)
    return {"version": tasks.get(name).version, "plugin": plugin, "distribution": info.distribution if info else None}
