"""Qwen 2 config, built from a HF `config.json` (`Qwen2ForCausalLM`, also Qwen 2.5).

Llama's layout with biases on the q, k and v projections (never on the output
projection, whatever `attention_bias` says: transformers ignores it) and a
sliding window that counts only while `use_sliding_window` is true, on the
layers from `max_window_layers` on (or as config.json's `layer_types` lists).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields, sliding_window_fields, with_defaults

FAMILY = "a Qwen 2"

# transformers 5.12's `Qwen2Config` defaults, for the fields a config.json may leave out.
DEFAULTS: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 4096,
    "intermediate_size": 22016,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "use_sliding_window": False,
    "sliding_window": 4096,
    "max_window_layers": 28,
}


class Qwen2Config(DecoderConfig):
    """Llama hyperparameters with q/k/v biases and Qwen's gated sliding window."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "Qwen2Config":
        hf = with_defaults(hf, DEFAULTS)
        fields = decoder_fields(hf, FAMILY)
        window = sliding_window_fields(HFFields(hf, FAMILY), fields["n_layers"], gated=True, full_layers="max_window_layers")
        return cls(**fields, **window, qkv_bias=True)
