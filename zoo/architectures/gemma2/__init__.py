"""Gemma 2: the built-in plugin for `Gemma2ForCausalLM` checkpoints.

The shared decoder with Gemma's knobs (see `config.Gemma2Config`); the checkpoint
names are Llama's plus Gemma's four norms per layer.
"""

from __future__ import annotations

from functools import partial

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.core.checkpoints.mapping import SANDWICH_NORMS, map_llama_style
from zoo.plugins.hookspecs import architecture_hooks

from .config import Gemma2Config
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="Gemma2ForCausalLM",
    config_class=Gemma2Config,
    map_weights=partial(map_llama_style, norms=SANDWICH_NORMS),
    gguf=LAYOUT,
    description="Gemma 2: sandwich (1+w) RMSNorms, GeGLU, soft-capped attention and logits, local/global layers",
    variants=(
        # Small caps so that soft-capping changes the logits; a window shorter than the prompts;
        # head_dim and query_pre_attn_scalar independent of hidden / heads; GQA; GPT-2's vocabulary.
        Variant("window-softcap-gqa", {
            "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "vocab_size": 50257,
            "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 12, "query_pre_attn_scalar": 20, "sliding_window": 4,
            "attn_logit_softcapping": 5.0, "final_logit_softcapping": 10.0, "max_position_embeddings": 64,
        }, prompt_lengths=(9, 4), new_tokens=10),
    ),
)

# google/gemma-2-2b-it's config.json: the fields Gemma2Config reads (tie_word_embeddings is
# absent there: tied by default).
GEMMA_2_2B_IT = {
    "architectures": ["Gemma2ForCausalLM"],
    "model_type": "gemma2",
    "vocab_size": 256000,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-06,
    "hidden_activation": "gelu_pytorch_tanh",
    "rope_theta": 10000.0,
    "query_pre_attn_scalar": 256,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
    "sliding_window": 4096,
    "attention_bias": False,
    "bos_token_id": 2,
    "eos_token_id": [1, 107],
}

ALIASES = [
    ModelAlias("gemma-2-2b-it", "google/gemma-2-2b-it", "Gemma2ForCausalLM",
               "Gemma 2 2B, instruction-tuned (gated on the Hub)", 2_614_341_888, hf_config=GEMMA_2_2B_IT),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
