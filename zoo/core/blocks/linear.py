"""The projection every block uses (MAX's `Linear`, with zoo's decode kernel on the CPU),
and the token embedding; both can hold their weight in a low-precision encoding."""

from __future__ import annotations

from typing import Any

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Embedding, Linear
from max.experimental.tensor import Tensor

from zoo.core.checkpoints.quantized import QuantizedWeight, StackedRows, parts_of

from . import kernels
from .kernels.repack import MAX_ENCODINGS, ROW_MULTIPLE, max_matmul_applies, repack


def split_for_max_matmul(weight: QuantizedWeight | StackedRows) -> QuantizedWeight | StackedRows:
    """`weight` with each part in an encoding MAX's quantized matmul takes, but of a row count
    it does not (a vocabulary of 50257), cut after its last multiple of 32 rows: the rows above
    run on MAX's matmul, the few left on zoo's kernel."""
    held: list[Any] = []
    for part in parts_of(weight):
        rows = int(part.shape[0])
        if isinstance(part, QuantizedWeight) and part.encoding in MAX_ENCODINGS and rows > ROW_MULTIPLE and rows % ROW_MULTIPLE:
            cut = rows // ROW_MULTIPLE * ROW_MULTIPLE
            held += [part.rows(0, cut), part.rows(cut, rows)]
        else:
            held.append(part)
    return held[0] if len(held) == 1 else StackedRows(tuple(held))


def part_name(name: str, index: int) -> str:
    """The parameter holding part `index` of a weight held in parts (`weight`, `weight_1`, ...)."""
    return name if index == 0 else f"{name}_{index}"


class EncodedWeight:
    """A module whose `weight` may be kept encoded: `encoding` is None for a float weight,
    else the encoding of `QuantizedWeight` rows held raw (uint8) in `weight`. A fused weight
    whose row groups differ in encoding (`StackedRows`) is held in parts: `weight`,
    `weight_1`, ..., with `part_encodings` (None for a float part)."""

    encoding: str | None = None
    part_encodings: tuple[str | None, ...] = ()

    def layout(self, weight: QuantizedWeight | StackedRows) -> QuantizedWeight | StackedRows:
        """How the module holds `weight`: as given here."""
        return weight

    def hold_encoded(self, weight: QuantizedWeight | StackedRows) -> None:
        """Makes `weight` (of this module's logical shape) the module's weight, kept encoded.
        Call under `F.lazy()` on the target device, before compiling."""
        weight = self.layout(weight)
        if isinstance(weight, QuantizedWeight):
            self.encoding = weight.encoding
            self.weight = Tensor.zeros(list(weight.data.shape), dtype=DType.uint8)
            return
        encodings = []
        for index, part in enumerate(weight.parts):
            encoded = isinstance(part, QuantizedWeight)
            encodings.append(part.encoding if encoded else None)
            value = Tensor.zeros(list(part.data.shape), dtype=DType.uint8) if encoded else Tensor.zeros(list(part.shape))
            setattr(self, part_name("weight", index), value)
        self.part_encodings = tuple(encodings)

    def packs(self, weight: QuantizedWeight) -> bool:
        """Whether the graph takes `weight` repacked for MAX's quantized matmul (not here:
        the rows stay as stored)."""
        return False

    def held_values(self, name: str, weight: QuantizedWeight | StackedRows, as_float: Any) -> dict[str, Any]:
        """What the compiled graph takes for the encoded weight `name`: its rows (repacked
        where `packs`), per part for `StackedRows` (float parts through `as_float`)."""
        weight = self.layout(weight)
        return {
            part_name(name, i): (self._repacked(part) if self.packs(part) else part.data)
            if isinstance(part, QuantizedWeight) else as_float(part)
            for i, part in enumerate(parts_of(weight))
        }

    @staticmethod
    def _repacked(part: QuantizedWeight) -> Any:
        """`part`'s rows repacked; the stored rows, no longer needed, give back their file pages."""
        from zoo.core.weight_arena import release_pages

        packed = repack(part.data, part.encoding)
        release_pages(part.data)
        return packed


class Projection(EncodedWeight, Linear):
    """MAX's `Linear` (same parameters and names), whose matmul takes zoo's row-dot
    kernel when traced for the one-token decode graph on the CPU. `activation`
    ("gelu_tanh") is applied to the output, fused into the kernel where it can be."""

    def packs(self, weight: QuantizedWeight) -> bool:
        return max_matmul_applies(weight.encoding, weight.shape[0])

    def layout(self, weight: QuantizedWeight | StackedRows) -> QuantizedWeight | StackedRows:
        return split_for_max_matmul(weight)

    def forward(self, x: Tensor, activation: str | None = None) -> Tensor:
        bias = self.bias if isinstance(self.bias, Tensor) else None
        if not self.part_encodings:
            return self._product(x, self.weight, self.encoding, bias, activation)
        parts = [
            self._product(x, getattr(self, part_name("weight", i)), encoding)
            for i, encoding in enumerate(self.part_encodings)
        ]
        return kernels.with_bias_activation(F.concat(parts, axis=-1), bias, activation)

    @staticmethod
    def _product(x: Tensor, weight: Tensor, encoding: str | None, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
        packed = max_matmul_applies(encoding, int(weight.shape[0]))
        return kernels.linear(x, weight, bias, activation, encoding, packed=packed)


class TokenEmbedding(EncodedWeight, Embedding):
    """MAX's `Embedding` (a 2-D table); an encoded table decodes only the rows looked up.
    `project` multiplies by the table's transpose (tied output projection)."""

    def forward(self, indices: Tensor) -> Tensor:
        return kernels.embed(indices, self.weight, self.encoding)

    def project(self, x: Tensor) -> Tensor:
        return kernels.linear(x, self.weight, encoding=self.encoding)
