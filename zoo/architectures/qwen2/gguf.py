"""Qwen2 in GGUF files (llama.cpp's `qwen2`)."""

from __future__ import annotations

from zoo.core.checkpoints.gguf_layout import ATTENTION, GATED_MLP, LLAMA_NORMS, LLAMA_TOP, GGUFLayout

LAYOUT = GGUFLayout("qwen2", "qwen2", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *GATED_MLP), defaults={"hidden_act": "silu"})
