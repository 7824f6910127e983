"""The shared KV-cached generation engine.

One compiled graph (`blocks.heads.NextTokenHead`) serves both phases: a
prefill over the (left-padded) prompts, then one-token decode steps. The graph
reads the cache and returns only the keys and values of the tokens it was
given; the engine writes those into a cache preallocated for the whole
generation, so no step copies the cache. The attention masks come from the
positions of the cached and new tokens: a key is visible to a query when it is
a real token at or before the query's position (and, in a sliding-window
layer, fewer than `window` positions back). Each row keeps its own positions
and padding, so a batch produces exactly what its prompts produce one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from zoo.core.config import ModelConfig
from zoo.core.errors import PromptError, ZooError

from .kvcache import KVCache
from .sampling import Sampler, SamplingOptions

if TYPE_CHECKING:
    from max.driver import Buffer, Device
    from max.dtype import DType

    from zoo.core.blocks.heads import CompiledHead

_MASKED = np.float32(-1e30)


def attention_masks(
    config: ModelConfig, cache: KVCache, positions: np.ndarray, valid: np.ndarray
) -> list[np.ndarray]:
    """Additive masks (B, 1, S, columns + S) for new tokens at `positions` (B, S), `valid` (B, S):
    the full-attention mask, and the sliding-window one when some layer slides."""
    slot_pos, slot_valid = cache.slot_positions()
    key_pos = np.concatenate([slot_pos, positions], axis=1)[:, None, :]
    key_valid = np.concatenate([slot_valid, valid], axis=1)[:, None, :]
    query_pos = positions[:, :, None]
    allowed = key_valid & (key_pos <= query_pos)
    windows = [allowed]
    window = getattr(config, "sliding_window", None)
    if config.has_sliding_window:
        windows.append(allowed & (query_pos - key_pos < window))
    masks = []
    batch, seqlen = positions.shape
    own = cache.columns + np.arange(seqlen)
    for allow in windows:
        allow = allow.copy()
        pads = ~valid  # a padding query attends to itself only: no empty softmax
        allow[:, np.arange(seqlen), own] |= pads
        masks.append(np.where(allow, 0.0, _MASKED).astype(np.float32)[:, None])
    return masks


def crosses_rope_switch(config: ModelConfig, cache: KVCache, positions: np.ndarray, valid: np.ndarray) -> bool:
    """Whether some row reaches the config's LongRoPE switch position in this call while its
    cached keys were all computed before it (on the short frequencies)."""
    switch = config.rope_switch_position
    if switch is None or cache.filled == 0:
        return False
    before = np.where(cache.valid[:, : cache.filled], cache.positions[:, : cache.filled], -1).max(axis=1)
    now = np.where(valid, positions, -1).max(axis=1)
    return bool(np.any((now >= switch) & (before < switch)))


class RunnableModel(Protocol):
    """What the engine runs: a compiled graph with its config, device and dtype (a `LoadedModel`)."""

    graph: CompiledHead
    config: ModelConfig
    device: Device
    dtype: DType


@dataclass
class CompiledGraph:
    """A compiled graph on its own (no tokenizer or source), for warm-up and benchmarks."""

    graph: CompiledHead
    config: ModelConfig
    device: Device
    dtype: DType


class Engine:
    """Runs a compiled model step by step."""

    def __init__(self, model: RunnableModel) -> None:
        self.model = model
        self.config = model.config

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        return KVCache(self.config, self.model.dtype, batch, capacity)

    def _past(self, cache: KVCache) -> list[Buffer]:
        """The cache as graph inputs. On the host these are views of the cache's own
        memory, made once: later in-place writes show through them."""
        device = self.model.device
        if not device.is_host or cache.filled == 0:
            return [to_buffer(t, device) for t in cache.past()]
        if cache.views is None:
            cache.views = [to_buffer(t, device) for t in cache.past()]
        return cache.views

    def forward(
        self,
        tokens: np.ndarray,
        positions: np.ndarray,
        valid: np.ndarray,
        cache: KVCache,
        rows: np.ndarray | None = None,
        counts: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One graph call for `tokens` (B, S) at `positions` (`valid`: not padding); writes the
        new keys/values into `cache` after each row's written columns (only each row's first
        `counts[b]` when given). Returns the greedy tokens (B,) and the logits of the
        positions `rows` (B, R) names (default: each row's last), (B, R, V)."""
        device = self.model.device
        if rows is None and counts is None and crosses_rope_switch(self.config, cache, positions, valid):
            # LongRoPE: the cached keys rotated on the short frequencies; run the whole
            # sequence again, as transformers recomputes its cache at the switch.
            past_tokens, past_positions, past_valid = cache.rewind()
            tokens = np.concatenate([past_tokens, tokens], axis=1)
            positions = np.concatenate([past_positions, positions], axis=1)
            valid = np.concatenate([past_valid, valid], axis=1)
        batch, seqlen = tokens.shape
        if rows is None:
            rows = np.arange(batch, dtype=np.int64)[:, None] * seqlen + (seqlen - 1)
        masks = attention_masks(self.config, cache, positions, valid)
        inputs = [to_buffer(a, device) for a in (tokens, positions, rows, *masks)]
        greedy, logits, new_keys, new_values = self.model.graph.run(*inputs, *self._past(cache))
        cache.write(_to_host(new_keys), _to_host(new_values), positions, valid, counts, tokens if counts is None else None)
        return _to_host(greedy).to_numpy().reshape(-1), _to_host(logits).to_numpy()

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        """The float32 logits (S, V) at every position of one sequence, in one call."""
        self.check_tokens(tokens)
        if not 0 < len(tokens) <= self.config.context_length:
            raise PromptError(f"cannot score {len(tokens)} tokens: the model's context is {self.config.context_length}")
        ids = np.asarray(tokens, dtype=np.int64)[None, :]
        positions = np.arange(len(tokens), dtype=np.int64)[None, :]
        rows = positions.copy()
        _, logits = self.forward(ids, positions, np.ones_like(ids, dtype=bool), self.new_cache(1, len(tokens)), rows)
        return logits[0]

    def check_tokens(self, ids: Sequence[int]) -> None:
        """Token ids must lie in the model's vocabulary."""
        vocab = self.config.vocab_size
        bad = [int(t) for t in ids if not 0 <= int(t) < vocab]
        if bad:
            raise PromptError(f"token id {bad[0]} is outside the model's vocabulary of {vocab} tokens")

    def check_length(self, prompt_tokens: int) -> None:
        limit = self.config.context_length
        if prompt_tokens >= limit:
            raise PromptError(
                f"prompt is {prompt_tokens} tokens but the model's context is {limit}; "
                f"shorten it to at most {limit - 1} tokens"
            )

    def extend(self, tokens: Sequence[int], cache: KVCache) -> tuple[int, np.ndarray]:
        """Runs one sequence's next `tokens` after the `cache.filled` it already holds.

        The serving path uses this: each request owns a one-row cache and
        arrives with its prompt (possibly in chunks) and then one token at a
        time. Returns the greedy token and the last-position logits (V,).
        """
        new, start = len(tokens), cache.filled
        if new == 0 or start + new > cache.capacity:
            raise ZooError(f"cannot add {new} tokens to a cache holding {start} of {cache.capacity}")
        self.check_tokens(tokens)
        ids = np.asarray(tokens, dtype=np.int64)[None, :]
        positions = np.arange(start, start + new, dtype=np.int64)[None, :]
        greedy, logits = self.forward(ids, positions, np.ones_like(ids, dtype=bool), cache)
        return int(greedy[0]), logits[0, -1]

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        options: SamplingOptions,
        on_logits: Callable[[np.ndarray], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """Yields the next token of every row, step by step.

        Stops after `max_new_tokens` or at the context length; the caller
        stops earlier (EOS, stop strings) simply by not asking for more.
        `on_logits` sees each step's raw last-position logits (B, V).
        """
        if not prompts or any(len(p) == 0 for p in prompts):
            raise PromptError("every prompt needs at least one token")
        for prompt in prompts:
            self.check_tokens(prompt)
        lengths = [len(p) for p in prompts]
        self.check_length(max(lengths))
        batch, width = len(prompts), max(lengths)
        steps = min(options.max_new_tokens, self.config.context_length - width)
        pads = np.array([width - n for n in lengths])

        tokens = np.zeros((batch, width), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            tokens[row, pads[row] :] = prompt
        positions = np.maximum(np.arange(width)[None, :] - pads[:, None], 0)
        valid = np.arange(width)[None, :] >= pads[:, None]

        sampler = Sampler(options)
        seen = [list(p) for p in prompts]
        cache = self.new_cache(batch, width + steps)
        greedy, logits = self.forward(tokens, positions, valid, cache)
        logits = logits[:, -1]
        next_pos = np.array(lengths, dtype=np.int64)[:, None]
        all_valid = np.ones((batch, 1), dtype=bool)
        for step in range(steps):
            if on_logits is not None:
                on_logits(logits)
            chosen = sampler(logits, seen) if options.needs_logits else greedy
            chosen = np.asarray(chosen, dtype=np.int64)
            for row in range(batch):
                seen[row].append(int(chosen[row]))
            yield chosen
            if step == steps - 1:
                return
            greedy, logits = self.forward(chosen[:, None], next_pos, all_valid, cache)
            logits = logits[:, -1]
            next_pos = next_pos + 1


def to_buffer(array: Any, device: Device) -> Buffer:
    """A driver buffer on `device`; on the host it shares the array's memory."""
    from max.driver import Buffer

    if isinstance(array, np.ndarray):
        array = np.ascontiguousarray(array)
    buffer = Buffer.from_dlpack(array)
    return buffer if device.is_host else buffer.to(device)


def _to_host(buffer: Buffer) -> Buffer:
    if buffer.device.is_host:
        return buffer
    from max.driver import CPU

    return buffer.to(CPU())


def warm_up(graph: CompiledHead, config: ModelConfig, device: Device, dtype: DType) -> None:
    """Runs each compiled graph once on a one-token prompt, then applies the process-wide
    tuning that needs a graph to have run (MAX's log poller starts at a first execution)."""
    from . import pollers

    steps = 2 if graph.one_token is not None else 1
    if config.context_length <= steps:
        return
    engine = Engine(CompiledGraph(graph, config, device, dtype))
    for attempt in range(pollers.TRIES):
        if attempt and not pollers.still_looking():
            return
        for _ in engine.generate([[0]], SamplingOptions(greedy=True, max_new_tokens=steps)):
            pass
        pollers.quiet_busy_pollers()
