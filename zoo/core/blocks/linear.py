"""The projection every block uses (MAX's `Linear`, with zoo's decode kernel on the CPU),
and the token embedding; both can hold their weight in a low-precision encoding."""

from __future__ import annotations

from typing import TYPE_CHECKING

from max.dtype import DType
from max.experimental.nn import Embedding, Linear
from max.experimental.tensor import Tensor

from . import kernels

if TYPE_CHECKING:
    from zoo.core.checkpoints.quantized import QuantizedWeight


class EncodedWeight:
    """A module whose `weight` may be kept encoded (`QuantizedWeight`): `encoding` is None
    for a float weight, else the encoding, and `weight` is then the raw uint8 rows."""

    encoding: str | None = None

    def hold_encoded(self, weight: QuantizedWeight) -> None:
        """Makes `weight` (of this module's logical shape) the module's weight, kept encoded.
        Call under `F.lazy()` on the target device, before compiling."""
        self.encoding = weight.encoding
        self.weight = Tensor.zeros(list(weight.data.shape), dtype=DType.uint8)


class Projection(EncodedWeight, Linear):
    """MAX's `Linear` (same parameters and names), whose matmul takes zoo's row-dot
    kernel when traced for the one-token decode graph on the CPU. `activation`
    ("gelu_tanh") is applied to the output, fused into the kernel where it can be."""

    def forward(self, x: Tensor, activation: str | None = None) -> Tensor:
        bias = self.bias if isinstance(self.bias, Tensor) else None
        return kernels.linear(x, self.weight, bias, activation, self.encoding)


class TokenEmbedding(EncodedWeight, Embedding):
    """MAX's `Embedding` (a 2-D table); an encoded table decodes only the rows looked up.
    `project` multiplies by the table's transpose (tied output projection)."""

    def forward(self, indices: Tensor) -> Tensor:
        return kernels.embed(indices, self.weight, self.encoding)

    def project(self, x: Tensor) -> Tensor:
        return kernels.linear(x, self.weight, encoding=self.encoding)
