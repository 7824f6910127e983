"""Gemma 3 (text) config, built from a HF `config.json` (`Gemma3ForCausalLM`, model_type
`gemma3_text`), as transformers 5.12 reads it.

Rotary positions differ by layer kind: global layers use `rope_theta` (default 1e6) and the
checkpoint's rope scaling, sliding-window layers `rope_local_base_freq` (default 1e4), unscaled;
transformers 5 writes both as `rope_parameters` keyed by layer type. transformers 5.12 never
passes `attn_logit_softcapping` to Gemma 3's attention, so it is ignored here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from zoo.core.config import LAYER_KINDS, DecoderConfig, HFFields, decoder_fields
from zoo.core.errors import ConfigError, UnsupportedModelError

FAMILY = "a Gemma 3"


class Gemma3Config(DecoderConfig):
    """Gemma 3: Gemma 2's block (sandwich (1 + w) RMSNorms, embeddings times sqrt(hidden),
    GELU-tanh gated MLP, `query_pre_attn_scalar`) with per-head (1 + w) query/key norms, no
    attention soft-cap, sliding-window layers with their own rope base, scaled global rope."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "Gemma3Config":
        import numpy as np

        read = HFFields(hf, FAMILY)
        if read.flag("use_bidirectional_attention"):
            raise UnsupportedModelError(f"{FAMILY} model with use_bidirectional_attention=true is not supported (causal only)")
        fields = decoder_fields(
            {k: v for k, v in hf.items() if k not in ("rope_parameters", "rope_scaling")}, FAMILY,
            tie_default=True, context_default=131072, act_name="hidden_activation", act_default="gelu_pytorch_tanh",
        )
        layers = fields["n_layers"]
        pattern = read.integer("sliding_window_pattern", 6)
        kinds = read.layer_kinds(layers, ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)])
        window = read.optional_size("sliding_window", "context") if "sliding_window" in hf else 4096
        if window is None and "sliding" in kinds:
            raise ConfigError("config.json: sliding_window is null but layer_types has sliding_attention layers")
        theta, scaling, local_theta = layer_rope(hf)
        fields.update(rope_theta=theta, rope_scaling=scaling)
        bias = read.flag("attention_bias")
        return cls(
            **fields,
            norm_weight_offset=1.0,
            norm_placement="sandwich",
            embedding_multiplier=float(np.float32(math.sqrt(fields["hidden_size"]))),
            qk_norm="head",
            attention_scale=read.number("query_pre_attn_scalar", 256, positive=True) ** -0.5,
            final_softcap=read.optional_number("final_logit_softcapping"),
            sliding_window=window,
            layer_types=kinds,
            local_rope_theta=local_theta,
            qkv_bias=bias,
            o_bias=bias,
        )


def layer_rope(hf: Mapping[str, Any]) -> tuple[float, dict[str, Any], float]:
    """(global theta, global scaling, sliding-window theta) from either layout: transformers 5's
    `rope_parameters` keyed by layer type, or `rope_theta` / `rope_local_base_freq` /
    `rope_scaling` (which applies to global layers only), with Gemma 3's defaults."""
    from zoo.core.blocks.rope import rope_settings

    params = hf.get("rope_parameters")
    if params is None:
        params = {}
    if not isinstance(params, Mapping) or not set(params) <= set(LAYER_KINDS):
        shown = sorted(params) if isinstance(params, Mapping) else params
        raise ConfigError(f"config.json: {FAMILY} model's rope_parameters must be keyed by layer type (full_attention, sliding_attention), got {shown!r}")
    full = dict(params.get("full_attention") or {"rope_type": "default"})
    scaling = hf.get("rope_scaling")
    if scaling:
        if not isinstance(scaling, Mapping):
            raise ConfigError(f"config.json: rope_scaling must be a JSON object, got {scaling!r}")
        full.update(scaling)
    full.setdefault("rope_theta", hf.get("rope_theta") or 1_000_000.0)
    sliding = dict(params.get("sliding_attention") or {"rope_type": "default"})
    sliding.setdefault("rope_theta", hf.get("rope_local_base_freq") or 10_000.0)
    theta, global_scaling = rope_settings({"rope_parameters": full})
    local_theta, local_scaling = rope_settings({"rope_parameters": sliding})
    if local_scaling:
        raise UnsupportedModelError(
            f"{FAMILY} model with rope_parameters.sliding_attention.rope_type={local_scaling['rope_type']!r} is not supported (only default)"
        )
    return theta, global_scaling, local_theta
