"""Swappable parts of a decoder block, shared by every architecture.

A decoder-only model here is: token embedding (+ optional learned positions),
a stack of `DecoderBlock`s, a final norm and an output projection. Each block
is pre-norm and composed of parts an architecture picks:

- position encoding: `LearnedPositions` (GPT-2) or `RotaryPositions` (Llama);
- attention: `Attention`, multi-head, grouped-query or multi-query by `n_kv_heads`;
- feed-forward: `GeluMLP`, `SwiGLU`, or any module mapping hidden -> hidden
  (a mixture-of-experts layer, for instance);
- normalisation: MAX's own `LayerNorm` or `RMSNorm`.

Every part takes the same per-token inputs, so any mix of them runs under the
shared KV-cached engine: `positions` is `(batch, seqlen)` (each row has its own
positions, so left-padded batches are exact) and `mask` is an additive
`(batch, 1, seqlen, past + seqlen)` bias built by the engine, over the cached
keys followed by the new ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Embedding, Linear, Module, ModuleList
from max.experimental.tensor import Tensor

from . import kernels


class Projection(Linear):
    """MAX's `Linear` (same parameters and names), whose matmul takes zoo's row-dot
    kernel when traced for the one-token decode graph on the CPU."""

    def forward(self, x: Tensor) -> Tensor:
        return kernels.linear(x, self.weight, self.bias if isinstance(self.bias, Tensor) else None)


class LearnedPositions(Module):
    """Absolute position embeddings added to the token embeddings (GPT-2)."""

    def __init__(self, context_length: int, hidden_size: int) -> None:
        self.embedding = Embedding(context_length, dim=hidden_size)

    def forward(self, positions: Tensor) -> Tensor:
        return self.embedding(positions)


class RotaryPositions(Module):
    """Rotary position embedding in HF's "rotate half" layout.

    The inverse frequencies are computed on the host (so every HF rope-scaling
    variant is just a different `inv_freq`) and the angles in the graph from
    each row's own positions.
    """

    def __init__(self, inv_freq: Sequence[float], attention_scaling: float = 1.0) -> None:
        self.inv_freq = tuple(float(f) for f in inv_freq)
        self.attention_scaling = float(attention_scaling)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotates `x` of shape (batch, seqlen, heads, head_dim)."""
        inv_freq = F.constant(
            np.asarray(self.inv_freq, dtype=np.float32), DType.float32, x.device
        )
        angles = positions.cast(DType.float32)[:, :, None] * inv_freq  # (B, S, D/2)
        angles = F.concat([angles, angles], axis=-1)[:, :, None, :]  # (B, S, 1, D)
        cos = (F.cos(angles) * self.attention_scaling).cast(x.dtype)
        sin = (F.sin(angles) * self.attention_scaling).cast(x.dtype)
        half = len(self.inv_freq)
        x1, x2 = F.split(x, [half, half], axis=-1)
        rotated = F.concat([-x2, x1], axis=-1)
        return x * cos + rotated * sin


class Attention(Module):
    """Causal self-attention with a KV cache; GQA/MQA when n_kv_heads < n_heads.

    The q, k and v projections are one fused matmul (`qkv_proj`, rows in
    q, k, v order); weight mappers concatenate or keep them accordingly.
    """

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        n_kv_heads: int,
        head_dim: int,
        *,
        qkv_bias: bool,
        out_bias: bool,
        rotary: RotaryPositions | None = None,
    ) -> None:
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = head_dim
        self.qkv_proj = Projection(hidden_size, (n_heads + 2 * n_kv_heads) * head_dim, bias=qkv_bias)
        self.o_proj = Projection(n_heads * head_dim, hidden_size, bias=out_bias)
        self.rotary = rotary

    def forward(
        self, x: Tensor, positions: Tensor, mask: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns the block output and this call's keys and values (for the cache).

        Cache layout: keys transposed, (batch, kv_heads, head_dim, past), so
        scores need no transpose of the whole cache; values (batch, kv_heads,
        past, head_dim). The new keys and values come back in the layout they
        are computed in, (batch, seqlen, kv_heads, head_dim), and the engine
        moves the axes as it stores them (returned transposed, they broke
        decoding after multi-token prompts on a GPU; see README, On a GPU).
        """
        batch, seqlen = x.shape[0], x.shape[1]
        heads, kv_heads, head_dim = self.n_heads, self.n_kv_heads, self.head_dim
        q, k, v = F.split(
            self.qkv_proj(x),
            [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim],
            axis=-1,
        )
        q = q.reshape((batch, seqlen, heads, head_dim))
        k = k.reshape((batch, seqlen, kv_heads, head_dim))
        v = v.reshape((batch, seqlen, kv_heads, head_dim))
        if self.rotary is not None:
            q = self.rotary(q, positions)
            k = self.rotary(k, positions)
        if seqlen == 1:
            # The decode graph: moving a length-1 axis is a reshape, not a copy.
            new_k = k.reshape((batch, kv_heads, head_dim, 1))
            new_v = v.reshape((batch, kv_heads, 1, head_dim))
            out = grouped_attention(q.reshape((batch, heads, 1, head_dim)), past_k, past_v, new_k, new_v, mask, kv_heads)
            return self.o_proj(out.reshape((batch, 1, heads * head_dim))), k, v
        new_k = F.permute(k, [0, 2, 3, 1])  # (B, Hkv, D, S)
        new_v = v.transpose(1, 2)  # (B, Hkv, S, D)
        out = grouped_attention(q.transpose(1, 2), past_k, past_v, new_k, new_v, mask, kv_heads)
        out = out.transpose(1, 2).reshape((batch, seqlen, heads * head_dim))
        return self.o_proj(out), k, v


def grouped_attention(
    q: Tensor, past_k: Tensor, past_v: Tensor, new_k: Tensor, new_v: Tensor, mask: Tensor, kv_heads: int
) -> Tensor:
    """Scaled dot-product attention over the cached and the new keys.

    q: (B, H, S, D); keys transposed, past_k (B, Hkv, D, P) and new_k
    (B, Hkv, D, S); values past_v (B, Hkv, P, D) and new_v (B, Hkv, S, D);
    mask: additive (B, 1, S, P + S). Each kv head serves a group of q heads
    (GQA/MQA). The cache is only read, never copied: the two score blocks are
    joined (they are small), softmaxed in float32, and split again. The CPU
    decode graph does all of this in one kernel instead (`kernels.decode_attention`).
    Returns (B, H, S, D).
    """
    batch, heads, seqlen, head_dim = q.shape
    scale = 1.0 / math.sqrt(int(head_dim))
    fused = kernels.decode_attention(q, past_k, past_v, new_k, new_v, mask, scale)
    if fused is not None:
        return fused
    past = past_k.shape[3]
    total = past + seqlen
    group = int(heads) // kv_heads
    # Batched matmul is limited to rank 4: fold each kv head's query group into the rows.
    q = q.reshape((batch, kv_heads, group * seqlen, head_dim))
    scores = F.concat([q @ past_k, q @ new_k], axis=-1).cast(DType.float32) * scale
    mask = F.rebind(mask, [batch, 1, seqlen, total]).reshape((batch, 1, 1, seqlen, total))
    scores = scores.reshape((batch, kv_heads, group, seqlen, total)) + mask
    weights = F.softmax(scores, axis=-1).cast(new_v.dtype)
    weights = weights.reshape((batch, kv_heads, group * seqlen, total))
    to_past = weights[:, :, :, :past]
    to_new = F.rebind(weights[:, :, :, past:], [batch, kv_heads, group * seqlen, seqlen])
    out = to_past @ past_v + to_new @ new_v
    return out.reshape((batch, heads, seqlen, head_dim))


class GeluMLP(Module):
    """Two-layer GELU feed-forward (GPT-2 uses the tanh approximation)."""

    def __init__(self, hidden_size: int, inner_size: int, approximate: str = "tanh") -> None:
        self.up_proj = Projection(hidden_size, inner_size, bias=True)
        self.down_proj = Projection(inner_size, hidden_size, bias=True)
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        if self.approximate == "tanh":  # one fused step in the CPU decode graph
            up = kernels.linear(x, self.up_proj.weight, self.up_proj.bias, activation="gelu_tanh")
        else:
            up = F.gelu(self.up_proj(x), approximate=self.approximate)
        return self.down_proj(up)


class SwiGLU(Module):
    """Gated SiLU feed-forward (Llama); gate and up projections fused."""

    def __init__(self, hidden_size: int, inner_size: int, bias: bool = False) -> None:
        self.inner_size = inner_size
        self.gate_up_proj = Projection(hidden_size, 2 * inner_size, bias=bias)
        self.down_proj = Projection(inner_size, hidden_size, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = F.split(self.gate_up_proj(x), [self.inner_size, self.inner_size], axis=-1)
        return self.down_proj(F.silu(gate) * up)


class DecoderBlock(Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, attn_norm: Module, attention: Attention, mlp_norm: Module, mlp: Module) -> None:
        self.attn_norm = attn_norm
        self.attention = attention
        self.mlp_norm = mlp_norm
        self.mlp = mlp

    def forward(
        self, x: Tensor, positions: Tensor, mask: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        h, k, v = self.attention(self.attn_norm(x), positions, mask, past_k, past_v)
        x = x + h
        x = x + self.mlp(self.mlp_norm(x))
        return x, k, v


class DecoderLM(Module):
    """Token embedding, decoder blocks, final norm and output projection.

    `forward(tokens, positions, mask, *cache)` takes the past keys/values as
    a flat `k0, v0, k1, v1, ...` list and returns the float32 logits of the
    last position followed by this call's new keys/values in the same order
    (the engine writes them into its cache).
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
    ) -> None:
        self.embed_tokens = Embedding(vocab_size, dim=hidden_size)
        self.learned_positions = learned_positions
        self.layers = ModuleList(blocks)
        self.final_norm = final_norm
        self.tie_embeddings = tie_embeddings
        if not tie_embeddings:
            self.lm_head = Projection(hidden_size, vocab_size, bias=False)

    def forward(self, tokens: Tensor, positions: Tensor, mask: Tensor, *cache: Tensor) -> tuple[Tensor, ...]:
        x = self.embed_tokens(tokens)
        if self.learned_positions is not None:
            x = x + self.learned_positions(positions)
        new_cache: list[Tensor] = []
        for i, block in enumerate(self.layers):
            x, k, v = block(x, positions, mask, cache[2 * i], cache[2 * i + 1])
            new_cache += [k, v]
        last = self.final_norm(x[:, -1, :])
        if self.tie_embeddings:
            logits = kernels.linear(last, self.embed_tokens.weight)
        else:
            logits = self.lm_head(last)
        return (logits.cast(DType.float32), *new_cache)
