"""Position encodings: learned absolute embeddings (GPT-2) and rotary embeddings (everything else)."""

from __future__ import annotations

import numpy as np
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Embedding, Module
from max.experimental.tensor import Tensor

from .rope import RotarySpec


class LearnedPositions(Module):
    """Absolute position embeddings added to the token embeddings (GPT-2)."""

    def __init__(self, context_length: int, hidden_size: int) -> None:
        self.embedding = Embedding(context_length, dim=hidden_size)

    def forward(self, positions: Tensor) -> Tensor:
        return self.embedding(positions)


class RotaryPositions(Module):
    """Rotary position embedding in HF's "rotate half" layout, over the first
    `2 * len(inv_freq)` dimensions of each head (partial rotary leaves the rest).

    The inverse frequencies come from the host (every HF rope-scaling variant
    is a different `RotarySpec`); the angles are computed in the graph from
    each row's own positions. LongRoPE's long frequencies replace the short
    ones for a whole row of a call once a position of that row reaches
    `long_after` (transformers switches per call; per row, a batch gives
    what its rows give alone).
    """

    def __init__(self, spec: RotarySpec) -> None:
        self.spec = spec

    def _cos_sin(self, inv_freq: tuple[float, ...], positions: Tensor, dtype: DType) -> tuple[Tensor, Tensor]:
        freq = F.constant(np.asarray(inv_freq, dtype=np.float32), DType.float32, positions.device)
        angles = positions.cast(DType.float32)[:, :, None] * freq  # (B, S, R/2)
        angles = F.concat([angles, angles], axis=-1)[:, :, None, :]  # (B, S, 1, R)
        scale = self.spec.attention_scaling
        return F.cos(angles) * scale, F.sin(angles) * scale

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotates `x` of shape (batch, seqlen, heads, head_dim)."""
        cos, sin = self._cos_sin(self.spec.inv_freq, positions, x.dtype)
        if self.spec.long_inv_freq is not None:
            long_cos, long_sin = self._cos_sin(self.spec.long_inv_freq, positions, x.dtype)
            longest = F.max(positions, axis=-1).cast(DType.float32)[:, :, None, None]  # (B, 1, 1, 1)
            use_long = longest >= float(self.spec.long_after)
            cos, sin = F.where(use_long, long_cos, cos), F.where(use_long, long_sin, sin)
        half = len(self.spec.inv_freq)
        head_dim = int(x.shape[-1])
        if 2 * half < head_dim:
            rotating, passing = F.split(x, [2 * half, head_dim - 2 * half], axis=-1)
            return F.concat([_rotate(rotating, cos, sin, half), passing], axis=-1)
        return _rotate(x, cos, sin, half)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor, half: int) -> Tensor:
    x1, x2 = F.split(x, [half, half], axis=-1)
    rotated = F.concat([-x2, x1], axis=-1)
    return x * cos.cast(x.dtype) + rotated * sin.cast(x.dtype)
