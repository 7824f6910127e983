"""Qwen3 in GGUF files (llama.cpp's `qwen3`)."""

from __future__ import annotations

from zoo.core.checkpoints.gguf_layout import ATTENTION, GATED_MLP, LLAMA_NORMS, LLAMA_TOP, QK_NORMS, GGUFLayout

LAYOUT = GGUFLayout(
    "qwen3", "qwen3", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *QK_NORMS, *GATED_MLP), defaults={"hidden_act": "silu"},
)
