"""GPT-NeoX in GGUF files (llama.cpp's `gptneox`): fused q/k/v regrouped per projection, partial rotary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.gguf_layout import GGUFLayout, first_of


def finish(hf: dict[str, Any], file: Any) -> None:
    """Partial rotary from the rotary dimension count; parallel residual from its flag."""
    head_dim = hf["hidden_size"] // hf["num_attention_heads"]
    rotary = file.arch_value("rope.dimension_count", head_dim)
    hf["rotary_pct"] = rotary / head_dim
    hf["use_parallel_residual"] = bool(file.arch_value("use_parallel_residual", True))
    hf.setdefault("rope_theta", 10000.0)


def metadata(meta: dict[str, Any], hf: Mapping[str, Any]) -> None:
    """Rotary dimensions and the residual flag; no key/value head count; the rope base only if not 10000."""
    from zoo.core.blocks.rope import rope_settings

    head_dim = hf["hidden_size"] // hf["num_attention_heads"]
    params = hf.get("rope_parameters") or {}
    fraction = first_of(hf, "rotary_pct", "partial_rotary_factor") or params.get("partial_rotary_factor", 1.0)
    meta.pop("rope.freq_base", None)
    meta.pop("attention.head_count_kv", None)
    meta["rope.dimension_count"] = int(fraction * head_dim)
    meta["use_parallel_residual"] = bool(hf.get("use_parallel_residual", True))
    theta, _ = rope_settings(hf)
    if theta != 10000.0:
        meta["rope.freq_base"] = theta


LAYOUT = GGUFLayout(
    "gptneox", "gpt_neox", ("gpt_neox.embed_in", "gpt_neox.final_layer_norm", "embed_out"),
    ("input_layernorm", "attention.query_key_value", "attention.dense", "post_attention_layernorm",
     "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"), layer_prefix="gpt_neox.layers.{bid}.",
    config={"context_length": "max_position_embeddings", "embedding_length": "hidden_size", "block_count": "num_hidden_layers",
            "feed_forward_length": "intermediate_size", "attention.head_count": "num_attention_heads",
            "attention.layer_norm_epsilon": "layer_norm_eps", "rope.freq_base": "rope_theta"},
    defaults={"hidden_act": "gelu"}, regroup_qkv=True, finish=finish, metadata=metadata, file_type=False,
)
