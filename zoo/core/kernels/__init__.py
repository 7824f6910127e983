"""A hand-written CPU kernel for the decode step, as a MAX custom op (Mojo).

Decoding reads every weight once per token for a single row of activations,
and MAX's CPU matmul reads weights at about 18 GB/s on this kind of machine
for one row (torch: 35-50). `zoo_rowdot` (Mojo, in `rowdot/`) computes
`x @ w.T` for a few rows of x by streaming w's rows once, spread over the
cores. Only the one-token decode graph uses it: `decode_kernels()` is active
while that graph is traced. Prefill keeps MAX's matmul, which is far better
for many rows, and so do non-float32 weights and accelerators.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).parent / "rowdot"
SWITCH = "ZOO_DECODE_KERNEL"  # set to 0 to decode with MAX's matmul (one graph per model)
_ACTIVE: ContextVar[bool] = ContextVar("zoo_decode_kernels", default=False)


@contextmanager
def decode_kernels() -> Iterator[None]:
    """Makes `linear` use the row-dot kernel while a decode graph is traced."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def applies(device: Any, dtype: Any) -> bool:
    """Whether models on `device` in `dtype` get the one-token decode graph with this kernel."""
    from max.dtype import DType

    return device.is_host and dtype == DType.float32 and os.environ.get(SWITCH, "1") != "0"


def linear(x: Any, weight: Any, bias: Any = 0) -> Any:
    """`x @ weight.T + bias`, through the row-dot kernel inside `decode_kernels()` on the CPU."""
    from max.dtype import DType

    if not (_ACTIVE.get() and x.device.is_host and x.dtype == DType.float32 == weight.dtype):
        return x @ weight.T + bias
    return _rowdot(x, weight) + bias


def _rowdot(x: Any, weight: Any) -> Any:
    from max.dtype import DType
    from max.experimental import functional as F
    from max.graph import DeviceRef, TensorType

    lead, k = list(x.shape[:-1]), x.shape[-1]
    rows = lead[0]
    for dim in lead[1:]:
        rows = rows * dim
    flat = x.reshape((rows, k))
    out_type = TensorType(DType.float32, (rows, weight.shape[0]), device=DeviceRef.from_device(x.device))
    (y,) = F.custom("zoo_rowdot", x.device, [flat, weight], [out_type])
    return y.reshape((*lead, weight.shape[0]))
