"""The host-side KV cache: preallocated keys and values per layer, and where each slot came from."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.core.config import ModelConfig

if TYPE_CHECKING:
    from max.dtype import DType


class KVCache:
    """Keys (B, Hkv, D, capacity) and values (B, Hkv, capacity, D) per layer, on the host.

    Held as NumPy arrays in float32 and as torch tensors in bfloat16, and handed
    to MAX through DLPack, which on the CPU shares the memory instead of copying
    it. The layers are slices of one array for keys (layers, B, Hkv, D, capacity)
    and one for values, so a step's new keys and values, which the graph returns
    stacked over the layers, go in with one copy each. Each
    slot also records its token's position and whether it holds a real token
    (not padding), from which the engine builds the attention masks. Each row
    fills its own columns in order (`lengths`); a generation batch fills all
    rows together, a pool of serving slots (`CachePool`) each row on its own.
    """

    def __init__(self, config: ModelConfig, dtype: DType, batch: int, capacity: int) -> None:
        heads, dim = config.n_kv_heads, config.head_dim
        self.dtype = dtype
        self.all_keys = _zeros((config.n_layers, batch, heads, dim, capacity), dtype)
        self.all_values = _zeros((config.n_layers, batch, heads, capacity, dim), dtype)
        self.keys = list(self.all_keys)
        self.values = list(self.all_values)
        self.batch = batch
        self.capacity = capacity
        self.lengths = np.zeros(batch, dtype=np.int64)  # columns written, per row
        self.positions = np.zeros((batch, capacity), dtype=np.int64)
        self.valid = np.zeros((batch, capacity), dtype=bool)
        self.tokens = np.zeros((batch, capacity), dtype=np.int64)
        self._placeholder: list[Any] | None = None
        self.views: list[Any] | None = None  # MAX buffers sharing this memory (host only; see Engine)

    @property
    def filled(self) -> int:
        """Columns written in the fullest row (in a generation batch, every row's)."""
        return int(self.lengths.max()) if self.batch else 0

    @property
    def columns(self) -> int:
        """Cache columns the graph sees: the whole capacity, or the one placeholder slot."""
        return self.capacity if self.filled else 1

    def rows(self, start: int, stop: int) -> KVCache:
        """Rows [start, stop) as a cache of their own that shares this one's memory
        (keys, values, positions, validity and lengths): writes through either show in both."""
        view = copy.copy(self)
        view.all_keys = self.all_keys[:, start:stop]
        view.all_values = self.all_values[:, start:stop]
        view.keys = [t[start:stop] for t in self.keys]
        view.values = [t[start:stop] for t in self.values]
        view.batch = stop - start
        view.lengths = self.lengths[start:stop]
        view.positions = self.positions[start:stop]
        view.valid = self.valid[start:stop]
        view.tokens = self.tokens[start:stop]
        view._placeholder = None
        view.views = None
        return view

    def past(self) -> list[Any]:
        """The whole cache, k0, v0, k1, v1, ... (one masked placeholder slot before the first write)."""
        if self.filled == 0:
            if self._placeholder is None:
                (_, heads, dim, _) = self.keys[0].shape
                self._placeholder = [
                    _zeros((self.batch, heads, dim, 1), self.dtype), _zeros((self.batch, heads, 1, dim), self.dtype)
                ]
            return self._placeholder * len(self.keys)
        return [t for pair in zip(self.keys, self.values) for t in pair]

    def slot_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, valid) of the columns the graph sees, each (B, columns)."""
        if self.filled == 0:
            return np.zeros((self.batch, 1), dtype=np.int64), np.zeros((self.batch, 1), dtype=bool)
        return self.positions, self.valid

    def touch(self) -> None:
        """Writes every page of the keys and values now, so that the memory is taken at once
        rather than as columns fill (a pool allocated once should not grow as it is used)."""
        for held in (self.all_keys, self.all_values):
            held[...] = 0

    def clear(self, row: int) -> None:
        """Forgets what `row` holds (its columns count as unwritten again)."""
        self.lengths[row] = 0
        self.valid[row] = False

    def copy_row(self, source: int, target: int) -> None:
        """Moves what row `source` holds into row `target` (written columns only)."""
        end = int(self.lengths[source])
        keys, values = self.all_keys, self.all_values
        keys[:, target, ..., :end] = keys[:, source, ..., :end]
        values[:, target, :, :end] = values[:, source, :, :end]
        self.positions[target] = self.positions[source]
        self.valid[target] = self.valid[source]
        self.lengths[target] = end

    def write(
        self,
        new_keys: Any,
        new_values: Any,
        positions: np.ndarray,
        valid: np.ndarray,
        counts: np.ndarray | None = None,
        tokens: np.ndarray | None = None,
    ) -> None:
        """Stores the graph's new keys and values, each (layers, B, S, Hkv, D), with the tokens'
        positions and validity (B, S), after each row's written columns. `counts` (B,) keeps
        only each row's first counts[b] tokens (right padding, or 0 for a row not in the
        call); by default all S. `tokens` (B, S), given when every row writes all S, are
        kept for `rewind`."""
        batch, seqlen = positions.shape
        keys, values = self.all_keys, self.all_values
        # float32 caches are numpy arrays: a step's copies are tiny, and numpy's per-call cost
        # is a fraction of torch's
        if isinstance(keys, np.ndarray):
            convert, permute = np.from_dlpack, np.transpose
        else:
            import torch

            convert, permute = torch.from_dlpack, torch.permute
        new_k, new_v = convert(new_keys), convert(new_values)
        starts = self.lengths.copy()
        if counts is None and (batch == 1 or (starts == starts[0]).all()):
            start, end = int(starts[0]), int(starts[0]) + seqlen  # every row at the same columns
            keys[..., start:end] = permute(new_k, (0, 1, 3, 4, 2))
            values[:, :, :, start:end] = permute(new_v, (0, 1, 3, 2, 4))
            self.positions[:, start:end] = positions
            self.valid[:, start:end] = valid
            if tokens is not None:
                self.tokens[:, start:end] = tokens
            self.lengths[:] = end
            return
        counts = np.full(batch, seqlen, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
        for row in np.flatnonzero(counts):
            start, n = int(starts[row]), int(counts[row])
            keys[:, row, ..., start : start + n] = permute(new_k[:, row, :n], (0, 2, 3, 1))
            values[:, row, :, start : start + n] = permute(new_v[:, row, :n], (0, 2, 1, 3))
            self.positions[row, start : start + n] = positions[row, :n]
            self.valid[row, start : start + n] = valid[row, :n]
            self.lengths[row] = start + n

    def rewind(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Empties a generation batch's cache (every row at the same length); returns the
        (tokens, positions, valid) it held, (B, filled) each, for the engine to run again."""
        end = self.filled
        self.lengths[:] = 0
        return self.tokens[:, :end].copy(), self.positions[:, :end].copy(), self.valid[:, :end].copy()


def _zeros(shape: tuple[int, ...], dtype: DType) -> Any:
    """A zeroed host array: NumPy for float32 (calloc, zeroed by the OS as it is touched),
    torch for bfloat16. torch fills larger tensors on its thread pool, and right after a
    graph step those threads can wait tens of milliseconds for cores that MAX's workers
    still spin on."""
    from max.dtype import DType

    if dtype == DType.float32:
        return np.zeros(shape, dtype=np.float32)
    import torch

    from zoo.core.loader import torch_dtype_for

    return torch.zeros(shape, dtype=torch_dtype_for(dtype))
