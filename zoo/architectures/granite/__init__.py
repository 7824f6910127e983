"""Granite: the built-in plugin for `GraniteForCausalLM` checkpoints (IBM Granite 3.x dense models).

The checkpoint's names are Llama's, so the core's Llama-style mapper serves it.
"""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import GraniteConfig
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="GraniteForCausalLM",
    config_class=GraniteConfig,
    map_weights="zoo.core.checkpoints.mapping:map_llama_style",
    gguf=LAYOUT,
    description="Granite: Llama with embedding, attention, residual and logits multipliers",
    variants=(
        # granite-3.3-2b's multipliers and tied embeddings, an attention scale (1/16) that is
        # not 1/sqrt(head_dim) = 1/4, GQA, and biased attention.
        Variant("multipliers-gqa-tied", {
            "architectures": ["GraniteForCausalLM"], "model_type": "granite", "vocab_size": 50257,
            "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "embedding_multiplier": 12.0, "attention_multiplier": 0.0625, "residual_multiplier": 0.22,
            "logits_scaling": 8.0, "tie_word_embeddings": True, "attention_bias": True,
        }),
    ),
)

GRANITE_33_2B = {
    "architectures": ["GraniteForCausalLM"],
    "model_type": "granite",
    "vocab_size": 49159,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 40,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000000.0,
    "rope_scaling": None,
    "attention_bias": False,
    "mlp_bias": False,
    "embedding_multiplier": 12.0,
    "attention_multiplier": 0.015625,
    "residual_multiplier": 0.22,
    "logits_scaling": 8.0,
    "tie_word_embeddings": True,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "pad_token_id": 0,
}

ALIASES = [
    ModelAlias("granite-3.3-2b-instruct", "ibm-granite/granite-3.3-2b-instruct", "GraniteForCausalLM",
               "IBM Granite 3.3 2B instruct (GQA, tied, 128k context)", 2_533_539_840, hf_config=GRANITE_33_2B),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
