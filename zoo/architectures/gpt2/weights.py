"""GPT-2 weight mapper: HF checkpoint names and layouts -> the zoo model's state dict.

HF GPT-2 stores its projections as Conv1D, `[in, out]`, where a Linear wants
`[out, in]`: c_attn, c_proj and c_fc weights are transposed. `lm_head` is tied
to `wte`, and the causal-mask buffers (`attn.bias`, `attn.masked_bias`) are
not weights at all. Checkpoints come with or without the `transformer.` prefix.
A quantized weight (from a GGUF file) is already stored (out, in) and is not transposed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.arrays import contiguous
from zoo.core.checkpoints.quantized import QuantizedWeight

from .config import GPT2Config

_SKIPPED = re.compile(r"(^|\.)attn\.(bias|masked_bias)$|^lm_head\.weight$")

_RENAMES = {
    "wte.weight": "embed_tokens.weight",
    "wpe.weight": "learned_positions.embedding.weight",
    "ln_f.weight": "final_norm.weight",
    "ln_f.bias": "final_norm.bias",
}

_LAYER_RENAMES = {
    "ln_1": "attn_norm",
    "attn.c_attn": "attention.qkv_proj",
    "attn.c_proj": "attention.o_proj",
    "ln_2": "mlp_norm",
    "mlp.c_fc": "mlp.up_proj",
    "mlp.c_proj": "mlp.down_proj",
}

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

_LAYER_KEY = re.compile(r"^h\.(\d+)\.(.+)\.(weight|bias)$")


def map_weights(checkpoint: Mapping[str, Any], config: GPT2Config) -> dict[str, Any]:
    """Renames and transposes a HF GPT-2 state dict; unknown names pass through unchanged
    so that the loader can report them as unexpected."""
    mapped: dict[str, Any] = {}
    for name, tensor in checkpoint.items():
        name = name.removeprefix("transformer.")
        if _SKIPPED.search(name):
            continue
        if name.endswith(_CONV1D) and not isinstance(tensor, QuantizedWeight):
            tensor = contiguous(tensor.T) if tensor.ndim == 2 else tensor
        mapped[_rename(name)] = tensor
    return mapped


def _rename(name: str) -> str:
    if name in _RENAMES:
        return _RENAMES[name]
    match = _LAYER_KEY.match(name)
    if match and match.group(2) in _LAYER_RENAMES:
        index, part, kind = match.groups()
        return f"layers.{index}.{_LAYER_RENAMES[part]}.{kind}"
    return name
