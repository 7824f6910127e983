"""Mixtral: the built-in plugin for `MixtralForCausalLM` checkpoints.

Llama's attention, norms and embeddings, with a sparse mixture of SwiGLU
experts (`zoo.core.blocks.moe.SparseMoE`) in place of the feed-forward.
"""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import MixtralConfig
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="MixtralForCausalLM",
    config_class=MixtralConfig,
    map_weights="zoo.core.checkpoints.mapping:map_llama_style",
    gguf=LAYOUT,
    description="Mixtral: Llama attention with a top-k routed mixture of SwiGLU experts",
    variants=(
        Variant("4-experts-top2-gqa", {
            "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": 50257,
            "hidden_size": 64, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 8,
            "num_key_value_heads": 4, "num_local_experts": 4, "num_experts_per_tok": 2,
            "max_position_embeddings": 128, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        }),
    ),
)

# The essential fields of Mixtral-8x7B's `config.json` (base and instruct share them).
MIXTRAL_8X7B = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 1e6,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

ALIASES = [
    ModelAlias("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1", "MixtralForCausalLM",
               "Mixtral 8x7B base (8 experts, top-2)", 46_702_792_704, hf_config=MIXTRAL_8X7B),
    ModelAlias("mixtral-8x7b-instruct", "mistralai/Mixtral-8x7B-Instruct-v0.1", "MixtralForCausalLM",
               "Mixtral 8x7B instruct v0.1 (8 experts, top-2)", 46_702_792_704, hf_config=MIXTRAL_8X7B),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
