"""GPT-NeoX weight mapper: HF names and the interleaved fused QKV -> the shared decoder's state dict.

`attention.query_key_value` holds, per head, that head's query, key and value
rows ([head][q, k, v][head_dim]); the shared decoder's `qkv_proj` wants all
queries, then all keys, then all values, so its rows (and bias) are regrouped.
Hub checkpoints also carry the causal-mask buffers `attention.bias` and
`attention.masked_bias` and the rotary `inv_freq`, which are not weights.
Names come with or without the `gpt_neox.` prefix; `embed_out` is the head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.arrays import contiguous
from zoo.core.checkpoints.mapping import LLAMA_NORMS, Layer, join_layers, move, norm_mapper, split_layers

from .config import GPTNeoXConfig

_BUFFERS = ("attention.bias", "attention.masked_bias")
_RENAMES = {
    "attention.dense": "attention.o_proj",
    "mlp.dense_h_to_4h": "mlp.up_proj",
    "mlp.dense_4h_to_h": "mlp.down_proj",
}


def map_weights(checkpoint: Mapping[str, Any], config: GPTNeoXConfig) -> dict[str, Any]:
    """Renames a HF GPT-NeoX state dict and regroups its fused QKV; unknown names pass through."""
    top, layers = split_layers(checkpoint, "layers.", strip=("gpt_neox.",))
    move(top, "embed_in.weight", top, "embed_tokens.weight")
    for kind in ("weight", "bias"):
        move(top, f"final_layer_norm.{kind}", top, f"final_norm.{kind}")
    if config.tie_word_embeddings:
        top.pop("embed_out.weight", None)
    else:
        move(top, "embed_out.weight", top, "lm_head.weight")
    return join_layers(top, layers, [map_layer, norm_mapper(LLAMA_NORMS)], config)


def map_layer(layer: Layer, config: GPTNeoXConfig, index: int) -> dict[str, Any]:
    """One layer's attention and MLP projections; drops the mask buffers."""
    for buffer in _BUFFERS:
        layer.pop(buffer, None)
    mapped: dict[str, Any] = {}
    for kind in ("weight", "bias"):
        name = f"attention.query_key_value.{kind}"
        if name in layer:
            mapped[f"attention.qkv_proj.{kind}"] = queries_keys_values(layer.pop(name), config)
        for hf_name, zoo_name in _RENAMES.items():
            move(layer, f"{hf_name}.{kind}", mapped, f"{zoo_name}.{kind}")
    return mapped


def queries_keys_values(tensor: Any, config: GPTNeoXConfig) -> Any:
    """Rows [head][q, k, v][head_dim] -> [q, k, v][head][head_dim] (a weight or a bias);
    a tensor of another size is left as is, for the loader to report."""
    heads, dim = config.n_heads, config.head_dim
    if tensor.shape[0] != 3 * heads * dim:
        return tensor
    rest = tuple(tensor.shape[1:])
    return contiguous(tensor.reshape(heads, 3, dim, *rest).swapaxes(0, 1).reshape(3 * heads * dim, *rest))
