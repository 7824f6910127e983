"""Decoding heads: what leaves the compiled graph at each step.

The head wraps a `DecoderLM` and returns the greedy next token (argmax in the
graph) and the float32 logits of the positions the engine asks for (each
row's last one when generating; all of them for evaluation), followed by the
new keys and values. One compiled graph serves
prefill (any prompt length) and decode (one token), with symbolic
`("batch", "seqlen")` token dims and a symbolic past length; on the CPU in
float32 a second graph, fixed at one new token, serves decode steps faster
(see `zoo.core.kernels`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor
from max.graph import DeviceRef, TensorType

from zoo.core.config import ModelConfig

from .decoder import DecoderLM


@dataclass
class CompiledHead:
    """A compiled `NextTokenHead`: `any_length` takes any number of new tokens; `one_token`,
    when present, is the same head compiled for exactly one new token per row (decode), with
    zoo's CPU row-dot kernel in its projections. `run` calls whichever fits."""

    any_length: Callable[..., Any]
    one_token: Callable[..., Any] | None = None
    weight_bytes_per_token: int = 0  # weight bytes a decode step reads (see zoo.core.quantization)
    encodings: dict[str, int] = field(default_factory=dict)  # weights per encoding ("float": the rest)

    @property
    def from_cache(self) -> bool:
        """Whether every graph was read back from zoo's graph cache (`zoo.core.graph_cache`)."""
        from zoo.core.graph_cache import CachedGraph

        return all(isinstance(g, CachedGraph) for g in (self.any_length, self.one_token) if g is not None)

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
    """The greedy token after each row's last selected position, the selected positions'
    float32 logits (B, R, V), and this call's keys and values (each stacked over the layers)."""

    def __init__(self, model: DecoderLM) -> None:
        self.model = model

    def forward(self, tokens: Tensor, positions: Tensor, rows: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        logits, new_keys, new_values = self.model(tokens, positions, rows, *rest)
        return F.argmax(logits[:, -1, :], axis=-1), logits, new_keys, new_values


def input_types(config: ModelConfig, dtype: DType, device: DeviceRef, seqlen: int | str = "seqlen") -> list[TensorType]:
    """Graph inputs: tokens, positions, the rows whose logits to return (flat indices into
    batch x seqlen), the additive mask (and the sliding-window mask when some layer slides),
    then past keys (transposed) and values per layer.

    `seqlen` is symbolic for the any-length graph, 1 for the one-token decode graph.
    """
    mask = TensorType(DType.float32, ("batch", 1, seqlen, "total"), device=device)
    types = [
        TensorType(DType.int64, ("batch", seqlen), device=device),
        TensorType(DType.int64, ("batch", seqlen), device=device),
        TensorType(DType.int64, ("batch", "rows" if seqlen != 1 else 1), device=device),
        mask,
    ]
    if config.has_sliding_window:
        types.append(mask)
    keys = TensorType(dtype, ("batch", config.n_kv_heads, config.head_dim, "past"), device=device)
    values = TensorType(dtype, ("batch", config.n_kv_heads, "past", config.head_dim), device=device)
    types += [keys, values] * config.n_layers
    return types
