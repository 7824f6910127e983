"""GPT-NeoX config, built from a HF `config.json` (`GPTNeoXForCausalLM`: Pythia, GPT-NeoX-20B).

LayerNorm with bias, biased multi-head attention with partial rotary, a plain
GELU MLP, and the attention and MLP branches either in parallel from the same
input (`use_parallel_residual`, the default) or one after the other. As
transformers 5.12 reads it, the rope base and rotary fraction come from the rope
dict, else the old `rotary_emb_base` and `rotary_pct` (default 10000 and 0.25);
top-level `rope_theta` / `partial_rotary_factor` keys are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.blocks.rope import rope_settings
from zoo.core.config import DecoderConfig, HFFields, activation
from zoo.core.errors import ConfigError, UnsupportedModelError

FAMILY = "a GPT-NeoX"


class GPTNeoXConfig(DecoderConfig):
    """GPT-NeoX: LayerNorm, biased fused-QKV attention with partial rotary, GELU MLP, untied head."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "GPTNeoXConfig":
        read = HFFields(hf, FAMILY)
        hidden = read.size("hidden_size", "hidden")
        heads = read.size("num_attention_heads", "heads")
        if hidden % heads:
            raise ConfigError(f"config.json: hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads})")
        head_dim = hidden // heads
        if hf.get("head_dim") not in (None, head_dim):
            raise UnsupportedModelError(f"GPT-NeoX model with head_dim={hf['head_dim']!r} is not supported (attention uses hidden_size / heads = {head_dim})")
        theta, partial, scaling = _rope(read)
        rotary_dim = int(head_dim * partial)
        if rotary_dim < 1:
            raise ConfigError(f"config.json: rotary_pct {partial} leaves no rotary dimensions of {head_dim}")
        bias = read.flag("attention_bias", True)
        special = read.special_tokens()
        return cls(
            vocab_size=read.size("vocab_size", "vocab"),
            hidden_size=hidden,
            n_layers=read.size("num_hidden_layers", "layers"),
            n_heads=heads,
            n_kv_heads=heads,
            head_dim=head_dim,
            intermediate_size=read.size("intermediate_size", "inner"),
            context_length=read.size("max_position_embeddings", "context", default=2048),
            norm="layer",
            norm_eps=read.number("layer_norm_eps", 1e-5, positive=True),
            parallel_residual=read.flag("use_parallel_residual", True),
            qkv_bias=bias,
            o_bias=bias,
            rope_theta=theta,
            rope_scaling=scaling,
            rotary_dim=None if rotary_dim == head_dim else rotary_dim,
            mlp="plain",
            activation=activation(read, "hidden_act", "gelu"),
            mlp_bias=True,
            tie_word_embeddings=read.flag("tie_word_embeddings", False),
            eos_token_ids=special["eos_token_ids"] if "eos_token_id" in hf else (2,),
            bos_token_id=special["bos_token_id"] if "bos_token_id" in hf else 0,
        )


def _rope(read: HFFields) -> tuple[float, float, dict[str, Any]]:
    """(base, rotary fraction, scaling) as GPTNeoXConfig settles them: the rope dict
    (`rope_scaling` when given, else `rope_parameters`) first, then the old names."""
    rope = read.hf.get("rope_scaling") or read.hf.get("rope_parameters") or {}
    if not isinstance(rope, Mapping):
        raise ConfigError("config.json: rope_parameters / rope_scaling must be JSON objects")
    in_rope = HFFields(rope, FAMILY)
    theta = in_rope.number("rope_theta", None, positive=True) if rope.get("rope_theta") is not None else (
        read.number("rotary_emb_base", 10000.0, positive=True))
    if rope.get("partial_rotary_factor") is not None:
        partial = in_rope.number("partial_rotary_factor", low=0.0, high=1.0)
    else:
        partial = read.number("rotary_pct", 0.25, low=0.0, high=1.0)
    _, scaling = rope_settings({"rope_parameters": {**rope, "rope_theta": theta}})
    scaling.pop("partial_rotary_factor", None)
    if scaling.get("rope_type") == "longrope":
        raise UnsupportedModelError("GPT-NeoX model with rope type 'longrope' is not supported")
    return theta, partial, scaling
