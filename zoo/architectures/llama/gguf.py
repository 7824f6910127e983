"""Llama in GGUF files: llama.cpp's `llama` architecture without experts."""

from __future__ import annotations

from zoo.core.checkpoints.gguf_layout import ATTENTION, GATED_MLP, LLAMA_NORMS, LLAMA_TOP, GGUFLayout, vocab_and_rotary_dims

LAYOUT = GGUFLayout(
    "llama", "llama", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *GATED_MLP),
    defaults={"hidden_act": "silu"}, permute_qk=True, config_tensors=("rope_freqs.weight",),
    metadata=vocab_and_rotary_dims, bpe_prefix_from_config=True,
)
