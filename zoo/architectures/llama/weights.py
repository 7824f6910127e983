"""Llama weight mapper: HF `LlamaForCausalLM` names -> the zoo model's state dict.

Per layer, HF's separate q/k/v projections become one fused `qkv_proj` (rows
q, then k, then v) and gate/up become one `gate_up_proj` (gate first); the
rest is renaming. The rotary `inv_freq` buffers are not weights, and
`lm_head` is dropped when tied to the embedding.

The per-layer pieces are public so that Llama-like families can reuse them:
a mapper for a model that differs only in its feed-forward (Mixtral) is
`map_weights(checkpoint, config, map_feed_forward=its_own)`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from .config import LlamaConfig

# A per-layer mapper: it pops the HF tensors it understands from `layer` (names
# relative to `model.layers.{i}.`) and returns them under zoo names relative to
# `layers.{i}.`. What it leaves in `layer` passes through as unexpected.
LayerMapper = Callable[[dict[str, Any], LlamaConfig], dict[str, Any]]

_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)$")
_SKIPPED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")
_RENAMES = {"norm.weight": "final_norm.weight"}


def concat_rows(*tensors: Any) -> Any:
    """Stacks weights (or biases) of projections that are run as one fused matmul."""
    import torch

    return torch.cat(tensors, dim=0)


def map_attention(layer: dict[str, Any], config: LlamaConfig) -> dict[str, Any]:
    """self_attn.{q,k,v}_proj -> attention.qkv_proj, o_proj -> attention.o_proj,
    and the two norms around it: input_layernorm -> attn_norm,
    post_attention_layernorm -> mlp_norm."""
    mapped: dict[str, Any] = {}
    for kind in ("weight", "bias"):
        parts = [f"self_attn.{p}_proj.{kind}" for p in ("q", "k", "v")]
        if all(p in layer for p in parts):
            mapped[f"attention.qkv_proj.{kind}"] = concat_rows(*(layer.pop(p) for p in parts))
        _move(layer, f"self_attn.o_proj.{kind}", mapped, f"attention.o_proj.{kind}")
    _move(layer, "input_layernorm.weight", mapped, "attn_norm.weight")
    _move(layer, "post_attention_layernorm.weight", mapped, "mlp_norm.weight")
    return mapped


def map_swiglu(layer: dict[str, Any], config: LlamaConfig) -> dict[str, Any]:
    """mlp.{gate,up}_proj -> mlp.gate_up_proj (gate rows first), down_proj -> mlp.down_proj."""
    mapped: dict[str, Any] = {}
    for kind in ("weight", "bias"):
        gate, up = f"mlp.gate_proj.{kind}", f"mlp.up_proj.{kind}"
        if gate in layer and up in layer:
            mapped[f"mlp.gate_up_proj.{kind}"] = concat_rows(layer.pop(gate), layer.pop(up))
        _move(layer, f"mlp.down_proj.{kind}", mapped, f"mlp.down_proj.{kind}")
    return mapped


def map_weights(
    checkpoint: Mapping[str, Any], config: LlamaConfig, map_feed_forward: LayerMapper = map_swiglu
) -> dict[str, Any]:
    """Renames and fuses a HF Llama state dict; unknown names pass through unchanged
    so that the loader can report them as unexpected."""
    mapped: dict[str, Any] = {}
    layers: dict[int, dict[str, Any]] = defaultdict(dict)
    for name, tensor in checkpoint.items():
        name = name.removeprefix("model.")
        if _SKIPPED.search(name) or (name == "lm_head.weight" and config.tie_word_embeddings):
            continue
        match = _LAYER_KEY.match(name)
        if match:
            layers[int(match.group(1))][match.group(2)] = tensor
        else:
            mapped[_RENAMES.get(name, name)] = tensor
    for index, layer in sorted(layers.items()):
        for mapper in (map_attention, map_feed_forward):
            mapped.update({f"layers.{index}.{k}": v for k, v in mapper(layer, config).items()})
        mapped.update({f"layers.{index}.{k}": v for k, v in layer.items()})  # left over: unexpected
    return mapped


def _move(source: dict[str, Any], name: str, target: dict[str, Any], new_name: str) -> None:
    if name in source:
        target[new_name] = source.pop(name)
