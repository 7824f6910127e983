"""Phi-3 in GGUF files (llama.cpp's `phi3`): fused q/k/v and gate/up, LongRoPE factors as tensors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.gguf_layout import LLAMA_NORMS, LLAMA_TOP, GGUFLayout, first_of


def finish(hf: dict[str, Any], file: Any) -> None:
    """Partial rotary and LongRoPE factors (stored as tensors) back into rope parameters."""
    rotary = file.arch_value("rope.dimension_count")
    if rotary is not None:
        hf["partial_rotary_factor"] = rotary * hf["num_attention_heads"] / hf["hidden_size"]
    window = file.arch_value("attention.sliding_window")
    hf["sliding_window"] = window or None
    original = file.arch_value("rope.scaling.original_context_length")
    long, short = file.float_tensor("rope_factors_long.weight"), file.float_tensor("rope_factors_short.weight")
    if original is not None:
        hf["original_max_position_embeddings"] = original
    if long is not None and short is not None:
        hf["rope_scaling"] = {
            "rope_type": "longrope", "long_factor": long.tolist(), "short_factor": short.tolist(),
            "original_max_position_embeddings": original,
        }


def metadata(meta: dict[str, Any], hf: Mapping[str, Any]) -> None:
    """Rotary dimensions, the original context and LongRoPE's attention factor; the window (0: none)."""
    params = {**(hf.get("rope_scaling") or {}), **(hf.get("rope_parameters") or {})}
    fraction = first_of(hf, "partial_rotary_factor") or params.get("partial_rotary_factor", 1.0)
    meta["rope.dimension_count"] = int(fraction * hf["hidden_size"]) // hf["num_attention_heads"]
    original = first_of(hf, "original_max_position_embeddings") or params.get("original_max_position_embeddings")
    if original is not None:
        meta["rope.scaling.original_context_length"] = int(original)
    meta["attention.sliding_window"] = int(hf.get("sliding_window") or 0)
    meta.pop("rope.scaling.type", None)
    if params.get("long_factor") and original:
        scale = hf["max_position_embeddings"] / original
        meta["rope.scaling.attn_factor"] = math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0


LAYOUT = GGUFLayout(
    "phi3", "phi3", LLAMA_TOP, (*LLAMA_NORMS, "self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"),
    defaults={"hidden_act": "silu"}, config_tensors=("rope_factors_long.weight", "rope_factors_short.weight"),
    finish=finish, metadata=metadata,
)
