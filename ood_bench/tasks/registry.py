"""Task-family registry: one name, one family, clear errors both ways.

Families arrive through the same ``register`` callback that plugins use, so a
family shipped with the core and one from a third-party package are equal.
"""

from __future__ import annotations

from ..errors import OodBenchError
from .base import TaskFamily
from .contract import check_family


class DuplicateRegistration(OodBenchError):
    """Two plugins registered the same name: an error for everyone, naming both."""


class TaskRegistry:
    def __init__(self) -> None:
        self._families: dict[str, TaskFamily] = {}
        self._owners: dict[str, str] = {}

    def register(self, family: TaskFamily, owner: str = "ood_bench") -> None:
        if not family.name:
            raise OodBenchError(f"task family {type(family).__name__} from {owner} has no name")
        if family.name in self._families:
            raise DuplicateRegistration(
                f"task family {family.name!r} registered twice: by {self._owners[family.name]} and by {owner}"
            )
        check_family(family, others=list(self._families.values()))  # a broken family fails here, by name
        self._families[family.name] = family
        self._owners[family.name] = owner

    def get(self, name: str) -> TaskFamily:
        try:
            return self._families[name]
        except KeyError:
            raise OodBenchError(
                f"unknown task family {name!r} (available: {', '.join(sorted(self._families)) or 'none'})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._families)

    def owner(self, name: str) -> str:
        return self._owners[name]

    def plugin_name(self, name: str) -> str:
        """The entry-point name of the plugin that registered ``name``."""
        owner = self._owners[name]
        return owner.removeprefix("plugin ").strip("'")

    def __contains__(self, name: str) -> bool:
        return name in self._families

    def __iter__(self):
        return iter(self._families[n] for n in self.names())
