"""Weights re-laid out for MAX's own quantized matmul (`vroom_*` kernels) on the CPU.

MAX 26.7 multiplies float32 activations by Q4_0, Q4_K and Q6_K weights with its
`vroom_<encoding>_matmul` kernels (activations quantized to 8 bits per block, integer
dot products), which read the weight rows in a layout of their own, made from the GGUF
rows by `vroom_<encoding>_repack_weights`. `repack` runs that op once per weight at load
(one small graph with one input per encoding, symbolic shapes, the unused ones empty), so
the model's graphs take the repacked rows and the per-token work is the matmul alone.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

MAX_ENCODINGS = ("q4_0", "q4_k", "q6_k")
ROW_MULTIPLE = 32  # the kernels take weights whose row count is a multiple of this


def max_matmul_applies(encoding: str | None, rows: int) -> bool:
    """Whether a weight of `rows` rows in `encoding` runs through MAX's quantized matmul."""
    return encoding in MAX_ENCODINGS and rows % ROW_MULTIPLE == 0


def repack(data: np.ndarray, encoding: str) -> np.ndarray:
    """The raw GGUF rows `data` (uint8, (rows, bytes per row)) in MAX's matmul layout (same shape)."""
    from max.driver import Buffer

    from zoo.core.checkpoints.quantized import ENCODINGS

    inputs = [
        np.ascontiguousarray(data) if e == encoding else np.zeros((0, ENCODINGS[e][1]), dtype=np.uint8)
        for e in MAX_ENCODINGS
    ]
    outputs = _repacker().execute(*(Buffer.from_numpy(a) for a in inputs))
    return outputs[MAX_ENCODINGS.index(encoding)].to_numpy()


@cache
def _repacker() -> Any:
    from zoo.core.graph_cache import load_graph

    return load_graph("zoo_repack", _repack_graph)


def _repack_graph() -> Any:
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType, ops

    cpu = DeviceRef.CPU()
    types = [TensorType(DType.uint8, (f"rows_{e}", f"row_bytes_{e}"), cpu) for e in MAX_ENCODINGS]
    with Graph("zoo_repack", input_types=types) as graph:
        packed = [
            ops.custom(f"vroom_{e}_repack_weights", cpu, [rows], [kind])[0]
            for e, rows, kind in zip(MAX_ENCODINGS, graph.inputs, types)
        ]
        graph.output(*packed)
    return graph
