"""Llama config, built from a HF `config.json` (`LlamaForCausalLM`).

Also the base of the Llama-like families that reuse this plugin's builder
(Mixtral adds its expert fields on top of it).
"""

from __future__ import annotations

from typing import Any

from zoo.core.config import ModelConfig, eos_ids
from zoo.core.errors import ZooError


class LlamaConfig(ModelConfig):
    """Llama hyperparameters under the engine's common names."""

    intermediate_size: int
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] = {}
    """HF's rope-scaling parameters (`rope_type`, `factor`, ...); empty for plain rope."""

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> "LlamaConfig":
        return cls(**llama_fields(hf))

    def inv_freq(self) -> list[float]:
        """Rotary inverse frequencies, with the checkpoint's rope scaling applied."""
        from zoo.core.rope import rope_inv_freq

        return rope_inv_freq(self.head_dim, self.rope_theta, self.rope_scaling).tolist()

    def attention_parameters(self) -> int:
        """Parameters of one layer's attention and its two norms."""
        e, d = self.hidden_size, self.head_dim
        q, kv = self.n_heads * d, self.n_kv_heads * d
        count = e * (q + 2 * kv) + q * e + 2 * e
        if self.attention_bias:
            count += q + 2 * kv + e
        return count

    def feed_forward_parameters(self) -> int:
        """Parameters of one layer's SwiGLU feed-forward."""
        e, i = self.hidden_size, self.intermediate_size
        return 3 * e * i + (2 * i + e if self.mlp_bias else 0)

    def parameter_count(self) -> int:
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        per_layer = self.attention_parameters() + self.feed_forward_parameters()
        return embeddings + self.n_layers * per_layer + self.hidden_size


def llama_fields(hf: dict[str, Any]) -> dict[str, Any]:
    """The `LlamaConfig` fields of a HF config, checked; subclasses add their own to these.

    Raises ZooError for a missing field or a variant this model would run wrong.
    """
    from zoo.core.rope import rope_inv_freq, rope_settings

    activation = hf.get("hidden_act", "silu")
    if activation != "silu":
        raise ZooError(f"Llama variant with hidden_act={activation!r} is not supported (only silu)")
    try:
        hidden = int(hf["hidden_size"])
        heads = int(hf["num_attention_heads"])
        fields = dict(
            vocab_size=int(hf["vocab_size"]),
            hidden_size=hidden,
            n_layers=int(hf["num_hidden_layers"]),
            n_heads=heads,
            n_kv_heads=int(hf.get("num_key_value_heads") or heads),
            head_dim=int(hf.get("head_dim") or hidden // heads),
            intermediate_size=int(hf["intermediate_size"]),
            context_length=int(hf.get("max_position_embeddings", 2048)),
        )
    except KeyError as missing:
        raise ZooError(f"config.json lacks {missing.args[0]!r}, which a Llama model needs") from None
    except (TypeError, ValueError) as error:
        raise ZooError(f"config.json has a size that is not an integer ({error})") from None
    if fields["n_heads"] % fields["n_kv_heads"]:
        raise ZooError(
            f"num_attention_heads ({fields['n_heads']}) is not a multiple of "
            f"num_key_value_heads ({fields['n_kv_heads']})"
        )
    theta, scaling = rope_settings(hf)
    rope_type, legacy_type = scaling.pop("rope_type", None), scaling.pop("type", None)
    kind = rope_type or legacy_type or "default"
    scaling = {} if kind == "default" else {"rope_type": kind, **scaling}
    rope_inv_freq(fields["head_dim"], theta, scaling)  # refuses unsupported scaling types now
    return dict(
        fields,
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        attention_bias=bool(hf.get("attention_bias", False)),
        mlp_bias=bool(hf.get("mlp_bias", False)),
        rope_theta=theta,
        rope_scaling=scaling,
        eos_token_ids=eos_ids(hf.get("eos_token_id")),
        bos_token_id=hf.get("bos_token_id"),
    )
