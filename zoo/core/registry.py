"""The registry: architecture names, model aliases and weight formats, each with its plugin."""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

from .architecture import Architecture, ModelAlias, WeightFormat
from .errors import ZooError


class Registry:
    """Everything the plugins registered, keyed by name."""

    def __init__(self) -> None:
        self.architectures: dict[str, Architecture] = {}
        self.aliases: dict[str, ModelAlias] = {}
        self.weight_formats: dict[str, WeightFormat] = {}

    def add(self, record: Any, plugin: str) -> None:
        """Adds one record; a name registered twice is an error naming both plugins."""
        table = self._table_for(record)
        record = replace(record, plugin=plugin)
        existing = table.get(record.name)
        if existing is not None:
            kind = type(record).__name__
            raise ZooError(
                f"{kind} {record.name!r} is registered twice: by plugin "
                f"{existing.plugin!r} and by plugin {plugin!r}"
            )
        table[record.name] = record

    def _table_for(self, record: Any) -> dict[str, Any]:
        if isinstance(record, Architecture):
            return self.architectures
        if isinstance(record, ModelAlias):
            return self.aliases
        if isinstance(record, WeightFormat):
            return self.weight_formats
        raise ZooError(f"cannot register {record!r}: not an Architecture, ModelAlias or WeightFormat")

    def architecture(self, name: str) -> Architecture:
        try:
            return self.architectures[name]
        except KeyError:
            known = ", ".join(sorted(self.architectures)) or "none"
            raise ZooError(f"no plugin provides architecture {name!r} (known: {known})") from None

    def close_matches(self, name: str) -> list[str]:
        """Alias and architecture names that look like `name`, best first."""
        names = list(self.aliases) + list(self.architectures)
        by_lower = {n.lower(): n for n in names}
        found = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)
        return [by_lower[n] for n in found]
