"""The shared KV-cached generation engine.

One compiled graph (`heads.NextTokenHead`) serves both phases: a prefill over
the (left-padded) prompts, then one-token decode steps that read and extend
the cache. The cache tensors returned by one call go straight into the next,
so they stay on the device. Each row keeps its own positions and padding
mask, so a batch produces exactly what its prompts produce one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ZooError
from .loader import LoadedModel
from .sampling import Sampler, SamplingOptions

_MASKED = np.float32(-1e30)


class Engine:
    """Runs a `LoadedModel`'s compiled graph step by step."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.config = model.config

    def _tensor(self, array: np.ndarray) -> Any:
        from max.experimental.tensor import Tensor

        tensor = Tensor.from_dlpack(np.ascontiguousarray(array))
        return tensor if self.model.device.is_host else tensor.to(self.model.device)

    def _empty_cache(self, batch: int) -> list[Any]:
        """Zero-length past K/V per layer (made through torch, which has bfloat16)."""
        import torch
        from max.dtype import DType
        from max.experimental.tensor import Tensor

        torch_dtype = torch.float32 if self.model.dtype == DType.float32 else torch.bfloat16
        empty = torch.zeros((batch, self.config.n_kv_heads, 0, self.config.head_dim), dtype=torch_dtype)
        tensor = Tensor.from_dlpack(empty)
        if not self.model.device.is_host:
            tensor = tensor.to(self.model.device)
        return [tensor] * (2 * self.config.n_layers)

    def forward(self, tokens: np.ndarray, positions: np.ndarray, mask: np.ndarray, cache: list[Any]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """One graph call: returns greedy tokens (B,), last logits (B, V) and the new cache."""
        greedy, logits, *cache = self.model.graph(
            self._tensor(tokens), self._tensor(positions), self._tensor(mask), *cache
        )
        return _to_numpy(greedy).reshape(-1), _to_numpy(logits), cache

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
        mask = np.where(allowed, 0.0, _MASKED).astype(np.float32)[:, None]

        sampler = Sampler(options)
        seen = [list(p) for p in prompts]
        greedy, logits, cache = self.forward(tokens, positions, mask, self._empty_cache(batch))
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
            total = width + step + 1
            valid[:, total - 1] = True
            step_mask = np.where(valid[:, :total], 0.0, _MASKED).astype(np.float32)[:, None, None, :]
            greedy, logits, cache = self.forward(chosen[:, None], next_pos[:, None], step_mask, cache)
            next_pos += 1


def _to_numpy(tensor: Any) -> np.ndarray:
    return tensor.to_numpy() if tensor.device.is_host else tensor.to(_cpu()).to_numpy()


def _cpu() -> Any:
    from max.driver import CPU

    return CPU()
