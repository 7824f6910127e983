"""The GPT-2 model, assembled from the shared decoder-block parts.

Learned absolute positions, LayerNorm, multi-head attention with biases on
every projection, a tanh-GELU MLP, and the output projection tied to the
token embedding.
"""

from __future__ import annotations

from max.experimental.nn import LayerNorm

from zoo.core.layers import Attention, DecoderBlock, DecoderLM, GeluMLP, LearnedPositions

from .config import GPT2Config


def build_model(config: GPT2Config) -> DecoderLM:
    """Builds the (lazily initialised) MAX module for `config`."""
    e = config.hidden_size

    def block() -> DecoderBlock:
        return DecoderBlock(
            attn_norm=LayerNorm(e, eps=config.layer_norm_eps),
            attention=Attention(
                e, config.n_heads, config.n_kv_heads, config.head_dim, qkv_bias=True, out_bias=True
            ),
            mlp_norm=LayerNorm(e, eps=config.layer_norm_eps),
            mlp=GeluMLP(e, config.inner_size, approximate=config.gelu_approximation),
        )

    return DecoderLM(
        config.vocab_size,
        e,
        [block() for _ in range(config.n_layers)],
        LayerNorm(e, eps=config.layer_norm_eps),
        learned_positions=LearnedPositions(config.context_length, e),
        tie_embeddings=True,
    )
