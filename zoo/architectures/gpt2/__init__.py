"""GPT-2: the built-in plugin, registered through the same hooks as any third-party one."""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias
from zoo.plugins.hookspecs import hookimpl

from .config import GPT2Config

ARCHITECTURE = Architecture(
    name="GPT2LMHeadModel",
    config_class=GPT2Config,
    build_model="zoo.architectures.gpt2.model:build_model",
    map_weights="zoo.architectures.gpt2.weights:map_weights",
    description="OpenAI GPT-2: learned positions, LayerNorm, GELU MLP, tied embeddings",
)

ALIASES = [
    ModelAlias("gpt2", "openai-community/gpt2", "GPT2LMHeadModel", "GPT-2 small", 124_439_808),
    ModelAlias("gpt2-medium", "openai-community/gpt2-medium", "GPT2LMHeadModel", "GPT-2 medium", 354_823_168),
    ModelAlias("gpt2-large", "openai-community/gpt2-large", "GPT2LMHeadModel", "GPT-2 large", 774_030_080),
    ModelAlias("gpt2-xl", "openai-community/gpt2-xl", "GPT2LMHeadModel", "GPT-2 XL", 1_557_611_200),
    ModelAlias("distilgpt2", "distilbert/distilgpt2", "GPT2LMHeadModel", "DistilGPT-2", 81_912_576),
]


@hookimpl
def register_architectures(register):
    register(ARCHITECTURE)


@hookimpl
def register_models(register):
    for alias in ALIASES:
        register(alias)
