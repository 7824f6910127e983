"""Mixtral weight mapper: the Llama mapper, with the router and experts as the feed-forward.

Two HF layouts of a layer's mixture of experts are accepted:

- on disk (what `save_pretrained` writes, also in transformers 5):
  `block_sparse_moe.gate.weight` and `block_sparse_moe.experts.{j}.w1/w2/w3.weight`,
  per expert a `[inner, hidden]` gate (w1) and up (w3) and a `[hidden, inner]` down (w2);
- in memory in transformers 5 (a `state_dict()` of `MixtralForCausalLM`):
  `mlp.gate.weight`, `mlp.experts.gate_up_proj` `[experts, 2 * inner, hidden]`
  (gate rows first) and `mlp.experts.down_proj` `[experts, hidden, inner]`.

Both become `mlp.router.weight` and, per expert, the fused SwiGLU's
`mlp.experts.{j}.gate_up_proj.weight` (gate rows first) and
`mlp.experts.{j}.down_proj.weight` (see `zoo.core.moe.SparseMoE`). A layer
with some experts missing is left unmapped, for the loader to report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.architectures.llama.weights import concat_rows
from zoo.architectures.llama.weights import map_weights as map_llama_weights

from .config import MixtralConfig

_DISK = "block_sparse_moe"


def map_experts(layer: dict[str, Any], config: MixtralConfig) -> dict[str, Any]:
    """Pops one layer's router and experts from `layer`, in either layout."""
    mapped: dict[str, Any] = {}
    for router in (f"{_DISK}.gate.weight", "mlp.gate.weight"):
        if router in layer:
            mapped["mlp.router.weight"] = layer.pop(router)
    experts = range(config.n_experts)
    fused = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
    if all(name in layer for name in fused):
        gate_up, down = (layer.pop(name) for name in fused)
        for j in experts:
            mapped[f"mlp.experts.{j}.gate_up_proj.weight"] = gate_up[j]
            mapped[f"mlp.experts.{j}.down_proj.weight"] = down[j]
    names = [{w: f"{_DISK}.experts.{j}.{w}.weight" for w in ("w1", "w2", "w3")} for j in experts]
    if all(name in layer for expert in names for name in expert.values()):
        for j, expert in enumerate(names):
            gate, down, up = (layer.pop(expert[w]) for w in ("w1", "w2", "w3"))
            mapped[f"mlp.experts.{j}.gate_up_proj.weight"] = concat_rows(gate, up)
            mapped[f"mlp.experts.{j}.down_proj.weight"] = down
    return mapped


def map_weights(checkpoint: Mapping[str, Any], config: MixtralConfig) -> dict[str, Any]:
    """Renames and fuses a HF Mixtral state dict; unknown names pass through unchanged
    so that the loader can report them as unexpected."""
    return map_llama_weights(checkpoint, config, map_feed_forward=map_experts)
