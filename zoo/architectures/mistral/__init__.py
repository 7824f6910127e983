"""Mistral: the built-in plugin for `MistralForCausalLM` checkpoints.

Llama's decoder without biases and with an optional sliding window over
every layer (Mistral 7B v0.1; later versions set it to null). The weights
are named as Llama's, so core's `map_llama_style` maps them.
"""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import MistralConfig

ARCHITECTURE = Architecture(
    name="MistralForCausalLM",
    config_class=MistralConfig,
    map_weights="zoo.core.checkpoints.mapping:map_llama_style",
    description="Mistral: Llama without biases, with an optional sliding window on every layer",
    variants=(
        # A 5-token window that 9-token prompts and 10 new tokens run past; GPT-2's vocabulary.
        Variant("window-gqa", {
            "architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 50257,
            "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 64, "sliding_window": 5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        }, prompt_lengths=(9, 4), new_tokens=10),
    ),
)

# The `config.json` fields of Mistral-7B-Instruct-v0.3.
MISTRAL_7B_V03 = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "hidden_act": "silu",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32768,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-5,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

ALIASES = [
    ModelAlias("Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3", "MistralForCausalLM",
               "Mistral 7B instruct v0.3 (32768-token vocabulary, no sliding window)", 7_248_023_552,
               hf_config=MISTRAL_7B_V03),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
