"""Causal self-attention over a KV cache: multi-head, grouped-query or multi-query.

Every input is per token: `positions` is (batch, seqlen) (each row has its own
positions, so left-padded batches are exact) and `mask` is an additive
(batch, 1, seqlen, past + seqlen) bias over the cached keys followed by the new
ones, built by the engine (a sliding-window layer simply gets a narrower mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor

from . import kernels
from .linear import Projection
from .positions import RotaryPositions


@dataclass(frozen=True)
class AttentionShape:
    """Sizes and options of one attention layer."""

    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    qkv_bias: bool = False
    o_bias: bool = False
    scale: float | None = None  # None: 1 / sqrt(head_dim)
    softcap: float | None = None
    qk_norm: Literal["none", "head", "projection"] = "none"

    @property
    def score_scale(self) -> float:
        return self.scale if self.scale is not None else self.head_dim**-0.5


class Attention(Module):
    """Causal self-attention with a KV cache; GQA/MQA when n_kv_heads < n_heads.

    The q, k and v projections are one fused matmul (`qkv_proj`, rows in q, k,
    v order); weight mappers concatenate or reorder accordingly. Optional
    query/key norms (`q_norm`, `k_norm`) run before rotary, per head or over
    the whole projection, as the shape says.
    """

    def __init__(
        self,
        shape: AttentionShape,
        *,
        rotary: RotaryPositions | None = None,
        q_norm: Module | None = None,
        k_norm: Module | None = None,
    ) -> None:
        if shape.n_heads % shape.n_kv_heads:
            raise ValueError(f"n_heads ({shape.n_heads}) must be a multiple of n_kv_heads ({shape.n_kv_heads})")
        self.shape = shape
        heads, kv_heads, dim = shape.n_heads, shape.n_kv_heads, shape.head_dim
        self.qkv_proj = Projection(shape.hidden_size, (heads + 2 * kv_heads) * dim, bias=shape.qkv_bias)
        self.o_proj = Projection(heads * dim, shape.hidden_size, bias=shape.o_bias)
        self.rotary = rotary
        self.q_norm = q_norm
        self.k_norm = k_norm

    def forward(
        self, x: Tensor, positions: Tensor, mask: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns the block output and this call's keys and values (for the cache).

        Cache layout: keys transposed, (batch, kv_heads, head_dim, past), so
        scores need no transpose of the whole cache; values (batch, kv_heads,
        past, head_dim). The new keys and values come back in the layout they
        are computed in, (batch, seqlen, kv_heads, head_dim), and the engine
        moves the axes as it stores them (returned transposed, they broke
        decoding after multi-token prompts on a GPU).
        """
        shape = self.shape
        batch, seqlen = x.shape[0], x.shape[1]
        heads, kv_heads, head_dim = shape.n_heads, shape.n_kv_heads, shape.head_dim
        q, k, v = F.split(
            self.qkv_proj(x), [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], axis=-1
        )
        if shape.qk_norm == "projection":
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.reshape((batch, seqlen, heads, head_dim))
        k = k.reshape((batch, seqlen, kv_heads, head_dim))
        v = v.reshape((batch, seqlen, kv_heads, head_dim))
        if shape.qk_norm == "head":
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rotary is not None:
            q = self.rotary(q, positions)
            k = self.rotary(k, positions)
        if seqlen == 1:
            # The decode graph: moving a length-1 axis is a reshape, not a copy.
            new_k = k.reshape((batch, kv_heads, head_dim, 1))
            new_v = v.reshape((batch, kv_heads, 1, head_dim))
            out = grouped_attention(
                q.reshape((batch, heads, 1, head_dim)), past_k, past_v, new_k, new_v, mask, shape
            )
            return self.o_proj(out.reshape((batch, 1, heads * head_dim))), k, v
        new_k = F.permute(k, [0, 2, 3, 1])  # (B, Hkv, D, S)
        out = kernels.prompt_attention(q, past_k, past_v, new_k, v, mask, shape.score_scale, shape.softcap)
        if out is None:
            out = grouped_attention(q.transpose(1, 2), past_k, past_v, new_k, v.transpose(1, 2), mask, shape)
            out = out.transpose(1, 2)
        out = out.reshape((batch, seqlen, heads * head_dim))
        return self.o_proj(out), k, v


def grouped_attention(
    q: Tensor, past_k: Tensor, past_v: Tensor, new_k: Tensor, new_v: Tensor, mask: Tensor, shape: AttentionShape
) -> Tensor:
    """Scaled dot-product attention over the cached and the new keys.

    q: (B, H, S, D); keys transposed, past_k (B, Hkv, D, P) and new_k
    (B, Hkv, D, S); values past_v (B, Hkv, P, D) and new_v (B, Hkv, S, D);
    mask: additive (B, 1, S, P + S). Each kv head serves a group of q heads
    (GQA/MQA). The cache is only read, never copied: the two score blocks are
    joined (they are small), soft-capped if asked, softmaxed in float32, and
    split again. The CPU decode graph does all of this in one kernel instead
    (`kernels.decode_attention`). Returns (B, H, S, D).
    """
    batch, heads, seqlen, head_dim = q.shape
    scale, kv_heads = shape.score_scale, shape.n_kv_heads
    fused = kernels.decode_attention(q, past_k, past_v, new_k, new_v, mask, scale, shape.softcap)
    if fused is not None:
        return fused
    past = past_k.shape[3]
    total = past + seqlen
    group = int(heads) // kv_heads
    # Batched matmul is limited to rank 4: fold each kv head's query group into the rows.
    q = q.reshape((batch, kv_heads, group * seqlen, head_dim))
    scores = F.concat([q @ past_k, q @ new_k], axis=-1).cast(DType.float32) * scale
    if shape.softcap is not None:
        scores = F.tanh(scores / shape.softcap) * shape.softcap
    mask = F.rebind(mask, [batch, 1, seqlen, total]).reshape((batch, 1, 1, seqlen, total))
    scores = scores.reshape((batch, kv_heads, group, seqlen, total)) + mask
    weights = F.softmax(scores, axis=-1).cast(new_v.dtype)
    weights = weights.reshape((batch, kv_heads, group * seqlen, total))
    to_past = weights[:, :, :, :past]
    to_new = F.rebind(weights[:, :, :, past:], [batch, kv_heads, group * seqlen, seqlen])
    out = to_past @ past_v + to_new @ new_v
    return out.reshape((batch, heads, seqlen, head_dim))
