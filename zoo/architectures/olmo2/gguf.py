"""OLMo 2 (and OLMo 3) in GGUF files (llama.cpp's `olmo2`): post-norms only, a per-layer sliding pattern."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.gguf_layout import ATTENTION, GATED_MLP, LLAMA_CONFIG, LLAMA_TOP, QK_NORMS, GGUFLayout


def finish(hf: dict[str, Any], file: Any) -> None:
    """A per-layer sliding-window pattern (OLMo 3) into HF's layer_types."""
    pattern = file.arch_value("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        hf["layer_types"] = ["sliding_attention" if p else "full_attention" for p in pattern]


def metadata(meta: dict[str, Any], hf: Mapping[str, Any]) -> None:
    """The window and which layers slide, if any do."""
    if hf.get("sliding_window") is not None:
        meta["attention.sliding_window"] = int(hf["sliding_window"])
        if hf.get("layer_types"):
            meta["attention.sliding_window_pattern"] = [t == "sliding_attention" for t in hf["layer_types"]]


LAYOUT = GGUFLayout(
    "olmo2", "olmo2", LLAMA_TOP, ("post_attention_layernorm", "post_feedforward_layernorm", *ATTENTION, *QK_NORMS, *GATED_MLP),
    config={**LLAMA_CONFIG, "attention.sliding_window": "sliding_window"}, defaults={"hidden_act": "silu"},
    finish=finish, metadata=metadata,
)
