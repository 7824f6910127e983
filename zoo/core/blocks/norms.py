"""Normalisation layers by config: RMSNorm (optionally scaled by 1 + w) or LayerNorm."""

from __future__ import annotations

from max.experimental.nn import GemmaRMSNorm, LayerNorm, Module, RMSNorm

from zoo.core.config import DecoderConfig


def make_norm(config: DecoderConfig, dim: int | None = None) -> Module:
    """The config's norm over `dim` features (default: the hidden size)."""
    dim = dim or config.hidden_size
    if config.norm == "layer":
        return LayerNorm(dim, eps=config.norm_eps, use_bias=config.norm_bias)
    if config.norm_weight_offset == 1.0:
        return GemmaRMSNorm(dim, eps=config.norm_eps)
    if config.norm_weight_offset != 0.0:
        raise ValueError(f"unsupported norm weight offset {config.norm_weight_offset}")
    return RMSNorm(dim, eps=config.norm_eps)
