"""Decoding heads: what leaves the compiled graph at each step.

The head wraps a `DecoderLM` and returns, for the last position only, the
greedy next token (argmax in the graph) and the float32 logits that host-side
sampling needs, followed by the new keys and values. One compiled graph serves
prefill (any prompt length) and decode (one token), with symbolic
`("batch", "seqlen")` token dims and a symbolic past length; on the CPU in
float32 a second graph, fixed at one new token, serves decode steps faster
(see `zoo.core.kernels`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor
from max.graph import DeviceRef, TensorType

from .layers import DecoderLM


@dataclass
class CompiledHead:
    """A compiled `NextTokenHead`: `any_length` takes any number of new tokens; `one_token`,
    when present, is the same head compiled for exactly one new token per row (decode), with
    zoo's CPU row-dot kernel in its projections. `run` calls whichever fits."""

    any_length: Callable[..., Any]
    one_token: Callable[..., Any] | None = None

    def run(self, tokens: Any, *rest: Any) -> list[Any]:
        """The engine's call: driver `Buffer`s in and out, skipping the per-argument checks.

        On a decode step, wrapping and checking 27+ arguments as tensors costs about a
        millisecond, and binding them to the engine model's signature a few tenths more;
        the engine builds its buffers to the graph's shapes, so both are skipped where the
        installed MAX allows (`_execute_device_tensors`, MAX 26.7; else `execute_raw`).
        """
        graph = self._pick(tokens)
        execute = getattr(graph.engine_model, "_execute_device_tensors", None)
        if execute is None or graph.signal_buffers:
            return graph.execute_raw(tokens, *rest)
        return list(execute([tokens, *rest]))

    def _pick(self, tokens: Any) -> Callable[..., Any]:
        if self.one_token is not None and int(tokens.shape[1]) == 1:
            return self.one_token
        return self.any_length


class NextTokenHead(Module):
    """Greedy token and last-position logits, plus this call's keys and values."""

    def __init__(self, model: DecoderLM) -> None:
        self.model = model

    def forward(self, tokens: Tensor, positions: Tensor, mask: Tensor, *cache: Tensor) -> tuple[Tensor, ...]:
        logits, *new_cache = self.model(tokens, positions, mask, *cache)
        return (F.argmax(logits, axis=-1), logits, *new_cache)


def input_types(
    n_layers: int, n_kv_heads: int, head_dim: int, dtype: DType, device: DeviceRef, seqlen: int | str = "seqlen"
) -> list[TensorType]:
    """Graph inputs: tokens, positions, additive mask, then past keys (transposed) and values per layer.

    `seqlen` is symbolic for the any-length graph, 1 for the one-token decode graph.
    """
    types = [
        TensorType(DType.int64, ("batch", seqlen), device=device),
        TensorType(DType.int64, ("batch", seqlen), device=device),
        TensorType(DType.float32, ("batch", 1, seqlen, "total"), device=device),
    ]
    keys = TensorType(dtype, ("batch", n_kv_heads, head_dim, "past"), device=device)
    values = TensorType(dtype, ("batch", n_kv_heads, "past", head_dim), device=device)
    types += [keys, values] * n_layers
    return types
