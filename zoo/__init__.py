"""zoo: a plugin-based, multi-architecture LLM model zoo on Modular's MAX.

    import zoo
    model = zoo.load("gpt2")
    print(model.generate("Hello", max_new_tokens=20, greedy=True))

`load`, `models`, `registry`, `info` and `Model` are imported on first use, so
`import zoo` stays cheap (no MAX, no torch). Errors are `ZooError` subclasses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.core.errors import (
    ConfigError,
    DownloadError,
    ModelNotFoundError,
    OptionsError,
    PluginError,
    PromptError,
    TokenizerError,
    UnsupportedModelError,
    WeightsError,
    ZooError,
)

if TYPE_CHECKING:
    from zoo.api import Model, info, load, models, registry

__version__ = "0.1.0"

_API = ("Model", "info", "load", "models", "registry")

__all__ = [
    *_API,
    "ConfigError",
    "DownloadError",
    "ModelNotFoundError",
    "OptionsError",
    "PluginError",
    "PromptError",
    "TokenizerError",
    "UnsupportedModelError",
    "WeightsError",
    "ZooError",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        import zoo.api

        return getattr(zoo.api, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
