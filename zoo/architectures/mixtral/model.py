"""The Mixtral model: Llama's decoder with a sparse mixture of experts as every feed-forward."""

from __future__ import annotations

from zoo.architectures.llama.model import build_model as build_llama
from zoo.core.layers import DecoderLM
from zoo.core.moe import SparseMoE

from .config import MixtralConfig


def experts(config: MixtralConfig, index: int, grouped: bool | None = None) -> SparseMoE:
    """Layer `index`'s feed-forward: top-k routing over SwiGLU experts
    (`grouped` picks SparseMoE's form; None: by device)."""
    return SparseMoE(
        config.hidden_size,
        config.intermediate_size,
        config.n_experts,
        config.experts_per_token,
        name=f"layer{index}",
        grouped=grouped,
    )


def build_model(config: MixtralConfig, grouped: bool | None = None) -> DecoderLM:
    """Builds the (lazily initialised) MAX module for `config`."""
    return build_llama(config, feed_forward=lambda c, index: experts(c, index, grouped))
