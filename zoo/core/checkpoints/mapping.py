"""Pieces of weight mappers: HF checkpoint names -> the shared decoder's module names.

Most HF decoder families name their tensors as Llama does
(`model.layers.{i}.self_attn.q_proj.weight`, `mlp.gate_proj`, `model.norm`, ...)
and differ only in which norms they have and what those norms mean
(`post_attention_layernorm` is the MLP's input norm in Llama but the attention
output norm in Gemma and OLMo 2). `map_llama_style` maps any of them, given
the family's norm table; other layouts (GPT-2, GPT-NeoX) use the smaller
helpers. Unknown names always pass through unchanged, so the loader reports
them as unexpected.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from zoo.core.config import DecoderConfig

# Per-layer tensors, by name relative to the layer; mappers pop what they understand.
Layer = dict[str, Any]
LayerMapper = Callable[[Layer, DecoderConfig, int], dict[str, Any]]

LLAMA_NORMS = {"input_layernorm": "attn_norm", "post_attention_layernorm": "mlp_norm"}
SANDWICH_NORMS = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "attn_post_norm",
    "pre_feedforward_layernorm": "mlp_norm",
    "post_feedforward_layernorm": "mlp_post_norm",
}
POST_NORMS = {"post_attention_layernorm": "attn_post_norm", "post_feedforward_layernorm": "mlp_post_norm"}

_SKIPPED = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


def concat_rows(*tensors: Any) -> Any:
    """Stacks weights (or biases) of projections that run as one fused matmul; encoded
    weights are stacked row by row without decoding, and parts in different encodings (or
    encoded beside float) stay as they are (`StackedRows`)."""
    from .quantized import QuantizedWeight, StackedRows, stack_rows

    if any(isinstance(t, (QuantizedWeight, StackedRows)) for t in tensors):
        return stack_rows(tensors)
    from zoo.core.weight_arena import release_pages

    from .arrays import concat

    fused = concat(tensors)
    release_pages(*tensors)  # the fused copy replaces them: views of a file give back its pages
    return fused


def move(source: Layer, name: str, target: dict[str, Any], new_name: str) -> None:
    """Moves `source[name]` to `target[new_name]` if present."""
    if name in source:
        target[new_name] = source.pop(name)


def fuse(source: Layer, names: list[str], target: dict[str, Any], new_name: str) -> None:
    """Concatenates the rows of `names` into `target[new_name]` if all are present."""
    if all(n in source for n in names):
        target[new_name] = concat_rows(*(source.pop(n) for n in names))


def split_layers(
    checkpoint: Mapping[str, Any], layer_prefix: str, strip: tuple[str, ...] = ("model.",)
) -> tuple[dict[str, Any], dict[int, Layer]]:
    """(top-level tensors, per-layer tensors) with `strip` prefixes removed and
    `{layer_prefix}{i}.` cut from layer names; rotary buffers are dropped."""
    pattern = re.compile(rf"^{re.escape(layer_prefix)}(\d+)\.(.+)$")
    top: dict[str, Any] = {}
    layers: dict[int, Layer] = defaultdict(dict)
    for name, tensor in checkpoint.items():
        for prefix in strip:
            name = name.removeprefix(prefix)
        if _SKIPPED.search(name):
            continue
        match = pattern.match(name)
        if match:
            layers[int(match.group(1))][match.group(2)] = tensor
        else:
            top[name] = tensor
    return top, dict(layers)


def join_layers(top: dict[str, Any], layers: Mapping[int, Layer], mappers: list[LayerMapper], config: DecoderConfig) -> dict[str, Any]:
    """Runs every layer through `mappers`; what they leave passes through (as unexpected)."""
    mapped = dict(top)
    for index, layer in sorted(layers.items()):
        for mapper in mappers:
            mapped.update({f"layers.{index}.{k}": v for k, v in mapper(layer, config, index).items()})
        mapped.update({f"layers.{index}.{k}": v for k, v in layer.items()})
    return mapped


def map_attention(layer: Layer, config: DecoderConfig, index: int) -> dict[str, Any]:
    """self_attn.{q,k,v}_proj (or an already fused qkv_proj) -> attention.qkv_proj; o_proj;
    q_norm / k_norm."""
    mapped: dict[str, Any] = {}
    for kind in ("weight", "bias"):
        fuse(layer, [f"self_attn.{p}_proj.{kind}" for p in "qkv"], mapped, f"attention.qkv_proj.{kind}")
        move(layer, f"self_attn.qkv_proj.{kind}", mapped, f"attention.qkv_proj.{kind}")
        move(layer, f"self_attn.o_proj.{kind}", mapped, f"attention.o_proj.{kind}")
    for norm in ("q_norm", "k_norm"):
        move(layer, f"self_attn.{norm}.weight", mapped, f"attention.{norm}.weight")
    return mapped


def map_gated_mlp(layer: Layer, config: DecoderConfig, index: int) -> dict[str, Any]:
    """mlp.{gate,up}_proj (or a fused gate_up_proj, gate rows first) -> mlp.gate_up_proj; down_proj."""
    mapped: dict[str, Any] = {}
    for kind in ("weight", "bias"):
        fuse(layer, [f"mlp.gate_proj.{kind}", f"mlp.up_proj.{kind}"], mapped, f"mlp.gate_up_proj.{kind}")
        move(layer, f"mlp.gate_up_proj.{kind}", mapped, f"mlp.gate_up_proj.{kind}")
        move(layer, f"mlp.down_proj.{kind}", mapped, f"mlp.down_proj.{kind}")
    return mapped


def map_experts(layer: Layer, config: DecoderConfig, index: int) -> dict[str, Any]:
    """A mixture-of-experts layer's router and experts, in any of HF's layouts:

    - on disk: a router `{block_sparse_moe,mlp}.gate.weight` and per expert j either
      Mixtral's `block_sparse_moe.experts.{j}.w1/w3/w2` or `mlp.experts.{j}.gate_proj/up_proj/down_proj`;
    - in memory in transformers 5: `mlp.experts.gate_up_proj` (experts, 2 * inner, hidden),
      gate rows first, and `mlp.experts.down_proj` (experts, hidden, inner).

    All become `mlp.router.weight` and per expert `mlp.experts.{j}.gate_up_proj.weight`
    and `mlp.experts.{j}.down_proj.weight`. A layer with experts missing stays unmapped.
    """
    if not config.is_moe_layer(index):
        return {}
    mapped: dict[str, Any] = {}
    for router in ("block_sparse_moe.gate.weight", "mlp.gate.weight"):
        move(layer, router, mapped, "mlp.router.weight")
    experts = range(config.n_experts)
    fused = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
    if all(name in layer for name in fused):
        gate_up, down = (layer.pop(name) for name in fused)
        for j in experts:
            mapped[f"mlp.experts.{j}.gate_up_proj.weight"] = gate_up[j]
            mapped[f"mlp.experts.{j}.down_proj.weight"] = down[j]
    for base, (gate, up, down) in (("block_sparse_moe.experts", ("w1", "w3", "w2")), ("mlp.experts", ("gate_proj", "up_proj", "down_proj"))):
        names = [[f"{base}.{j}.{w}.weight" for w in (gate, up, down)] for j in experts]
        if all(name in layer for expert in names for name in expert):
            for j, (g, u, d) in enumerate(names):
                fuse(layer, [g, u], mapped, f"mlp.experts.{j}.gate_up_proj.weight")
                move(layer, d, mapped, f"mlp.experts.{j}.down_proj.weight")
    return mapped


def norm_mapper(norms: Mapping[str, str]) -> LayerMapper:
    """Renames a layer's norms (weight and bias) by the family's table."""

    def map_norms(layer: Layer, config: DecoderConfig, index: int) -> dict[str, Any]:
        mapped: dict[str, Any] = {}
        for hf_name, zoo_name in norms.items():
            for kind in ("weight", "bias"):
                move(layer, f"{hf_name}.{kind}", mapped, f"{zoo_name}.{kind}")
        return mapped

    return map_norms


def map_llama_style(
    checkpoint: Mapping[str, Any],
    config: DecoderConfig,
    *,
    norms: Mapping[str, str] = LLAMA_NORMS,
    extra: tuple[LayerMapper, ...] = (),
) -> dict[str, Any]:
    """Maps a checkpoint in Llama's naming (most HF decoder families); `norms` is the family's
    norm table, `extra` adds layer mappers for tensors only that family has."""
    top, layers = split_layers(checkpoint, "layers.")
    if config.tie_word_embeddings:
        top.pop("lm_head.weight", None)
    move(top, "norm.weight", top, "final_norm.weight")
    move(top, "norm.bias", top, "final_norm.bias")
    mappers = [map_attention, map_experts, map_gated_mlp, norm_mapper(norms), *extra]
    return join_layers(top, layers, mappers, config)
