"""Gemma 2 config, built from a HF `config.json` (`Gemma2ForCausalLM`), as transformers 5.12 reads it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields
from zoo.core.errors import ConfigError, UnsupportedModelError

FAMILY = "a Gemma 2"


class Gemma2Config(DecoderConfig):
    """Gemma 2: (1 + w) RMSNorms before and after attention and the MLP, embeddings times
    sqrt(hidden), a GELU-tanh gated MLP, scores scaled by `query_pre_attn_scalar`^-1/2 and
    soft-capped, soft-capped logits, sliding-window and global layers alternating."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "Gemma2Config":
        import numpy as np

        read = HFFields(hf, FAMILY)
        if read.flag("use_bidirectional_attention"):
            raise UnsupportedModelError(f"{FAMILY} model with use_bidirectional_attention=true is not supported (causal only)")
        fields = decoder_fields(
            hf, FAMILY, tie_default=True, context_default=8192,
            act_name="hidden_activation", act_default="gelu_pytorch_tanh",
        )
        layers = fields["n_layers"]
        # transformers' default: even layers (0, 2, ...) slide, odd ones attend globally.
        kinds = read.layer_kinds(layers, ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(layers)])
        window = read.optional_size("sliding_window", "context") if "sliding_window" in hf else 4096
        if window is None and "sliding" in kinds:
            raise ConfigError("config.json: sliding_window is null but layer_types has sliding_attention layers")
        bias = read.flag("attention_bias")
        return cls(
            **fields,
            norm_weight_offset=1.0,
            norm_placement="sandwich",
            # transformers keeps sqrt(hidden) as a float32 tensor cast to the model dtype.
            embedding_multiplier=float(np.float32(math.sqrt(fields["hidden_size"]))),
            attention_scale=read.number("query_pre_attn_scalar", 256, positive=True) ** -0.5,
            attention_softcap=read.optional_number("attn_logit_softcapping") if "attn_logit_softcapping" in hf else 50.0,
            final_softcap=read.optional_number("final_logit_softcapping") if "final_logit_softcapping" in hf else 30.0,
            sliding_window=window,
            layer_types=kinds,
            qkv_bias=bias,
            o_bias=bias,
        )
