"""Plugin discovery: built-in architectures and third-party entry points.

Built-ins are the packages under `zoo.architectures`; third-party plugins are
modules named by entry points in the group `zoo`. Both register through the
same hooks. Whatever a plugin does wrong (fails to import, even with
`sys.exit`; a hook with a bad signature or that raises; a malformed record; a
name another plugin already took) is one warning line naming the plugin on
stderr, and the rest of zoo keeps working. `ZOO_STRICT_PLUGINS=1` makes those
warnings errors, for plugin authors.

`ZOO_PLUGINS` (comma-separated entry-point names) limits which third-party
plugins load; set it to an empty string to load none.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from zoo.core.checkpoints.formats import CORE_FORMATS
from zoo.core.errors import ZooError, describe_failure
from zoo.core.registry import PluginCommand, Registry

from . import hookspecs

ENTRY_POINT_GROUP = hookspecs.PROJECT
STRICT = "ZOO_STRICT_PLUGINS"
CORE_PLUGIN = "core"
_RECORD_HOOKS = ("register_architectures", "register_models", "register_weight_formats")


def warn(message: str) -> None:
    """Reports a plugin problem: a warning line, or an error under `ZOO_STRICT_PLUGINS=1`."""
    if os.environ.get(STRICT, "") not in ("", "0"):
        raise ZooError(f"{message} ({STRICT} is set)")
    print(f"zoo: warning: {message}", file=sys.stderr)


def plugin_manager() -> pluggy.PluginManager:
    """A plugin manager holding the built-in and the importable third-party plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, module in [*_builtin_plugins(), *_entry_point_plugins()]:
        if pm.has_plugin(name):
            warn(f"plugin {name!r} skipped: a plugin of that name is already loaded")
            continue
        try:
            pm.register(module, name=name)
        except Exception as error:  # pluggy refuses hooks with unknown arguments or names
            warn(f"plugin {name!r} was skipped: {describe_failure(error)}")
    return pm


def _import(label: str, load: object) -> ModuleType | None:
    try:
        return load()  # type: ignore[operator]
    except (Exception, SystemExit) as error:
        warn(f"{label} failed to import and was skipped: {describe_failure(error)}")
        return None


def _builtin_plugins() -> list[tuple[str, ModuleType]]:
    import zoo.architectures as package

    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = _import(f"built-in plugin {info.name!r}", lambda: importlib.import_module(f"{package.__name__}.{info.name}"))
        if module is not None:
            found.append((f"builtin:{info.name}", module))
    return found


def _entry_point_plugins() -> list[tuple[str, ModuleType]]:
    wanted = os.environ.get("ZOO_PLUGINS")
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        module = _import(f"plugin {ep.name!r}", ep.load)
        if module is not None:
            found.append((ep.name, module))
    return found


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Adds the core's own weight formats, then calls every plugin's hooks one plugin at a
    time, so one failure stays local."""
    registry = Registry()
    for record in CORE_FORMATS:
        registry.add(record, CORE_PLUGIN)
    for hook_name in (*_RECORD_HOOKS, "register_commands"):
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            collected: list[object] = []
            try:
                impl.function(register=collected.append)
            except (Exception, SystemExit) as error:
                warn(f"plugin {impl.plugin_name!r} failed in {hook_name} and was skipped: {describe_failure(error)}")
                continue
            for record in collected:
                if hook_name == "register_commands":
                    _add_command(registry, record, impl.plugin_name)
                    continue
                try:
                    registry.add(record, impl.plugin_name)  # type: ignore[arg-type]
                except ZooError as error:
                    warn(f"plugin {impl.plugin_name!r}: {error}")
    return registry


def _add_command(registry: Registry, command: object, plugin: str) -> None:
    import click

    if not isinstance(command, click.Command) or not command.name:
        warn(f"plugin {plugin!r} registered {command!r}, which is not a named click command; ignored")
        return
    registry.commands.append(PluginCommand(command, plugin))


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    return build_registry(plugin_manager())
