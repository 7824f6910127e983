"""The projection every block uses: MAX's `Linear`, with zoo's decode kernel on the CPU."""

from __future__ import annotations

from max.experimental.nn import Linear
from max.experimental.tensor import Tensor

from . import kernels


class Projection(Linear):
    """MAX's `Linear` (same parameters and names), whose matmul takes zoo's row-dot
    kernel when traced for the one-token decode graph on the CPU."""

    def forward(self, x: Tensor) -> Tensor:
        return kernels.linear(x, self.weight, self.bias if isinstance(self.bias, Tensor) else None)
