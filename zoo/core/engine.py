"""The shared KV-cached generation engine.

One compiled graph (`heads.NextTokenHead`) serves both phases: a prefill over
the (left-padded) prompts, then one-token decode steps. The graph reads the
cache and returns only the keys and values of the tokens it was given; the
engine writes those into a cache preallocated for the whole generation, so
no step copies the cache (a step costs the same whether 10 or 800 tokens
came before, apart from attention's reads). Unwritten slots are masked out.
Each row keeps its own positions and padding mask, so a batch produces
exactly what its prompts produce one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ZooError
from .loader import LoadedModel, torch_dtype_for
from .pollers import quiet_busy_pollers
from .sampling import Sampler, SamplingOptions

_MASKED = np.float32(-1e30)


class KVCache:
    """Keys (B, Hkv, D, capacity) and values (B, Hkv, capacity, D) per layer, on the host.

    Held as torch tensors (torch has bfloat16) and handed to MAX through
    DLPack, which on the CPU shares the memory instead of copying it.
    """

    def __init__(self, config: Any, dtype: Any, batch: int, capacity: int) -> None:
        import torch

        torch_dtype = torch_dtype_for(dtype)
        heads, dim = config.n_kv_heads, config.head_dim
        self.keys = [_zeros((batch, heads, dim, capacity), torch_dtype) for _ in range(config.n_layers)]
        self.values = [_zeros((batch, heads, capacity, dim), torch_dtype) for _ in range(config.n_layers)]
        # Before the first write the graph gets one zero slot, masked out: a
        # zero-length past would make matmuls with an empty inner dimension.
        self.placeholder = [_zeros((batch, heads, dim, 1), torch_dtype), _zeros((batch, heads, 1, dim), torch_dtype)]
        self.filled = 0
        self.capacity = capacity
        # float32 caches are also seen as numpy arrays (same memory): a decode step makes
        # 2 x layers tiny copies, and numpy's per-call cost is a fraction of torch's.
        self._numpy = None
        if torch_dtype == torch.float32:
            self._numpy = ([t.numpy() for t in self.keys], [t.numpy() for t in self.values])
        self.views: list[Any] | None = None  # MAX buffers sharing this memory (host only; see Engine._past)

    def past(self) -> list[Any]:
        """The whole cache, k0, v0, k1, v1, ... (one masked placeholder slot before the first write)."""
        if self.filled == 0:
            return self.placeholder * len(self.keys)
        return [t for pair in zip(self.keys, self.values) for t in pair]

    def write(self, new: Sequence[Any]) -> None:
        """Stores the graph's new k0, v0, k1, v1, ..., each (B, S, Hkv, D), after the filled slots."""
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
        self.filled = end


def _zeros(shape: tuple[int, ...], torch_dtype: Any) -> Any:
    """A zeroed host tensor. float32 memory comes from numpy (calloc, zeroed by the OS as it is
    touched): torch fills larger tensors on its thread pool, and right after a graph step
    those threads can wait tens of milliseconds for cores that MAX's workers still spin on."""
    import torch

    if torch_dtype == torch.float32:
        return torch.from_numpy(np.zeros(shape, dtype=np.float32))
    return torch.zeros(shape, dtype=torch_dtype)


class Engine:
    """Runs a `LoadedModel`'s compiled graph step by step."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.config = model.config

    def _buffer(self, array: Any) -> Any:
        """A driver buffer on the model's device; on the host it shares the array's memory."""
        from max.driver import Buffer

        if isinstance(array, np.ndarray):
            array = np.ascontiguousarray(array)
        buffer = Buffer.from_dlpack(array)
        return buffer if self.model.device.is_host else buffer.to(self.model.device)

    def _past(self, cache: KVCache) -> list[Any]:
        """The cache as graph inputs. On the host these are views of the cache's own
        memory, made once: later in-place writes show through them."""
        if not self.model.device.is_host or cache.filled == 0:
            return [self._buffer(t) for t in cache.past()]
        if cache.views is None:
            cache.views = [self._buffer(t) for t in cache.past()]
        return cache.views

    def _to_host(self, buffer: Any) -> Any:
        return buffer if buffer.device.is_host else buffer.to(_cpu())

    def forward(self, tokens: np.ndarray, positions: np.ndarray, mask: np.ndarray, cache: KVCache) -> tuple[np.ndarray, np.ndarray]:
        """One graph call; writes the new keys/values into `cache` and returns
        the greedy tokens (B,) and last-position logits (B, V)."""
        inputs = [self._buffer(tokens), self._buffer(positions), self._buffer(mask)]
        greedy, logits, *new = self.model.graph.run(*inputs, *self._past(cache))
        quiet_busy_pollers()  # after the first steps only: MAX starts its log poller at a first run
        cache.write([self._to_host(t) for t in new])
        return self._to_host(greedy).to_numpy().reshape(-1), self._to_host(logits).to_numpy()

    def extend(self, tokens: Sequence[int], cache: KVCache) -> tuple[int, np.ndarray]:
        """Runs one sequence's next `tokens` after the `cache.filled` it already holds.

        The serving path uses this: each request owns a one-row cache and
        arrives with its prompt (possibly in chunks) and then one token at a
        time. Returns the greedy token and the last-position logits (V,).
        """
        new = len(tokens)
        start = cache.filled
        if new == 0 or start + new > cache.capacity:
            raise ZooError(f"cannot add {new} tokens to a cache holding {start} of {cache.capacity}")
        past_columns = cache.capacity if start else 1
        mask = np.full((1, 1, new, past_columns + new), _MASKED, dtype=np.float32)
        if start:
            mask[..., :start] = 0.0
        mask[0, 0, :, past_columns:] = np.where(np.tril(np.ones((new, new), dtype=bool)), 0.0, _MASKED)
        ids = np.asarray(tokens, dtype=np.int64)[None, :]
        positions = np.arange(start, start + new, dtype=np.int64)[None, :]
        greedy, logits = self.forward(ids, positions, mask, cache)
        return int(greedy[0]), logits[0]

    def check_length(self, prompt_tokens: int) -> None:
        limit = self.config.context_length
        if prompt_tokens >= limit:
            raise ZooError(
                f"prompt is {prompt_tokens} tokens but the model's context is {limit}; "
                f"shorten it to at most {limit - 1} tokens"
            )

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
            raise ZooError("every prompt needs at least one token")
        lengths = [len(p) for p in prompts]
        self.check_length(max(lengths))
        batch, width = len(prompts), max(lengths)
        steps = min(options.max_new_tokens, self.config.context_length - width)
        pads = np.array([width - n for n in lengths])

        tokens = np.zeros((batch, width), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            tokens[row, pads[row] :] = prompt
        positions = np.maximum(np.arange(width)[None, :] - pads[:, None], 0)
        valid = np.zeros((batch, width + steps), dtype=bool)
        valid[:, :width] = np.arange(width)[None, :] >= pads[:, None]

        causal = np.tril(np.ones((width, width), dtype=bool))
        allowed = causal[None] & valid[:, None, :width]
        allowed |= np.eye(width, dtype=bool)[None]  # pad rows attend to themselves: no empty softmax
        allowed = np.concatenate([np.zeros((batch, width, 1), dtype=bool), allowed], axis=-1)  # the placeholder slot
        mask = np.where(allowed, 0.0, _MASKED).astype(np.float32)[:, None]

        sampler = Sampler(options)
        seen = [list(p) for p in prompts]
        cache = KVCache(self.config, self.model.dtype, batch, width + steps)
        greedy, logits = self.forward(tokens, positions, mask, cache)
        next_pos = np.array(lengths, dtype=np.int64)
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
            # Columns: every cache slot (unwritten ones masked), then the new token itself.
            step_mask = np.zeros((batch, 1, 1, valid.shape[1] + 1), dtype=np.float32)
            step_mask[:, 0, 0, :-1] = np.where(valid, 0.0, _MASKED)
            greedy, logits = self.forward(chosen[:, None], next_pos[:, None], step_mask, cache)
            valid[:, cache.filled - 1] = True
            next_pos += 1


def _cpu() -> Any:
    from max.driver import CPU

    return CPU()
