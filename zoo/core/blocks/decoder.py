"""The decoder-only model every architecture is: assembled from a `DecoderConfig`.

token embedding (x embedding multiplier, + learned positions) -> blocks ->
final norm -> output projection (tied or not) -> logits multiplier and
soft-cap. A block is attention then feed-forward, each with its norms where
the config puts them (before, after, or both) and its residual (scaled by the
residual multiplier), or both branches from the same input (parallel
residual). Module names are what the weight mappers produce:
`layers.{i}.attention.qkv_proj`, `layers.{i}.attn_norm`, `layers.{i}.mlp.gate_up_proj`, ...
"""

from __future__ import annotations

from collections.abc import Sequence

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module, ModuleList
from max.experimental.tensor import Tensor

from zoo.core.config import DecoderConfig

from .attention import Attention, AttentionShape
from .feedforward import GatedMLP, PlainMLP
from .linear import Projection, TokenEmbedding
from .moe import SparseMoE
from .norms import make_norm
from .positions import LearnedPositions, RotaryPositions


class DecoderBlock(Module):
    """One layer: attention and feed-forward with their norms and residuals.

    `attn_norm`/`mlp_norm` normalise a branch's input, `attn_post_norm`/
    `mlp_post_norm` its output; any of them may be None.
    """

    def __init__(
        self,
        attention: Attention,
        mlp: Module,
        *,
        attn_norm: Module | None = None,
        attn_post_norm: Module | None = None,
        mlp_norm: Module | None = None,
        mlp_post_norm: Module | None = None,
        parallel: bool = False,
        residual_multiplier: float = 1.0,
    ) -> None:
        self.attn_norm = attn_norm
        self.attention = attention
        self.attn_post_norm = attn_post_norm
        self.mlp_norm = mlp_norm
        self.mlp = mlp
        self.mlp_post_norm = mlp_post_norm
        self.parallel = parallel
        self.residual_multiplier = residual_multiplier

    def forward(
        self, x: Tensor, positions: Tensor, mask: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        h, k, v = self.attention(_apply(self.attn_norm, x), positions, mask, past_k, past_v)
        h = self._scaled(_apply(self.attn_post_norm, h))
        if self.parallel:
            m = self._scaled(_apply(self.mlp_post_norm, self.mlp(_apply(self.mlp_norm, x))))
            return x + h + m, k, v
        x = x + h
        m = self._scaled(_apply(self.mlp_post_norm, self.mlp(_apply(self.mlp_norm, x))))
        return x + m, k, v

    def _scaled(self, x: Tensor) -> Tensor:
        return x if self.residual_multiplier == 1.0 else x * self.residual_multiplier


def _apply(norm: Module | None, x: Tensor) -> Tensor:
    return x if norm is None else norm(x)


class DecoderLM(Module):
    """Token embedding, decoder blocks, final norm and output projection.

    `forward(tokens, positions, rows, mask, [window_mask], *cache)` takes the
    past keys/values as a flat `k0, v0, k1, v1, ...` list (the window mask only
    when some layer is a sliding-window layer: `sliding[i]` says which) and
    returns the float32 logits (B, R, V) of the positions `rows` (B, R) selects
    (flat indices into batch x seqlen; generation asks for each row's last
    position, evaluation for all of them), followed by this call's new keys and
    new values, each stacked over the layers, (layers, B, seqlen, Hkv, D): two
    outputs for the engine to write into its cache, whatever the depth.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        blocks: Sequence[DecoderBlock],
        final_norm: Module,
        *,
        learned_positions: LearnedPositions | None = None,
        tie_embeddings: bool = False,
        sliding: Sequence[bool] = (),
        embedding_multiplier: float = 1.0,
        logits_multiplier: float = 1.0,
        final_softcap: float | None = None,
    ) -> None:
        self.embed_tokens = TokenEmbedding(vocab_size, dim=hidden_size)
        self.learned_positions = learned_positions
        self.layers = ModuleList(blocks)
        self.final_norm = final_norm
        self.tie_embeddings = tie_embeddings
        if not tie_embeddings:
            self.lm_head = Projection(hidden_size, vocab_size, bias=False)
        self.sliding = tuple(bool(s) for s in sliding) or (False,) * len(blocks)
        self.embedding_multiplier = embedding_multiplier
        self.logits_multiplier = logits_multiplier
        self.final_softcap = final_softcap

    @property
    def n_masks(self) -> int:
        return 2 if any(self.sliding) else 1

    def forward(self, tokens: Tensor, positions: Tensor, rows: Tensor, mask: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        masks, cache = (mask, *rest[: self.n_masks - 1]), rest[self.n_masks - 1 :]
        x = self.embed_tokens(tokens)
        if self.embedding_multiplier != 1.0:
            x = x * self.embedding_multiplier
        if self.learned_positions is not None:
            x = x + self.learned_positions(positions)
        new_keys: list[Tensor] = []
        new_values: list[Tensor] = []
        for i, block in enumerate(self.layers):
            layer_mask = masks[1] if self.sliding[i] else masks[0]
            x, k, v = block(x, positions, layer_mask, cache[2 * i], cache[2 * i + 1])
            new_keys.append(k)
            new_values.append(v)
        batch, seqlen, hidden = x.shape
        if seqlen == 1:  # the decode graph: one position per row, nothing to select
            last = self.final_norm(x)
        else:
            picked = F.gather(x.reshape((batch * seqlen, hidden)), rows.reshape((batch * rows.shape[1],)), axis=0)
            last = self.final_norm(picked.reshape((batch, rows.shape[1], hidden)))
        if self.tie_embeddings:
            logits = self.embed_tokens.project(last)
        else:
            logits = self.lm_head(last)
        logits = logits.cast(DType.float32)
        if self.logits_multiplier != 1.0:
            logits = logits * self.logits_multiplier
        if self.final_softcap is not None:
            logits = F.tanh(logits / self.final_softcap) * self.final_softcap
        return logits, F.stack(new_keys, axis=0), F.stack(new_values, axis=0)


def build_decoder(config: DecoderConfig, *, grouped_moe: bool | None = None) -> DecoderLM:
    """Builds the (lazily initialised) MAX module for `config`.

    `grouped_moe` picks `SparseMoE`'s form for mixture-of-experts layers (None: by device).
    """
    blocks = [_block(config, index, grouped_moe) for index in range(config.n_layers)]
    learned = LearnedPositions(config.context_length, config.hidden_size) if config.positions == "learned" else None
    return DecoderLM(
        config.vocab_size,
        config.hidden_size,
        blocks,
        make_norm(config),
        learned_positions=learned,
        tie_embeddings=config.tie_word_embeddings,
        sliding=[config.layer_kind(i) == "sliding" for i in range(config.n_layers)],
        embedding_multiplier=config.embedding_multiplier,
        logits_multiplier=config.logits_multiplier,
        final_softcap=config.final_softcap,
    )


def _block(config: DecoderConfig, index: int, grouped_moe: bool | None) -> DecoderBlock:
    pre = config.norm_placement in ("pre", "sandwich")
    post = config.norm_placement in ("post", "sandwich")
    return DecoderBlock(
        _attention(config, index),
        _feed_forward(config, index, grouped_moe),
        attn_norm=make_norm(config) if pre else None,
        attn_post_norm=make_norm(config) if post else None,
        mlp_norm=make_norm(config) if pre else None,
        mlp_post_norm=make_norm(config) if post else None,
        parallel=config.parallel_residual,
        residual_multiplier=config.residual_multiplier,
    )


def _attention(config: DecoderConfig, index: int) -> Attention:
    shape = AttentionShape(
        config.hidden_size,
        config.n_heads,
        config.n_kv_heads,
        config.head_dim,
        qkv_bias=config.qkv_bias,
        o_bias=config.o_bias,
        scale=config.attention_scale,
        softcap=config.attention_softcap,
        qk_norm=config.qk_norm,
    )
    rotary = RotaryPositions(config.rotary(config.layer_kind(index))) if config.positions == "rotary" else None
    q_norm = k_norm = None
    if config.qk_norm == "head":
        q_norm, k_norm = make_norm(config, config.head_dim), make_norm(config, config.head_dim)
    elif config.qk_norm == "projection":
        q_norm = make_norm(config, config.n_heads * config.head_dim)
        k_norm = make_norm(config, config.n_kv_heads * config.head_dim)
    return Attention(shape, rotary=rotary, q_norm=q_norm, k_norm=k_norm)


def _feed_forward(config: DecoderConfig, index: int, grouped_moe: bool | None) -> Module:
    if config.is_moe_layer(index):
        return SparseMoE(
            config.hidden_size,
            config.expert_intermediate_size or config.intermediate_size,
            config.n_experts,
            config.experts_per_token,
            name=f"layer{index}",
            grouped=grouped_moe,
            normalize=config.normalize_expert_weights,
            activation=config.activation,
        )
    if config.mlp == "gated":
        return GatedMLP(config.hidden_size, config.intermediate_size, activation=config.activation, bias=config.mlp_bias)
    return PlainMLP(config.hidden_size, config.intermediate_size, activation=config.activation, bias=config.mlp_bias)
