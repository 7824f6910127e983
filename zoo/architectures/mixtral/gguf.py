"""Mixtral in GGUF files: llama.cpp's `llama` architecture with experts, stacked in one 3-D
tensor per projection."""

from __future__ import annotations

from zoo.core.checkpoints.gguf_layout import (
    ATTENTION, GATED_MLP, LLAMA_CONFIG, LLAMA_NORMS, LLAMA_TOP, GGUFLayout, vocab_and_rotary_dims,
)

LAYOUT = GGUFLayout(
    "llama", "mixtral", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *GATED_MLP, "block_sparse_moe.gate"),
    config={**LLAMA_CONFIG, "expert_count": "num_local_experts", "expert_used_count": "num_experts_per_tok"},
    defaults={"hidden_act": "silu"}, permute_qk=True,
    experts={
        "ffn_gate_exps": "block_sparse_moe.experts.{xid}.w1",
        "ffn_down_exps": "block_sparse_moe.experts.{xid}.w2",
        "ffn_up_exps": "block_sparse_moe.experts.{xid}.w3",
    },
    for_experts=True, config_tensors=("rope_freqs.weight",), metadata=vocab_and_rotary_dims, bpe_prefix_from_config=True,
)
