"""The Llama model, assembled from the shared decoder-block parts.

Rotary positions (HF's rotate-half layout, any supported rope scaling baked
into the inverse frequencies), RMSNorm, grouped-query attention with an
optional bias, and a SwiGLU feed-forward; the output projection is tied to
the token embedding or not, as the checkpoint says.

The feed-forward is pluggable: a Llama-like family that differs only there
(Mixtral's mixture of experts) calls `build_model(config, feed_forward=...)`.
"""

from __future__ import annotations

from collections.abc import Callable

from max.experimental.nn import Module, RMSNorm

from zoo.core.layers import Attention, DecoderBlock, DecoderLM, RotaryPositions, SwiGLU

from .config import LlamaConfig

# Makes layer `index`'s feed-forward: any module mapping (B, S, hidden) -> (B, S, hidden).
FeedForwardFactory = Callable[[LlamaConfig, int], Module]


def swiglu(config: LlamaConfig, index: int) -> SwiGLU:
    """Llama's feed-forward: the same SwiGLU in every layer."""
    return SwiGLU(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)


def attention(config: LlamaConfig) -> Attention:
    """Rotary grouped-query attention (multi-head or multi-query by `n_kv_heads`)."""
    return Attention(
        config.hidden_size,
        config.n_heads,
        config.n_kv_heads,
        config.head_dim,
        qkv_bias=config.attention_bias,
        out_bias=config.attention_bias,
        rotary=RotaryPositions(config.inv_freq()),
    )


def build_model(config: LlamaConfig, feed_forward: FeedForwardFactory | None = None) -> DecoderLM:
    """Builds the (lazily initialised) MAX module for `config`."""
    make_feed_forward = feed_forward or swiglu
    e, eps = config.hidden_size, config.rms_norm_eps
    blocks = [
        DecoderBlock(
            attn_norm=RMSNorm(e, eps=eps),
            attention=attention(config),
            mlp_norm=RMSNorm(e, eps=eps),
            mlp=make_feed_forward(config, index),
        )
        for index in range(config.n_layers)
    ]
    return DecoderLM(
        config.vocab_size, e, blocks, RMSNorm(e, eps=eps), tie_embeddings=config.tie_word_embeddings
    )
