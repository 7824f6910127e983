"""Qwen 3 MoE config, built from a HF `config.json` (`Qwen3MoeForCausalLM`).

Qwen 3's attention (per-head query/key norms; head_dim defaults to hidden /
heads here) with the shared sparse mixture of experts on every
`decoder_sparse_step`-th layer not in `mlp_only_layers`; the others keep a
dense SwiGLU of `intermediate_size`. Routing picks `num_experts_per_tok` of the
softmaxed router probabilities and renormalises them only if `norm_topk_prob`.
The window, when `use_sliding_window` is on, covers every layer
(`max_window_layers` and `layer_types` mean nothing to this model).
Training-only fields (`router_aux_loss_coef`, `output_router_logits`) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields, sliding_window_fields, with_defaults
from zoo.core.errors import ConfigError

FAMILY = "a Qwen 3 MoE"

# transformers 5.12's `Qwen3MoeConfig` defaults, for the fields a config.json may leave out
# (the expert count, spelled `num_experts` or `num_local_experts`, defaults to 128 below).
DEFAULTS: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "use_sliding_window": False,
    "sliding_window": 4096,
    "decoder_sparse_step": 1,
    "moe_intermediate_size": 768,
    "num_experts_per_tok": 8,
    "norm_topk_prob": False,
}


class Qwen3MoeConfig(DecoderConfig):
    """Qwen 3 attention with top-k routed SwiGLU experts of `moe_intermediate_size`."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "Qwen3MoeConfig":
        hf = with_defaults(hf, DEFAULTS)
        fields = decoder_fields(hf, FAMILY)
        read = HFFields(hf, FAMILY)
        layers = fields["n_layers"]
        bias = read.flag("attention_bias")
        return cls(
            **fields,
            **sliding_window_fields(read, layers, gated=True),
            qkv_bias=bias,
            o_bias=bias,
            qk_norm="head",
            **experts(read, layers),
        )


def experts(read: HFFields, n_layers: int) -> dict[str, Any]:
    """The mixture-of-experts knobs, and which layers have experts."""
    n_experts = read.integer(["num_local_experts", "num_experts"], 128, low=0, limit="experts")
    if n_experts == 0:
        return {}
    top_k = read.size("num_experts_per_tok", "experts")
    if top_k > n_experts:
        raise ConfigError(f"config.json: num_experts_per_tok ({top_k}) exceeds the number of experts ({n_experts})")
    step = read.size("decoder_sparse_step", "layers")
    dense = read.raw("mlp_only_layers", [])
    if not isinstance(dense, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in dense):
        raise ConfigError(f"config.json: mlp_only_layers must be a list of layer indices, got {dense!r}")
    return dict(
        n_experts=n_experts,
        experts_per_token=top_k,
        expert_intermediate_size=read.size("moe_intermediate_size", "inner"),
        normalize_expert_weights=read.flag("norm_topk_prob"),
        moe_layers=tuple(i not in dense and (i + 1) % step == 0 for i in range(n_layers)),
    )
