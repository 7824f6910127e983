"""Qwen 3 MoE: the built-in plugin for `Qwen3MoeForCausalLM` checkpoints.

Qwen 3's attention with core's sparse mixture of experts
(`zoo.core.blocks.moe.SparseMoE`) on the layers the config picks. On disk
(and from transformers 5.12's `save_pretrained`) each expert is
`mlp.experts.{j}.gate_proj/up_proj/down_proj` with the router at `mlp.gate`;
core's `map_llama_style` maps those and transformers 5's fused in-memory
`mlp.experts.gate_up_proj`/`down_proj` alike.
"""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import Qwen3MoeConfig
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="Qwen3MoeForCausalLM",
    config_class=Qwen3MoeConfig,
    map_weights="zoo.core.checkpoints.mapping:map_llama_style",
    gguf=LAYOUT,
    description="Qwen 3 MoE: Qwen 3 attention with top-k routed SwiGLU experts (optionally renormalised)",
    variants=(
        # Layer 0 dense (mlp_only_layers), layer 1 four experts, top-2, not renormalised; head_dim 12;
        # a 6-token window on both layers (max_window_layers means nothing here) that 9-token prompts
        # and 10 new tokens run past. GPT-2's vocabulary, so the CLI test reuses the graph.
        Variant("experts-dense-first-window", {
            "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 50257,
            "hidden_size": 32, "intermediate_size": 40, "moe_intermediate_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12, "num_experts": 4,
            "num_experts_per_tok": 2, "norm_topk_prob": False, "mlp_only_layers": [0], "decoder_sparse_step": 1,
            "max_position_embeddings": 64, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "use_sliding_window": True, "sliding_window": 6, "max_window_layers": 1,
        }, prompt_lengths=(9, 4), new_tokens=10),
    ),
)

# The `config.json` fields of Qwen3-30B-A3B.
QWEN3_30B_A3B = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "attention_bias": False,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "moe_intermediate_size": 768,
    "num_hidden_layers": 48,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "norm_topk_prob": True,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "max_window_layers": 48,
    "rms_norm_eps": 1e-6,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "use_sliding_window": False,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}

ALIASES = [
    ModelAlias("Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B", "Qwen3MoeForCausalLM",
               "Qwen 3 30B-A3B (128 experts, top-8, about 3.3B active)", 30_532_122_624, hf_config=QWEN3_30B_A3B),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
