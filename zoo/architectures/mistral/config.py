"""Mistral config, built from a HF `config.json` (`MistralForCausalLM`).

Llama's layout without any bias (transformers' Mistral has none, whatever
`attention_bias` says), an optional head_dim, and an optional sliding window
over every layer (`layer_types` means nothing to this model). Mistral's
defaults differ from Llama's: a 4096-token window, BOS 1 and EOS 2 when
config.json leaves them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields, sliding_window_fields, with_defaults

FAMILY = "a Mistral"

# transformers 5.12's `MistralConfig` defaults, for the fields a config.json may leave out.
DEFAULTS: dict[str, Any] = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "hidden_act": "silu",
    "max_position_embeddings": 4096 * 32,
    "rms_norm_eps": 1e-6,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
    "sliding_window": 4096,
}


class MistralConfig(DecoderConfig):
    """Llama hyperparameters, no biases, with an optional sliding window on every layer."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "MistralConfig":
        hf = with_defaults(hf, DEFAULTS)
        fields = decoder_fields(hf, FAMILY)
        return cls(**fields, **sliding_window_fields(HFFields(hf, FAMILY), fields["n_layers"]))
