"""Weights kept in a low-precision encoding (GGML block formats and bfloat16) instead of float32.

A `QuantizedWeight` is a 2-D weight of logical shape (rows, cols) whose rows are
stored as GGML blocks along the columns, raw bytes per row. Rows are
independent, so weight mappers can concatenate, slice and permute rows
(fused q/k/v, gate/up) without decoding. Dequantizing is NumPy (the `gguf`
package's reference decoders). Rows fused from parts in different encodings
(llama.cpp's Q4_K_M keeps v in Q6_K beside Q4_K q and k) are `StackedRows`:
each part stays in its own encoding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.core.errors import WeightsError

from .arrays import as_float_array

# encoding -> (values per block, bytes per block)
ENCODINGS: dict[str, tuple[int, int]] = {
    "bf16": (1, 2),
    "f16": (1, 2),
    "q8_0": (32, 34),
    "q4_0": (32, 18),
    "q4_1": (32, 20),
    "q5_0": (32, 22),
    "q5_1": (32, 24),
    "q2_k": (256, 84),
    "q3_k": (256, 110),
    "q4_k": (256, 144),
    "q5_k": (256, 176),
    "q6_k": (256, 210),
    "iq4_nl": (32, 18),
    "iq4_xs": (256, 136),
}

# encodings zoo runs but cannot write (the `gguf` package has no encoder for them, nor has zoo)
DECODE_ONLY = ("q2_k", "q3_k", "iq4_nl", "iq4_xs")


# llama-quantize's encoding for rows that do not fit a K-quant's 256-value blocks
_FALLBACK = {"q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0"}


def fitting_encoding(encoding: str, columns: int) -> str | None:
    """`encoding`, or what llama-quantize falls back to when rows of `columns` values do not
    fit its blocks (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0); None where no block fits
    (llama.cpp then writes F16)."""
    while columns % ENCODINGS[encoding][0]:
        if encoding not in _FALLBACK:
            return None
        encoding = _FALLBACK[encoding]
    return encoding


ENCODE_ROWS = 32  # rows a thread encodes at a time: its temporaries stay in the cache


def _encode_by_rows(array: np.ndarray, encode: Callable[[np.ndarray], np.ndarray], row_bytes: int) -> np.ndarray:
    """uint8 (rows, row_bytes): `encode` of `array`, run on runs of `ENCODE_ROWS` rows on every
    core (the encoders are NumPy, which lets go of the GIL in its loops). Each row's blocks
    are encoded on their own, so the bytes are those of one call over the whole array."""
    out = np.empty((array.shape[0], row_bytes), dtype=np.uint8)

    def encode_run(start: int) -> None:
        out[start : start + ENCODE_ROWS] = encode(array[start : start + ENCODE_ROWS]).reshape(-1, row_bytes)

    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        list(pool.map(encode_run, range(0, array.shape[0], ENCODE_ROWS)))
    return out


def _ggml_type(encoding: str) -> object:
    from gguf import GGMLQuantizationType

    return GGMLQuantizationType[encoding.upper()]


@dataclass(frozen=True, eq=False)
class QuantizedWeight:
    """A (rows, cols) weight stored as raw GGML rows: `data` is uint8 (rows, bytes_per_row)."""

    encoding: str
    shape: tuple[int, int]
    data: np.ndarray

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise WeightsError(f"unknown weight encoding {self.encoding!r} (known: {', '.join(ENCODINGS)})")
        rows, cols = self.shape
        block_values, block_bytes = ENCODINGS[self.encoding]
        if cols % block_values:
            raise WeightsError(f"{self.encoding} needs rows of a multiple of {block_values} values, got {cols}")
        if self.data.dtype != np.uint8 or self.data.shape != (rows, cols // block_values * block_bytes):
            raise WeightsError(f"{self.encoding} data of shape {self.data.shape} does not hold a {self.shape} weight")

    @property
    def ndim(self) -> int:
        return 2

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @classmethod
    def quantize(cls, array: np.ndarray, encoding: str) -> "QuantizedWeight":
        """Encodes a float (rows, cols) array: K-quants with zoo's encoders (`kquants`), the rest
        with the `gguf` package's."""
        from gguf.quants import quantize

        array = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        if encoding not in ENCODINGS or encoding in DECODE_ONLY:
            raise WeightsError(f"no {encoding} encoder available")
        block_values, block_bytes = ENCODINGS[encoding]
        if array.ndim != 2 or array.shape[1] % block_values:
            raise WeightsError(f"{encoding} needs rows of a multiple of {block_values} values, got shape {array.shape}")
        if encoding in ("q4_k", "q5_k", "q6_k"):
            from .kquants import quantize_k

            def encode(rows: np.ndarray) -> np.ndarray:
                return quantize_k(rows, encoding)
        else:  # the gguf package encodes every other encoding zoo has
            def encode(rows: np.ndarray) -> np.ndarray:
                return quantize(rows, _ggml_type(encoding)).view(np.uint8)
        rows, cols = (int(d) for d in array.shape)
        return cls(encoding, (rows, cols), _encode_by_rows(array, encode, cols // block_values * block_bytes))

    def dequantize(self) -> np.ndarray:
        """The float32 (rows, cols) values."""
        from gguf.quants import dequantize

        return np.asarray(dequantize(self.data, _ggml_type(self.encoding)), dtype=np.float32).reshape(self.shape)

    def rows(self, start: int, stop: int) -> "QuantizedWeight":
        return QuantizedWeight(self.encoding, (stop - start, self.shape[1]), self.data[start:stop])

    def take_rows(self, order: Sequence[int] | np.ndarray) -> "QuantizedWeight":
        order = np.asarray(order)
        return QuantizedWeight(self.encoding, (len(order), self.shape[1]), np.ascontiguousarray(self.data[order]))

    @staticmethod
    def concat_rows(parts: Sequence["QuantizedWeight"]) -> "QuantizedWeight":
        encodings = {p.encoding for p in parts}
        if len(encodings) != 1 or len({p.shape[1] for p in parts}) != 1:
            raise WeightsError("cannot fuse weights of different encodings or widths")
        from zoo.core.weight_arena import release_pages

        data = np.concatenate([p.data for p in parts], axis=0)
        release_pages(*(part.data for part in parts))  # the joined copy replaces them
        return QuantizedWeight(parts[0].encoding, (int(data.shape[0]), parts[0].shape[1]), data)


@dataclass(frozen=True, eq=False)
class StackedRows:
    """A fused (rows, cols) weight whose row groups keep different encodings: `parts`, top
    to bottom, are `QuantizedWeight`s or float (rows, cols) arrays/tensors of equal width."""

    parts: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len({int(p.shape[1]) for p in self.parts}) != 1:
            raise WeightsError("cannot fuse weights of different widths")

    @property
    def shape(self) -> tuple[int, int]:
        return (sum(int(p.shape[0]) for p in self.parts), int(self.parts[0].shape[1]))

    @property
    def ndim(self) -> int:
        return 2

    def dequantize(self) -> np.ndarray:
        """The float32 (rows, cols) values."""
        return np.concatenate([as_float32(p) for p in self.parts], axis=0)


def parts_of(weight: Any) -> tuple[Any, ...]:
    """The row groups of a weight: a `StackedRows`' parts, else the weight alone."""
    return weight.parts if isinstance(weight, StackedRows) else (weight,)


def as_float32(weight: Any) -> np.ndarray:
    """A float32 NumPy copy of an encoded, stacked or float weight."""
    if isinstance(weight, (QuantizedWeight, StackedRows)):
        return weight.dequantize()
    return as_float_array(weight)


def stack_rows(parts: Sequence[Any]) -> Any:
    """Fuses row groups: one `QuantizedWeight` when all share an encoding, else `StackedRows`
    (nested stacks flattened, neighbouring parts of one encoding joined)."""
    flat: list[Any] = []
    for part in parts:
        for piece in parts_of(part):
            last = flat[-1] if flat else None
            if isinstance(piece, QuantizedWeight) and isinstance(last, QuantizedWeight) and last.encoding == piece.encoding:
                flat[-1] = QuantizedWeight.concat_rows([last, piece])
            else:
                flat.append(piece)
    return flat[0] if len(flat) == 1 else StackedRows(tuple(flat))
