"""Granite in GGUF files (llama.cpp's `granite`): Llama's layout with four scale multipliers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.gguf_layout import (
    ATTENTION, GATED_MLP, LLAMA_CONFIG, LLAMA_NORMS, LLAMA_TOP, GGUFLayout, vocab_and_rotary_dims,
)

# GGUF metadata key -> HF config field of Granite's multipliers.
SCALES = {"attention.scale": "attention_multiplier", "embedding_scale": "embedding_multiplier",
          "residual_scale": "residual_multiplier", "logit_scale": "logits_scaling"}


def metadata(meta: dict[str, Any], hf: Mapping[str, Any]) -> None:
    """No head sizes; rotary over hidden / heads; the multipliers that are set."""
    for key in ("attention.key_length", "attention.value_length"):
        meta.pop(key, None)
    vocab_and_rotary_dims(meta, {**hf, "head_dim": None})
    for key, name in SCALES.items():
        if hf.get(name):
            meta[key] = float(hf[name])


LAYOUT = GGUFLayout(
    "granite", "granite", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *GATED_MLP),
    config={**LLAMA_CONFIG, **SCALES}, defaults={"hidden_act": "silu"}, permute_qk=True,
    config_tensors=("rope_freqs.weight",), metadata=metadata, bpe_prefix_from_config=True,
)
