"""Plugin discovery: built-in architectures and third-party entry points.

Built-ins are the packages under `zoo.architectures`; third-party plugins are
modules named by entry points in the group `zoo`. Both register through the
same hooks. A plugin that fails to import or to register is reported as one
warning line on stderr and skipped; the rest keeps working.

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

import pluggy

from zoo.core.errors import ZooError
from zoo.core.registry import Registry

from . import hookspecs

ENTRY_POINT_GROUP = hookspecs.PROJECT
_HOOKS = ("register_architectures", "register_models", "register_weight_formats")


def warn(message: str) -> None:
    print(f"zoo: warning: {message}", file=sys.stderr)


def plugin_manager() -> pluggy.PluginManager:
    """A plugin manager holding the built-in and the importable third-party plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, module in _builtin_plugins():
        pm.register(module, name=name)
    for name, module in _entry_point_plugins():
        if pm.has_plugin(name):
            warn(f"plugin {name!r} skipped: a plugin of that name is already loaded")
            continue
        pm.register(module, name=name)
    return pm


def _builtin_plugins() -> list[tuple[str, object]]:
    import zoo.architectures as package

    plugins = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        try:
            plugins.append((f"builtin:{info.name}", importlib.import_module(f"{package.__name__}.{info.name}")))
        except Exception as error:  # a broken built-in must not take the CLI down either
            warn(f"built-in plugin {info.name!r} failed to import: {error}")
    return plugins


def _entry_point_plugins() -> list[tuple[str, object]]:
    wanted = os.environ.get("ZOO_PLUGINS")
    allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    plugins = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        try:
            plugins.append((ep.name, ep.load()))
        except Exception as error:
            warn(f"plugin {ep.name!r} failed to import and was skipped: {type(error).__name__}: {error}")
    return plugins


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Calls every plugin's hooks one plugin at a time, so one failure stays local."""
    registry = Registry()
    for hook_name in _HOOKS:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            collected: list[object] = []
            try:
                impl.function(register=collected.append)
            except Exception as error:
                warn(f"plugin {impl.plugin_name!r} failed in {hook_name} and was skipped: {type(error).__name__}: {error}")
                continue
            for record in collected:
                try:
                    registry.add(record, impl.plugin_name)
                except ZooError as error:
                    if "registered twice" in str(error):
                        raise
                    warn(f"plugin {impl.plugin_name!r}: {error}")
    return registry


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    return build_registry(plugin_manager())
