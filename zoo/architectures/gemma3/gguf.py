"""Gemma 3 in GGUF files (llama.cpp's `gemma3`): norms stored as 1 + w, five sliding layers in six."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.gguf_layout import (
    ATTENTION, GATED_MLP, LLAMA_CONFIG, LLAMA_TOP, QK_NORMS, SANDWICH_NORMS, GGUFLayout, head_dim, query_scalar_by_size,
)


def finish(hf: dict[str, Any], file: Any) -> None:
    """Sliding layers: five in six (llama.cpp's fixed pattern); their rope base from freq_base_swa."""
    query_scalar_by_size(hf)
    hf["layer_types"] = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(hf["num_hidden_layers"])]
    local = file.arch_value("rope.freq_base_swa")
    if local is not None:
        hf["rope_local_base_freq"] = local


def metadata(meta: dict[str, Any], hf: Mapping[str, Any]) -> None:
    """Head sizes, soft-cap, window and the sliding layers' rope base."""
    meta["attention.key_length"] = meta["attention.value_length"] = head_dim(hf)
    if hf.get("final_logit_softcapping"):
        meta["final_logit_softcapping"] = float(hf["final_logit_softcapping"])
    if hf.get("sliding_window") is not None:
        meta["attention.sliding_window"] = int(hf["sliding_window"])
    params = hf.get("rope_parameters") or {}
    local = (params.get("sliding_attention") or {}).get("rope_theta", hf.get("rope_local_base_freq"))
    if local is not None:
        meta["rope.freq_base_swa"] = float(local)


LAYOUT = GGUFLayout(
    "gemma3", "gemma3_text", LLAMA_TOP, (*SANDWICH_NORMS, *ATTENTION, *QK_NORMS, *GATED_MLP),
    config={**LLAMA_CONFIG, "final_logit_softcapping": "final_logit_softcapping", "attention.sliding_window": "sliding_window"},
    defaults={"hidden_activation": "gelu_pytorch_tanh"}, norm_shift=1.0, finish=finish, metadata=metadata,
    sentencepiece_converter="gemma3_text", sentencepiece_space_prefix=False,
)
