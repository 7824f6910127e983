"""Gemma 2 in GGUF files (llama.cpp's `gemma2`): norms stored as 1 + w, alternating sliding layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.gguf_layout import (
    ATTENTION, GATED_MLP, LLAMA_CONFIG, LLAMA_TOP, SANDWICH_NORMS, GGUFLayout, head_dim, query_scalar_by_size,
)


def finish(hf: dict[str, Any], file: Any) -> None:
    """The query scale llama.cpp uses; sliding and full layers alternate, sliding first."""
    query_scalar_by_size(hf)
    hf["layer_types"] = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(hf["num_hidden_layers"])]


def metadata(meta: dict[str, Any], hf: Mapping[str, Any]) -> None:
    """No rope base; head sizes, soft-caps and the window always written."""
    meta.pop("rope.freq_base", None)
    meta["attention.key_length"] = meta["attention.value_length"] = head_dim(hf)
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if hf.get(key) is not None:
            meta[key] = float(hf[key])
    meta["attention.sliding_window"] = int(hf["sliding_window"])


LAYOUT = GGUFLayout(
    "gemma2", "gemma2", LLAMA_TOP, (*SANDWICH_NORMS, *ATTENTION, *GATED_MLP),
    config={**LLAMA_CONFIG, "attn_logit_softcapping": "attn_logit_softcapping",
            "final_logit_softcapping": "final_logit_softcapping", "attention.sliding_window": "sliding_window"},
    defaults={"hidden_activation": "gelu_pytorch_tanh", "attn_logit_softcapping": None, "final_logit_softcapping": None},
    norm_shift=1.0, finish=finish, metadata=metadata,
    sentencepiece_converter="gemma2", sentencepiece_space_prefix=False,
)
