"""Hook specs: each hook receives a `register` callback, as in simonw's `llm`.

A plugin module implements any of these with `@hookimpl`:

    from zoo.plugins.hookspecs import hookimpl
    from zoo.core.architecture import Architecture

    @hookimpl
    def register_architectures(register):
        register(Architecture(name="MyForCausalLM", ...))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pluggy

PROJECT = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_architectures(register: Callable[[Any], None]) -> None:
    """Register `Architecture` records (config, weight mapper, model builder, verify variants)."""


@hookspec
def register_models(register: Callable[[Any], None]) -> None:
    """Register `ModelAlias` records: short names for hub checkpoints."""


@hookspec
def register_weight_formats(register: Callable[[Any], None]) -> None:
    """Register `WeightFormat` records for non-HF checkpoint files."""


@hookspec
def register_commands(register: Callable[[Any], None]) -> None:
    """Register click commands, added to the `zoo` command line."""


def architecture_hooks(architecture: Any, aliases: Sequence[Any] = ()) -> tuple[Callable[..., None], Callable[..., None]]:
    """The two hooks of a plugin that holds one architecture and its model aliases, for a
    plugin module to bind by their hook names:

        register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
    """

    @hookimpl
    def register_architectures(register: Callable[[Any], None]) -> None:
        register(architecture)

    @hookimpl
    def register_models(register: Callable[[Any], None]) -> None:
        for alias in aliases:
            register(alias)

    return register_architectures, register_models
