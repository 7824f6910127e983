"""OLMo 2 config, built from a HF `config.json` (`Olmo2ForCausalLM`), as transformers 5.12 reads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields

FAMILY = "an OLMo 2"


class Olmo2Config(DecoderConfig):
    """OLMo 2: Llama's attention and SwiGLU, but RMSNorms on the attention and MLP outputs
    (none on their inputs) and RMSNorms over the whole query and key projections."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "Olmo2Config":
        bias = HFFields(hf, FAMILY).flag("attention_bias")
        return cls(
            **decoder_fields(hf, FAMILY, eps_default=1e-5, context_default=2048),
            norm_placement="post",
            qk_norm="projection",
            qkv_bias=bias,
            o_bias=bias,
        )
