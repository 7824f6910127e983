"""The host-side KV cache: preallocated keys and values per layer, and where each slot came from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.core.config import ModelConfig

if TYPE_CHECKING:
    from max.dtype import DType


class KVCache:
    """Keys (B, Hkv, D, capacity) and values (B, Hkv, capacity, D) per layer, on the host.

    Held as torch tensors (torch has bfloat16) and handed to MAX through
    DLPack, which on the CPU shares the memory instead of copying it. Each
    slot also records its token's position and whether it holds a real token
    (not padding), from which the engine builds the attention masks.
    """

    def __init__(self, config: ModelConfig, dtype: DType, batch: int, capacity: int) -> None:
        import torch

        from zoo.core.loader import torch_dtype_for

        torch_dtype = torch_dtype_for(dtype)
        heads, dim = config.n_kv_heads, config.head_dim
        self.keys = [_zeros((batch, heads, dim, capacity), torch_dtype) for _ in range(config.n_layers)]
        self.values = [_zeros((batch, heads, capacity, dim), torch_dtype) for _ in range(config.n_layers)]
        # Before the first write the graph gets one zero slot, masked out: a
        # zero-length past would make matmuls with an empty inner dimension.
        self.placeholder = [_zeros((batch, heads, dim, 1), torch_dtype), _zeros((batch, heads, 1, dim), torch_dtype)]
        self.batch = batch
        self.filled = 0
        self.capacity = capacity
        self.positions = np.zeros((batch, capacity), dtype=np.int64)
        self.valid = np.zeros((batch, capacity), dtype=bool)
        self.tokens = np.zeros((batch, capacity), dtype=np.int64)
        # float32 caches are also seen as numpy arrays (same memory): a decode step makes
        # 2 x layers tiny copies, and numpy's per-call cost is a fraction of torch's.
        self._numpy = None
        if torch_dtype == torch.float32:
            self._numpy = ([t.numpy() for t in self.keys], [t.numpy() for t in self.values])
        self.views: list[Any] | None = None  # MAX buffers sharing this memory (host only; see Engine)

    @property
    def columns(self) -> int:
        """Cache columns the graph sees: the whole capacity, or the one placeholder slot."""
        return self.capacity if self.filled else 1

    def past(self) -> list[Any]:
        """The whole cache, k0, v0, k1, v1, ... (one masked placeholder slot before the first write)."""
        if self.filled == 0:
            return self.placeholder * len(self.keys)
        return [t for pair in zip(self.keys, self.values) for t in pair]

    def slot_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, valid) of the columns the graph sees, each (B, columns)."""
        if self.filled == 0:
            return np.zeros((self.batch, 1), dtype=np.int64), np.zeros((self.batch, 1), dtype=bool)
        return self.positions, self.valid

    def write(self, new: Sequence[Any], positions: np.ndarray, valid: np.ndarray, tokens: np.ndarray | None = None) -> None:
        """Stores the graph's new k0, v0, k1, v1, ..., each (B, S, Hkv, D), after the filled
        slots, with the tokens' positions and validity (B, S) and the token ids."""
        start = self.filled
        end = start + int(new[0].shape[1])
        if self._numpy is not None:
            convert, permute, (keys, values) = np.from_dlpack, np.transpose, self._numpy
        else:
            import torch

            convert, permute, keys, values = torch.from_dlpack, torch.permute, self.keys, self.values
        for layer, (k, v) in enumerate(zip(new[0::2], new[1::2])):
            keys[layer][..., start:end] = permute(convert(k), (0, 2, 3, 1))
            values[layer][:, :, start:end] = permute(convert(v), (0, 2, 1, 3))
        self.positions[:, start:end] = positions
        self.valid[:, start:end] = valid
        if tokens is not None:
            self.tokens[:, start:end] = tokens
        self.filled = end

    def rewind(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Empties the cache; returns the (tokens, positions, valid) it held, (B, filled) each,
        for the engine to run again."""
        end, self.filled = self.filled, 0
        return self.tokens[:, :end].copy(), self.positions[:, :end].copy(), self.valid[:, :end].copy()


def _zeros(shape: tuple[int, ...], torch_dtype: Any) -> Any:
    """A zeroed host tensor. float32 memory comes from numpy (calloc, zeroed by the OS as it is
    touched): torch fills larger tensors on its thread pool, and right after a graph step
    those threads can wait tens of milliseconds for cores that MAX's workers still spin on."""
    import torch

    if torch_dtype == torch.float32:
        return torch.from_numpy(np.zeros(shape, dtype=np.float32))
    return torch.zeros(shape, dtype=torch_dtype)
