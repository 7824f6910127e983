"""Gemma 3 (text only): the built-in plugin for `Gemma3ForCausalLM` checkpoints (model_type `gemma3_text`).

The shared decoder with Gemma's knobs plus per-head query/key norms and a second rope
base for sliding-window layers (see `config.Gemma3Config`); the checkpoint names are
Llama's plus Gemma's four norms per layer and `self_attn.{q,k}_norm`.
"""

from __future__ import annotations

from functools import partial

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.core.checkpoints.mapping import SANDWICH_NORMS, map_llama_style
from zoo.plugins.hookspecs import architecture_hooks

from .config import Gemma3Config
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="Gemma3ForCausalLM",
    config_class=Gemma3Config,
    map_weights=partial(map_llama_style, norms=SANDWICH_NORMS),
    gguf=LAYOUT,
    description="Gemma 3 (text): sandwich (1+w) RMSNorms, q/k norms, GeGLU, local/global layers with two rope bases",
    variants=(
        # A window shorter than the prompts, a local rope base far from the global one, linear
        # rope scaling on the global layer, head_dim independent of hidden / heads, GQA.
        Variant("window-two-ropes-gqa", {
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 50257,
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 20, "sliding_window": 4,
            "layer_types": ["sliding_attention", "full_attention"], "rope_theta": 1000.0,
            "rope_local_base_freq": 10.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0},
            "max_position_embeddings": 64,
        }, prompt_lengths=(9, 4), new_tokens=10),
    ),
)

_TEXT = {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text"}
_COMMON = {
    "vocab_size": 262144,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06,
    "hidden_activation": "gelu_pytorch_tanh",
    "query_pre_attn_scalar": 256,
    "sliding_window": 512,
    "rope_scaling": None,
    "attn_logit_softcapping": None,
    "final_logit_softcapping": None,
    "attention_bias": False,
    "bos_token_id": 2,
}

# google/gemma-3-270m's config.json: an explicit layer_types list (a global layer every sixth).
GEMMA_3_270M = {
    **_TEXT, **_COMMON,
    "hidden_size": 640,
    "intermediate_size": 2048,
    "num_hidden_layers": 18,
    "layer_types": ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(18)],
    "rope_theta": 1000000.0,
    "rope_local_base_freq": 10000.0,
    "use_bidirectional_attention": False,
    "eos_token_id": 1,
}

# google/gemma-3-1b-it's config.json: the older sliding_window_pattern instead of layer_types.
GEMMA_3_1B_IT = {
    **_TEXT, **_COMMON,
    "hidden_size": 1152,
    "intermediate_size": 6912,
    "num_hidden_layers": 26,
    "sliding_window_pattern": 6,
    "rope_theta": 1000000,
    "rope_local_base_freq": 10000,
    "eos_token_id": [1, 106],
}

ALIASES = [
    ModelAlias("gemma-3-270m", "google/gemma-3-270m", "Gemma3ForCausalLM",
               "Gemma 3 270M base (gated on the Hub)", 268_098_176, hf_config=GEMMA_3_270M),
    ModelAlias("gemma-3-1b-it", "google/gemma-3-1b-it", "Gemma3ForCausalLM",
               "Gemma 3 1B, instruction-tuned (gated on the Hub)", 999_885_952, hf_config=GEMMA_3_1B_IT),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
