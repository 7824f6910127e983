"""OLMo 2: the built-in plugin for `Olmo2ForCausalLM` checkpoints.

The shared decoder with norms after attention and after the MLP (none before) and
RMSNorms over the whole query and key projections (see `config.Olmo2Config`); the
checkpoint names are Llama's with OLMo 2's two norms per layer.
"""

from __future__ import annotations

from functools import partial

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.core.checkpoints.mapping import POST_NORMS, map_llama_style
from zoo.plugins.hookspecs import architecture_hooks

from .config import Olmo2Config
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="Olmo2ForCausalLM",
    config_class=Olmo2Config,
    map_weights=partial(map_llama_style, norms=POST_NORMS),
    gguf=LAYOUT,
    description="OLMo 2: RMSNorms after attention and MLP, q/k RMSNorm over the whole projection, SwiGLU",
    variants=(
        # GQA (the 1B is multi-head; the k norm spans all kv heads either way), untied as on the Hub;
        # GPT-2's end-of-text as EOS (transformers' default, 50279, lies outside this vocabulary).
        Variant("gqa-untied", {
            "architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2", "vocab_size": 50257,
            "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rope_theta": 500000.0, "rms_norm_eps": 1e-06,
            "tie_word_embeddings": False, "max_position_embeddings": 64, "eos_token_id": 50256,
        }),
    ),
)

# allenai/OLMo-2-0425-1B's config.json: the fields Olmo2Config reads (no bos_token_id there).
OLMO_2_0425_1B = {
    "architectures": ["Olmo2ForCausalLM"],
    "model_type": "olmo2",
    "vocab_size": 100352,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-06,
    "hidden_act": "silu",
    "rope_theta": 500000,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "eos_token_id": 100257,
}

ALIASES = [
    ModelAlias("OLMo-2-0425-1B", "allenai/OLMo-2-0425-1B", "Olmo2ForCausalLM",
               "OLMo 2 1B base (April 2025)", 1_484_916_736, hf_config=OLMO_2_0425_1B),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
