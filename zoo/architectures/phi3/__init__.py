"""Phi-3: the built-in plugin for `Phi3ForCausalLM` checkpoints (Phi-3, Phi-3.5-mini, Phi-4-mini).

The checkpoint's names are Llama's, with `qkv_proj` and `gate_up_proj` already
fused in the shared decoder's row order (q, k, v; gate, up), so the core's
Llama-style mapper serves it.
"""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import Phi3Config
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="Phi3ForCausalLM",
    config_class=Phi3Config,
    map_weights="zoo.core.checkpoints.mapping:map_llama_style",
    gguf=LAYOUT,
    description="Phi-3 / Phi-4-mini: fused qkv and gate_up, partial rotary, LongRoPE, sliding window",
    variants=(
        # LongRoPE switching at 12: the 14-token prompt runs on the long factors from its
        # prefill, the 5-token one stays on the short ones (5 + 8 - 1 = 12 positions), in
        # one batch; a window of 6 the prompts and generation run past; GQA; half the
        # 12-dimension heads rotate.
        Variant("longrope-partial-rotary-window", {
            "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "vocab_size": 50257, "hidden_size": 48,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 64, "original_max_position_embeddings": 12, "partial_rotary_factor": 0.5,
            "sliding_window": 6, "rope_parameters": {
                "rope_type": "longrope", "rope_theta": 10000.0,
                "short_factor": [1.0, 1.25, 2.0], "long_factor": [1.5, 4.0, 9.0],
            },
        }, prompt_lengths=(14, 5), new_tokens=8),
    ),
)

# microsoft/Phi-4-mini-instruct's LongRoPE factors (48: a quarter of each 128-dimension head stays put).
PHI4_MINI_LONG_FACTOR = [
    1, 1.118320672, 1.250641126, 1.398617824, 1.564103225, 1.74916897, 1.956131817, 2.187582649,
    2.446418898, 2.735880826, 3.059592084, 3.421605075, 3.826451687, 4.279200023, 4.785517845,
    5.351743533, 5.984965424, 6.693110555, 7.485043894, 8.370679318, 9.36110372, 10.4687158,
    11.70738129, 13.09260651, 14.64173252, 16.37415215, 18.31155283, 20.47818807, 22.90118105,
    25.61086418, 28.64115884, 32.03, 32.1, 32.13, 32.23, 32.6, 32.61, 32.64, 32.66, 32.7, 32.71,
    32.93, 32.97, 33.28, 33.49, 33.5, 44.16, 47.77,
]

PHI3_MINI_4K = {
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "vocab_size": 32064,
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "original_max_position_embeddings": 4096,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "sliding_window": 2047,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 32000,
    "pad_token_id": 32000,
}

PHI4_MINI = {
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "vocab_size": 200064,
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 32,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "original_max_position_embeddings": 4096,
    "partial_rotary_factor": 0.75,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {"type": "longrope", "long_factor": PHI4_MINI_LONG_FACTOR, "short_factor": [1.0] * 48},
    "sliding_window": 262144,
    "tie_word_embeddings": True,
    "bos_token_id": 199999,
    "eos_token_id": 199999,
    "pad_token_id": 199999,
}

ALIASES = [
    ModelAlias("Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct", "Phi3ForCausalLM",
               "Phi-3 mini 4k instruct (3.8B, sliding window 2047)", 3_821_079_552, hf_config=PHI3_MINI_4K),
    ModelAlias("Phi-4-mini-instruct", "microsoft/Phi-4-mini-instruct", "Phi3ForCausalLM",
               "Phi-4 mini instruct (3.8B, 128k LongRoPE, partial rotary, GQA)", 3_836_021_760, hf_config=PHI4_MINI),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
