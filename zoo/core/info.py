"""`zoo info`: what a model reference resolves to, without compiling anything."""

from __future__ import annotations

from typing import Any

from .checkpoint import find_weights, read_config
from .errors import ZooError
from .loader import architecture_for, read_checkpoint
from .registry import Registry
from .sources import download_file, resolve_source


def model_info(ref: str, registry: Registry) -> dict[str, Any]:
    """Resolved config, architecture, plugin and weights location of `ref`."""
    source = resolve_source(ref, registry)
    alias = source.alias
    if source.kind == "dir":
        hf_config = read_config(source.path)
        weights = str(find_weights(source.path))
    elif source.kind == "file" or (alias is not None and alias.weights_file):
        checkpoint = read_checkpoint(source, registry)
        hf_config, weights = checkpoint.hf_config, checkpoint.source
    elif alias is not None and alias.hf_config is not None:
        hf_config, weights = dict(alias.hf_config), source.describe()
    else:
        hf_config = read_config(download_file(source.repo_id, "config.json").parent)
        weights = source.describe()
    architecture = architecture_for(hf_config, registry)
    try:
        config = architecture.config_class.from_hf(hf_config)
    except (KeyError, TypeError, ValueError) as error:
        raise ZooError(f"config.json of {ref!r} is incomplete for {architecture.name}: {error}") from None
    return {
        "model": ref,
        "architecture": architecture.name,
        "plugin": architecture.plugin,
        "weights": weights,
        "parameters": (alias.parameters if alias and alias.parameters else config.parameter_count()),
        "config": config.model_dump(),
    }
