"""Llama config, built from a HF `config.json` (`LlamaForCausalLM`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields
from zoo.core.errors import UnsupportedModelError

FAMILY = "a Llama"


class LlamaConfig(DecoderConfig):
    """Llama: rotary positions, RMSNorm, grouped-query attention, SwiGLU; optional biases."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "LlamaConfig":
        fields = decoder_fields(hf, FAMILY)
        if fields["activation"] != "silu":
            raise UnsupportedModelError(f"Llama variant with hidden_act={hf.get('hidden_act')!r} is not supported (only silu)")
        read = HFFields(hf, FAMILY)
        bias = read.flag("attention_bias")
        return cls(**fields, qkv_bias=bias, o_bias=bias, mlp_bias=read.flag("mlp_bias"))
