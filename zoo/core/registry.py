"""The registry: architecture names, model aliases and weight formats, each with its plugin.

A name registered twice keeps the first record; the later one is dropped
with a warning, and asking for that name later is an error naming both
plugins (so `zoo list` and every other model keep working).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Union

from .architecture import Architecture, ModelAlias, WeightFormat
from .config import ModelConfig
from .errors import UnsupportedModelError, ZooError

Record = Union[Architecture, ModelAlias, WeightFormat]


@dataclass
class PluginCommand:
    """A CLI command a plugin added (a click command object), with its plugin's name."""

    command: Any
    plugin: str


@dataclass
class Registry:
    """Everything the plugins registered, keyed by name."""

    architectures: dict[str, Architecture] = field(default_factory=dict)
    aliases: dict[str, ModelAlias] = field(default_factory=dict)
    weight_formats: dict[str, WeightFormat] = field(default_factory=dict)
    commands: list[PluginCommand] = field(default_factory=list)
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    """Names registered by more than one plugin -> those plugins, the kept one first."""

    def add(self, record: Record, plugin: str) -> None:
        """Adds one record; raises ZooError (for the plugin manager to report) if it is
        malformed or its name is taken."""
        check_record(record)
        table = self._table_for(record)
        record = replace(record, plugin=plugin)
        existing = table.get(record.name)
        if existing is not None:
            self.conflicts.setdefault(record.name, [existing.plugin]).append(plugin)
            raise ZooError(
                f"{type(record).__name__} {record.name!r} is already registered by plugin "
                f"{existing.plugin!r}; plugin {plugin!r}'s record is ignored"
            )
        table[record.name] = record

    def _table_for(self, record: Record) -> dict[str, Any]:
        if isinstance(record, Architecture):
            return self.architectures
        if isinstance(record, ModelAlias):
            return self.aliases
        return self.weight_formats

    def check_unique(self, name: str) -> None:
        """Raises if `name` was registered by more than one plugin."""
        plugins = self.conflicts.get(name)
        if plugins:
            raise ZooError(f"{name!r} is registered by more than one plugin ({', '.join(plugins)}); uninstall one of them")

    def architecture(self, name: str) -> Architecture:
        self.check_unique(name)
        try:
            return self.architectures[name]
        except KeyError:
            known = ", ".join(sorted(self.architectures)) or "none"
            raise UnsupportedModelError(f"no plugin provides architecture {name!r} (known: {known})") from None

    def alias(self, name: str) -> ModelAlias | None:
        """The alias called `name` (case does not matter), or None."""
        found = self.aliases.get(name) or {a.lower(): v for a, v in self.aliases.items()}.get(name.lower())
        if found is not None:
            self.check_unique(found.name)
        return found

    def close_matches(self, name: str) -> list[str]:
        """Alias and architecture names that look like `name`, best first."""
        names = list(self.aliases) + list(self.architectures)
        by_lower = {n.lower(): n for n in names}
        found = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)
        return [by_lower[n] for n in found]


def _callable_or_path(value: Any) -> bool:
    return callable(value) or (isinstance(value, str) and value.count(":") == 1 and all(value.split(":")))


def _gguf_layout(value: Any) -> bool:
    from .checkpoints.gguf_layout import GGUFLayout

    return value is None or isinstance(value, GGUFLayout)


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "name": lambda v: isinstance(v, str) and bool(v.strip()),
    "config_class": lambda v: isinstance(v, type) and issubclass(v, ModelConfig),
    "map_weights": _callable_or_path,
    "build_model": _callable_or_path,
    "repo_id": lambda v: isinstance(v, str) and "/" in v,
    "architecture": lambda v: isinstance(v, str) and bool(v),
    "matches": _callable_or_path,
    "load": _callable_or_path,
    "read_config": _callable_or_path,
    "gguf": _gguf_layout,
    "with_registry": lambda v: isinstance(v, bool),
}


def check_record(record: Any) -> None:
    """Raises ZooError naming what is wrong with a record a plugin passed to `register`."""
    if not isinstance(record, (Architecture, ModelAlias, WeightFormat)):
        raise ZooError(f"cannot register {record!r}: not an Architecture, ModelAlias or WeightFormat")
    for item in fields(record):
        check = _CHECKS.get(item.name)
        if check is not None and not check(getattr(record, item.name)):
            raise ZooError(f"{type(record).__name__} has an invalid {item.name}: {getattr(record, item.name)!r}")
