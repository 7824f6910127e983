"""Phi-3 config, built from a HF `config.json` (`Phi3ForCausalLM`: Phi-3, Phi-3.5-mini, Phi-4-mini).

Llama's block with the q/k/v and gate/up projections fused in the checkpoint,
partial rotary (`partial_rotary_factor`), LongRoPE (`longrope`, formerly `su`
or `yarn`) and an optional sliding window over every layer. As transformers
5.12 does, LongRoPE's `original_max_position_embeddings` is the top-level field
(Phi3Config's default 4096), never the copy inside the rope dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.config import DecoderConfig, HFFields, decoder_fields
from zoo.core.errors import ConfigError, UnsupportedModelError

FAMILY = "a Phi-3"
ORIGINAL_CONTEXT = 4096
"""Phi3Config's default `original_max_position_embeddings`."""
LONGROPE_NAMES = ("su", "yarn")
"""Older names Phi3Config renames to `longrope`."""
LONGROPE_KEYS = ("short_factor", "long_factor", "factor", "attention_factor")


class Phi3Config(DecoderConfig):
    """Phi-3: Llama's block (fused projections), partial rotary, LongRoPE, sliding window."""

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "Phi3Config":
        read = HFFields(hf, FAMILY)
        rope = rope_dict(hf)
        fields = decoder_fields(_renamed(hf), FAMILY, eps_default=1e-5, context_default=4096)
        kind = fields["rope_scaling"].get("rope_type", "default")
        if kind not in ("default", "longrope"):
            raise UnsupportedModelError(f"Phi-3 model with rope type {kind!r} is not supported (Phi-3 runs default or longrope)")
        head_dim = fields["head_dim"]
        partial = _partial_rotary_factor(read, rope)
        rotary_dim = int(head_dim * partial)
        if rotary_dim < 1:
            raise ConfigError(f"config.json: partial_rotary_factor {partial} leaves no rotary dimensions of {head_dim}")
        scaling: dict[str, Any] = {}
        if kind == "longrope":
            scaling = _longrope(read, fields["rope_scaling"], (rotary_dim + 1) // 2)
        context = fields["context_length"]
        window = read.optional_size("sliding_window", "context")
        special = {
            "eos_token_ids": fields["eos_token_ids"] if "eos_token_id" in hf else (32000,),
            "bos_token_id": fields["bos_token_id"] if "bos_token_id" in hf else 1,
        }
        return cls(
            **{**fields, **special, "rope_scaling": scaling},
            rotary_dim=None if rotary_dim == head_dim else rotary_dim,
            # A window as long as the context masks nothing (Phi-4-mini: 262144 over 131072).
            sliding_window=window if window is not None and window < context else None,
        )


def rope_dict(hf: Mapping[str, Any]) -> Mapping[str, Any]:
    """The rope dict transformers keeps: `rope_scaling` when given, else `rope_parameters`."""
    rope = hf.get("rope_scaling") or hf.get("rope_parameters") or {}
    if not isinstance(rope, Mapping):
        raise ConfigError("config.json: rope_parameters / rope_scaling must be JSON objects")
    return rope


def _renamed(hf: Mapping[str, Any]) -> dict[str, Any]:
    """`hf` with the old LongRoPE names (`su`, `yarn`) spelled `longrope`, as Phi3Config does."""
    renamed = dict(hf)
    for key in ("rope_scaling", "rope_parameters"):
        rope = hf.get(key)
        if isinstance(rope, Mapping):
            kind = rope.get("rope_type") or rope.get("type")
            if kind in LONGROPE_NAMES:
                renamed[key] = {**{k: v for k, v in rope.items() if k != "type"}, "rope_type": "longrope"}
    return renamed


def _partial_rotary_factor(read: HFFields, rope: Mapping[str, Any]) -> float:
    """The rope dict's `partial_rotary_factor`, else the top-level one, else 1."""
    if rope.get("partial_rotary_factor") is not None:
        return HFFields(rope, FAMILY).number("partial_rotary_factor", low=0.0, high=1.0)
    return read.number("partial_rotary_factor", 1.0, low=0.0, high=1.0)


def _longrope(read: HFFields, scaling: Mapping[str, Any], pairs: int) -> dict[str, Any]:
    """LongRoPE's parameters: short and long factors (one per rotating pair), the optional
    `factor`/`attention_factor`, and the top-level `original_max_position_embeddings`."""
    params = {k: scaling[k] for k in LONGROPE_KEYS if scaling.get(k) is not None}
    for name in ("short_factor", "long_factor"):
        factors = params.get(name)
        if not isinstance(factors, list) or not all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in factors):
            raise ConfigError(f"config.json: longrope {name} must be a list of numbers, got {factors!r}")
        if len(factors) != pairs:
            raise ConfigError(f"config.json: longrope {name} has {len(factors)} values; the rotary dimensions need {pairs}")
    original = read.integer("original_max_position_embeddings", ORIGINAL_CONTEXT, limit="context")
    return {"rope_type": "longrope", **params, "original_max_position_embeddings": original}
