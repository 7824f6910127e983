"""Mixtral config: Llama's fields plus the mixture of experts (and an optional sliding window).

Training-only fields (`router_jitter_noise`, `router_aux_loss_coef`,
`output_router_logits`) do not change inference and are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields
from zoo.core.errors import ConfigError

FAMILY = "a Mixtral"


class MixtralConfig(DecoderConfig):
    """Llama hyperparameters with every feed-forward a top-k routed mixture of SwiGLU experts
    (`intermediate_size` is each expert's inner size)."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "MixtralConfig":
        read = HFFields(hf, FAMILY)
        n_experts = read.size("num_local_experts", "experts")
        top_k = read.size("num_experts_per_tok", "experts")
        if top_k > n_experts:
            raise ConfigError(f"config.json: num_experts_per_tok ({top_k}) exceeds num_local_experts ({n_experts})")
        return cls(
            **decoder_fields(hf, FAMILY, eps_default=1e-5, context_default=4096 * 32),
            sliding_window=read.optional_size("sliding_window", "context"),
            n_experts=n_experts,
            experts_per_token=top_k,
        )
