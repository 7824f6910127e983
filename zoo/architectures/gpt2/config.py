"""GPT-2 config, built from a HF `config.json`."""

from __future__ import annotations

from typing import Any

from zoo.core.config import ModelConfig, eos_ids
from zoo.core.errors import ZooError


class GPT2Config(ModelConfig):
    """GPT-2 hyperparameters under the engine's common names."""

    inner_size: int
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_new"

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> "GPT2Config":
        for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
            if hf.get(flag):
                raise ZooError(f"GPT-2 variant with {flag}=true is not supported")
        if hf.get("scale_attn_weights") is False:
            raise ZooError("GPT-2 variant with scale_attn_weights=false is not supported")
        activation = hf.get("activation_function", "gelu_new")
        if activation not in _GELU_APPROXIMATION:
            raise ZooError(f"GPT-2 activation {activation!r} is not supported")
        hidden = hf["n_embd"]
        heads = hf["n_head"]
        return cls(
            vocab_size=hf["vocab_size"],
            hidden_size=hidden,
            n_layers=hf["n_layer"],
            n_heads=heads,
            n_kv_heads=heads,
            head_dim=hidden // heads,
            context_length=hf.get("n_positions", hf.get("n_ctx", 1024)),
            inner_size=hf.get("n_inner") or 4 * hidden,
            layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            activation=activation,
            eos_token_ids=eos_ids(hf.get("eos_token_id", 50256)),
            bos_token_id=hf.get("bos_token_id"),
        )

    @property
    def gelu_approximation(self) -> str:
        return _GELU_APPROXIMATION[self.activation]

    def parameter_count(self) -> int:
        e, i, layers = self.hidden_size, self.inner_size, self.n_layers
        per_layer = 4 * e + (3 * e * e + 3 * e) + (e * e + e) + (e * i + i) + (i * e + e)
        return self.vocab_size * e + self.context_length * e + layers * per_layer + 2 * e


# HF activation name -> MAX gelu approximation.
_GELU_APPROXIMATION = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
