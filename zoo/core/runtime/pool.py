"""A fixed pool of KV cache slots for sequences that come and go (continuous batching).

One `KVCache` of `slots` rows x `capacity` columns is allocated once. A
sequence, named by any hashable key, takes a free slot (a row) and gives it
back when it ends; each row fills its own columns, so the sequences of one
step may sit at different lengths. The occupied slots are always rows
[0, n): a sequence that leaves is replaced by the last occupied row (its
written columns are copied), so a step over any of them is one contiguous
range of the cache, handed to the graph with no gathering.

`step` runs the new tokens of several sequences: every sequence with one new
token (decoding) in one graph call, rows between them that are not in the
step riding along as padding whose results are dropped; sequences with
several new tokens (prompts, or chunks of them) in one call per run of
consecutive slots, right-padded to the longest (new requests that arrive
together take consecutive slots).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from zoo.core.errors import PromptError, ZooError

from .engine import Engine
from .kvcache import KVCache


# Padded tokens one prefill call may hold when it runs several sequences.
PREFILL_TOKENS = 512


class PoolFullError(ZooError):
    """Every slot of the pool is taken."""


class CachePool:
    """`slots` cache rows of `capacity` tokens each, allocated once and reused.

    A LongRoPE model's slots end at its switch position (its original context): past it,
    the cached keys would need recomputing on the long frequencies, which one shared
    batch does not do per row."""

    def __init__(self, engine: Engine, slots: int, capacity: int) -> None:
        if slots < 1 or capacity < 1:
            raise ValueError("a cache pool needs at least one slot of at least one token")
        switch = engine.config.rope_switch_position
        if switch is not None:
            capacity = min(capacity, switch)
        self.engine = engine
        self.cache: KVCache = engine.new_cache(slots, capacity)
        self.slots = slots
        self.capacity = capacity
        self._slot: dict[Hashable, int] = {}
        self._owner: list[Hashable | None] = [None] * slots
        self._views: dict[tuple[int, int], KVCache] = {}

    @property
    def used(self) -> int:
        return len(self._slot)

    @property
    def nbytes(self) -> int:
        """Bytes of keys and values held (allocated once, whatever is in use)."""
        return sum(int(t.nbytes) for t in (*self.cache.keys, *self.cache.values))

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slot

    def length(self, key: Hashable) -> int:
        """Tokens the key's slot holds."""
        return int(self.cache.lengths[self._slot[key]])

    def acquire(self, key: Hashable) -> int:
        """Gives `key` the next free slot (empty); PoolFullError when none is left."""
        if key in self._slot:
            raise ZooError(f"{key!r} already holds a slot")
        slot = len(self._slot)
        if slot >= self.slots:
            raise PoolFullError(f"all {self.slots} cache slots are in use")
        self._slot[key] = slot
        self._owner[slot] = key
        self.cache.clear(slot)
        return slot

    def reset(self, key: Hashable) -> None:
        """Empties the key's slot (it keeps the slot)."""
        self.cache.clear(self._slot[key])

    def release(self, key: Hashable) -> None:
        """Frees the key's slot (nothing happens for a key without one); the last occupied
        slot moves into it."""
        slot = self._slot.pop(key, None)
        if slot is None:
            return
        last = len(self._slot)
        if slot != last:
            moved = self._owner[last]
            self.cache.copy_row(last, slot)
            self._owner[slot] = moved
            self._slot[moved] = slot
        self._owner[last] = None
        self.cache.clear(last)

    def rows(self, start: int, stop: int) -> KVCache:
        """The cache rows [start, stop) (a view, kept for reuse)."""
        view = self._views.get((start, stop))
        if view is None:
            view = self._views[(start, stop)] = self.cache.rows(start, stop)
        return view

    def step(self, batch: Sequence[tuple[Hashable, Sequence[int]]]) -> tuple[np.ndarray, np.ndarray]:
        """Feeds each key's new tokens after what its slot holds. Returns, in batch order,
        each key's greedy next token (n,) and its last new token's float32 logits (n, V)."""
        for key, tokens in batch:
            if not tokens:
                raise PromptError(f"no new tokens for {key!r}")
            self.engine.check_tokens(tokens)
            if self.length(key) + len(tokens) > self.capacity:
                raise PromptError(f"{key!r} would hold {self.length(key) + len(tokens)} tokens; a slot holds {self.capacity}")
        greedy = np.zeros(len(batch), dtype=np.int64)
        logits: np.ndarray | None = None
        singles = [i for i, (_, tokens) in enumerate(batch) if len(tokens) == 1]
        if singles:
            picked, rows = self._decode([batch[i] for i in singles])
            logits = self._place(logits, singles, rows, len(batch))
            greedy[singles] = picked
        longer = [i for i, (_, tokens) in enumerate(batch) if len(tokens) > 1]
        for group in self._runs(longer, batch):
            picked, rows = self._extend([batch[i] for i in group])
            logits = self._place(logits, group, rows, len(batch))
            greedy[group] = picked
        assert logits is not None
        return greedy, logits

    def _runs(self, indices: list[int], batch: Sequence[tuple[Hashable, Sequence[int]]]) -> list[list[int]]:
        """`indices` grouped into runs whose slots follow each other (one call each), a run
        holding at most `PREFILL_TOKENS` padded tokens (or one sequence): the attention
        scores of one call grow with rows x longest x columns."""
        runs: list[list[int]] = []
        for i in sorted(indices, key=lambda i: self._slot[batch[i][0]]):
            if runs:
                run = runs[-1]
                follows = self._slot[batch[i][0]] == self._slot[batch[run[-1]][0]] + 1
                longest = max(len(batch[j][1]) for j in (*run, i))
                if follows and (len(run) + 1) * longest <= PREFILL_TOKENS:
                    run.append(i)
                    continue
            runs.append([i])
        return runs

    @staticmethod
    def _place(logits: np.ndarray | None, at: list[int], rows: np.ndarray, n: int) -> np.ndarray:
        if logits is None and at == list(range(n)):
            return rows  # the whole batch in order: the graph's own output, not copied
        if logits is None:
            logits = np.empty((n, rows.shape[-1]), dtype=np.float32)
        logits[at] = rows
        return logits

    def _decode(self, batch: Sequence[tuple[Hashable, Sequence[int]]]) -> tuple[np.ndarray, np.ndarray]:
        """One call for single new tokens, over the range of rows that covers their slots."""
        slots = np.array([self._slot[key] for key, _ in batch], dtype=np.int64)
        start, stop = int(slots.min()), int(slots.max()) + 1
        width = stop - start
        tokens = np.zeros((width, 1), dtype=np.int64)
        positions = np.zeros((width, 1), dtype=np.int64)
        valid = np.zeros((width, 1), dtype=bool)
        counts = np.zeros(width, dtype=np.int64)
        local = slots - start
        tokens[local, 0] = [t[0] for _, t in batch]
        positions[local, 0] = self.cache.lengths[slots]
        valid[local, 0] = True
        counts[local] = 1
        greedy, logits = self.engine.forward(tokens, positions, valid, self.rows(start, stop), counts=counts)
        if width == len(batch) and (local == np.arange(width)).all():
            return greedy, logits[:, -1]
        return greedy[local], logits[local, -1]

    def _extend(self, batch: Sequence[tuple[Hashable, Sequence[int]]]) -> tuple[np.ndarray, np.ndarray]:
        """One call for sequences with several new tokens each (prompts, or chunks of them) on
        consecutive slots; shorter rows are padded on the right and the padding is not stored."""
        slots = [self._slot[key] for key, _ in batch]
        counts = np.array([len(tokens) for _, tokens in batch], dtype=np.int64)
        width = int(counts.max())
        tokens = np.zeros((len(batch), width), dtype=np.int64)
        positions = np.zeros((len(batch), width), dtype=np.int64)
        valid = np.arange(width)[None, :] < counts[:, None]
        for row, ((_, new), slot) in enumerate(zip(batch, slots)):
            start = int(self.cache.lengths[slot])
            tokens[row, : len(new)] = new
            positions[row, : len(new)] = np.arange(start, start + len(new))
        last = (np.arange(len(batch)) * width + counts - 1)[:, None]
        greedy, logits = self.engine.forward(
            tokens, positions, valid, self.rows(slots[0], slots[-1] + 1), rows=last,
            counts=None if (counts == width).all() else counts,
        )
        return greedy, logits[:, -1]
