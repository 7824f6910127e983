"""Qwen 3: the built-in plugin for dense `Qwen3ForCausalLM` checkpoints.

Qwen 2's decoder without q/k/v biases, with an RMSNorm over each query and
key head before rotary and a head_dim independent of hidden / heads. The
weights are named as Llama's (plus `q_norm`/`k_norm`), so core's
`map_llama_style` maps them.
"""

from __future__ import annotations

from typing import Any

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import Qwen3Config
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="Qwen3ForCausalLM",
    config_class=Qwen3Config,
    map_weights="zoo.core.checkpoints.mapping:map_llama_style",
    gguf=LAYOUT,
    description="Qwen 3: per-head query/key RMSNorm before rotary, independent head_dim, grouped-query attention",
    variants=(
        # head_dim 12 while hidden / heads is 8; tied as the small hub models are; GPT-2's vocabulary.
        Variant("qk-norm-head-dim-12-tied", {
            "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 50257,
            "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 12, "max_position_embeddings": 64,
            "tie_word_embeddings": True, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
        }),
    ),
)


def _qwen3(hidden: int, inner: int) -> dict[str, Any]:
    """The `config.json` fields of a small dense Qwen 3 (28 layers, 16/8 heads of 128, tied)."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "attention_bias": False,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": inner,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
        "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": 28,
        "tie_word_embeddings": True,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    }


ALIASES = [
    ModelAlias("Qwen3-0.6B", "Qwen/Qwen3-0.6B", "Qwen3ForCausalLM",
               "Qwen 3 0.6B (thinking and non-thinking chat)", 596_049_920, hf_config=_qwen3(1024, 3072)),
    ModelAlias("Qwen3-1.7B", "Qwen/Qwen3-1.7B", "Qwen3ForCausalLM",
               "Qwen 3 1.7B (thinking and non-thinking chat)", 1_720_574_976, hf_config=_qwen3(2048, 6144)),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
