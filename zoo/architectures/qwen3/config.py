"""Qwen 3 config, built from a HF `config.json` (`Qwen3ForCausalLM`).

Qwen 2's layout and gated sliding window, plus an RMSNorm over each query and
key head before rotary, a head_dim of its own (128 unless config.json says
otherwise, not hidden / heads) and `attention_bias` on all four projections.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields, sliding_window_fields, with_defaults
from zoo.core.errors import ConfigError

FAMILY = "a Qwen 3"

# transformers 5.12's `Qwen3Config` defaults, for the fields a config.json may leave out.
DEFAULTS: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 4096,
    "intermediate_size": 22016,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "use_sliding_window": False,
    "sliding_window": 4096,
    "max_window_layers": 28,
}


class Qwen3Config(DecoderConfig):
    """Qwen 2 hyperparameters with per-head query/key RMSNorm and an independent head_dim."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "Qwen3Config":
        hf = with_defaults(hf, DEFAULTS)
        if hf["head_dim"] is None:
            raise ConfigError("config.json: head_dim must be an integer for a Qwen 3 model, got null")
        fields = decoder_fields(hf, FAMILY)
        read = HFFields(hf, FAMILY)
        window = sliding_window_fields(read, fields["n_layers"], gated=True, full_layers="max_window_layers")
        bias = read.flag("attention_bias")
        return cls(**fields, **window, qkv_bias=bias, o_bias=bias, qk_norm="head")
