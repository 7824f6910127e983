"""GPT-2 config, built from a HF `config.json` (`GPT2LMHeadModel`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, activation
from zoo.core.errors import UnsupportedModelError

FAMILY = "a GPT-2"


class GPT2Config(DecoderConfig):
    """GPT-2: learned positions, LayerNorm, biased multi-head attention, a GELU MLP, tied embeddings."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "GPT2Config":
        read = HFFields(hf, FAMILY)
        for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
            if read.flag(flag):
                raise UnsupportedModelError(f"GPT-2 variant with {flag}=true is not supported")
        if not read.flag("scale_attn_weights", True):
            raise UnsupportedModelError("GPT-2 variant with scale_attn_weights=false is not supported")
        hidden = read.size("n_embd", "hidden")
        heads = read.size("n_head", "heads")
        if hidden % heads:
            from zoo.core.errors import ConfigError

            raise ConfigError(f"config.json: n_embd ({hidden}) is not a multiple of n_head ({heads})")
        return cls(
            vocab_size=read.size("vocab_size", "vocab"),
            hidden_size=hidden,
            n_layers=read.size("n_layer", "layers"),
            n_heads=heads,
            n_kv_heads=heads,
            head_dim=hidden // heads,
            context_length=read.size(("n_positions", "n_ctx"), "context", default=1024),
            intermediate_size=read.size("n_inner", "inner", default=4 * hidden),
            norm="layer",
            norm_eps=read.number("layer_norm_epsilon", 1e-5, positive=True),
            positions="learned",
            mlp="plain",
            activation=activation(read, "activation_function", "gelu_new"),
            qkv_bias=True,
            o_bias=True,
            mlp_bias=True,
            tie_word_embeddings=True,
            eos_token_ids=read.special_tokens()["eos_token_ids"] or (50256,),
            bos_token_id=read.token_id("bos_token_id"),
        )
