"""GPT-2: the built-in plugin, registered through the same hooks as any third-party one."""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import GPT2Config
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="GPT2LMHeadModel",
    config_class=GPT2Config,
    map_weights="zoo.architectures.gpt2.weights:map_weights",
    gguf=LAYOUT,
    description="OpenAI GPT-2: learned positions, LayerNorm, GELU MLP, tied embeddings",
    variants=(
        Variant("odd-heads-exact-gelu", {
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 96,
            "n_layer": 3, "n_head": 3, "n_inner": 200, "n_positions": 256, "activation_function": "gelu",
            "layer_norm_epsilon": 1e-6,
        }),
    ),
)

def _hub_config(n_embd: int, n_layer: int, n_head: int) -> dict:
    """The fields of a hub GPT-2 `config.json` that matter here."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": n_head,
        "n_positions": 1024,
        "vocab_size": 50257,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
    }


ALIASES = [
    ModelAlias("gpt2", "openai-community/gpt2", "GPT2LMHeadModel", "GPT-2 small",
               124_439_808, hf_config=_hub_config(768, 12, 12)),
    ModelAlias("gpt2-medium", "openai-community/gpt2-medium", "GPT2LMHeadModel", "GPT-2 medium",
               354_823_168, hf_config=_hub_config(1024, 24, 16)),
    ModelAlias("gpt2-large", "openai-community/gpt2-large", "GPT2LMHeadModel", "GPT-2 large",
               774_030_080, hf_config=_hub_config(1280, 36, 20)),
    ModelAlias("gpt2-xl", "openai-community/gpt2-xl", "GPT2LMHeadModel", "GPT-2 XL",
               1_557_611_200, hf_config=_hub_config(1600, 48, 25)),
    ModelAlias("distilgpt2", "distilbert/distilgpt2", "GPT2LMHeadModel", "DistilGPT-2 (6 layers)",
               81_912_576, hf_config=_hub_config(768, 6, 12)),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
