"""Looking up zoo architectures and configs from inside a MAX server process."""

from __future__ import annotations

from typing import Any

from zoo.core.architecture import Architecture
from zoo.core.config import ModelConfig


def zoo_architecture(name: str) -> Architecture:
    from zoo.plugins.manager import get_registry

    return get_registry().architecture(name)


def hf_config_dict(huggingface_config: Any) -> dict[str, Any]:
    """A HF config object (or dict) as the `config.json` dict zoo configs read."""
    if isinstance(huggingface_config, dict):
        return dict(huggingface_config)
    return huggingface_config.to_dict()


def zoo_config(architecture: str, huggingface_config: Any) -> ModelConfig:
    from zoo.core.resolve import make_config

    return make_config(zoo_architecture(architecture), hf_config_dict(huggingface_config))
