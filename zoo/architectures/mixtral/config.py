"""Mixtral config: the Llama config plus the mixture-of-experts fields.

Training-only fields (`router_jitter_noise`, `router_aux_loss_coef`,
`output_router_logits`) do not change inference and are ignored.
"""

from __future__ import annotations

from typing import Any

from zoo.architectures.llama.config import LlamaConfig, llama_fields
from zoo.core.errors import ZooError


class MixtralConfig(LlamaConfig):
    """Llama hyperparameters, with `intermediate_size` being each expert's inner size."""

    n_experts: int
    experts_per_token: int

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> "MixtralConfig":
        fields = llama_fields(hf)
        try:
            n_experts = int(hf["num_local_experts"])
            top_k = int(hf["num_experts_per_tok"])
        except KeyError as missing:
            raise ZooError(f"config.json lacks {missing.args[0]!r}, which a Mixtral model needs") from None
        if not 1 <= top_k <= n_experts:
            raise ZooError(f"num_experts_per_tok ({top_k}) must be between 1 and num_local_experts ({n_experts})")
        # transformers' Mixtral has no biases, whatever the config says.
        fields.update(attention_bias=False, mlp_bias=False)
        window = hf.get("sliding_window")
        if window is not None:
            # Below its window, sliding-window attention is plain causal attention:
            # capping the context there keeps every result exact.
            fields["context_length"] = min(fields["context_length"], int(window))
        return cls(**fields, n_experts=n_experts, experts_per_token=top_k)

    def feed_forward_parameters(self) -> int:
        """Parameters of one layer's experts and router."""
        e, i = self.hidden_size, self.intermediate_size
        return self.n_experts * (3 * e * i + e)

    def active_parameter_count(self) -> int:
        """Parameters used per token: those of `experts_per_token` experts, not all of them."""
        per_expert = 3 * self.hidden_size * self.intermediate_size
        return self.parameter_count() - self.n_layers * (self.n_experts - self.experts_per_token) * per_expert
