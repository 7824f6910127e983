"""Granite config, built from a HF `config.json` (`GraniteForCausalLM`: Granite 3.x dense).

Llama's block with four scalars: the embeddings are multiplied by
`embedding_multiplier`, attention scores are scaled by `attention_multiplier`
(in place of 1 / sqrt(head_dim)), each branch's output by `residual_multiplier`
before it joins the residual, and the logits are divided by `logits_scaling`
(here multiplied by its inverse).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields
from zoo.core.errors import UnsupportedModelError

FAMILY = "a Granite"


class GraniteConfig(DecoderConfig):
    """Granite: Llama's block with embedding, attention, residual and logits multipliers."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "GraniteConfig":
        read = HFFields(hf, FAMILY)
        fields = decoder_fields(hf, FAMILY, context_default=2048)
        kind = fields["rope_scaling"].get("rope_type", "default")
        if kind == "longrope":
            raise UnsupportedModelError("Granite model with rope type 'longrope' is not supported")
        partial = fields["rope_scaling"].pop("partial_rotary_factor", None) or hf.get("partial_rotary_factor")
        if kind != "default" and partial not in (None, 1, 1.0):
            # transformers' Granite rotates whole heads: scaled rope with a fraction fails there.
            raise UnsupportedModelError(f"Granite model with partial_rotary_factor={partial!r} and {kind} rope is not supported")
        bias = read.flag("attention_bias")
        return cls(
            **{
                **fields,
                "eos_token_ids": fields["eos_token_ids"] if "eos_token_id" in hf else (2,),
                "bos_token_id": fields["bos_token_id"] if "bos_token_id" in hf else 1,
            },
            qkv_bias=bias,
            o_bias=bias,
            mlp_bias=read.flag("mlp_bias"),
            attention_scale=read.number("attention_multiplier", 1.0, positive=True),
            embedding_multiplier=read.number("embedding_multiplier", 1.0),
            residual_multiplier=read.number("residual_multiplier", 1.0),
            logits_multiplier=1.0 / read.number("logits_scaling", 1.0, positive=True),
        )
