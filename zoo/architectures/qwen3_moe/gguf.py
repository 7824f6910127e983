"""Qwen3-MoE in GGUF files (llama.cpp's `qwen3moe`): experts stacked in one 3-D tensor per projection."""

from __future__ import annotations

from zoo.core.checkpoints.gguf_layout import ATTENTION, LLAMA_CONFIG, LLAMA_NORMS, LLAMA_TOP, QK_NORMS, GGUFLayout

LAYOUT = GGUFLayout(
    "qwen3moe", "qwen3_moe", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *QK_NORMS, "mlp.gate"),
    config={**LLAMA_CONFIG, "expert_count": "num_experts", "expert_used_count": "num_experts_per_tok",
            "expert_feed_forward_length": "moe_intermediate_size"},
    defaults={"hidden_act": "silu", "norm_topk_prob": True},
    experts={
        "ffn_gate_exps": "mlp.experts.{xid}.gate_proj",
        "ffn_down_exps": "mlp.experts.{xid}.down_proj",
        "ffn_up_exps": "mlp.experts.{xid}.up_proj",
    },
)
