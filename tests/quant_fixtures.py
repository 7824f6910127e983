"""Encoded weights for tests: real encodings where the `gguf` package has an encoder, random
valid blocks (small scales, every quant and scale bit random) where it has none."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from zoo.core.checkpoints.quantized import ENCODINGS, QuantizedWeight

ALL_ENCODINGS = ("bf16", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs")


def _halves(rng: np.random.Generator, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    """float16 values in [low, high) as their two bytes, shape (*shape, 2)."""
    return rng.uniform(low, high, size=shape).astype(np.float16).view(np.uint8).reshape(*shape, 2)


def random_encoded(encoding: str, rows: int, cols: int, rng: np.random.Generator, scale: float = 0.2) -> QuantizedWeight:
    """A (rows, cols) weight in `encoding` whose values are of about `scale`."""
    if encoding in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "bf16"):
        return QuantizedWeight.quantize(rng.normal(0.0, scale, size=(rows, cols)).astype(np.float32), encoding)
    if encoding == "f16":
        data = rng.normal(0.0, scale, size=(rows, cols)).astype(np.float16).view(np.uint8)
        return QuantizedWeight("f16", (rows, cols), data.reshape(rows, cols * 2))
    values, nbytes = ENCODINGS[encoding]
    blocks = (rows, cols // values)
    data = rng.integers(0, 256, size=(*blocks, nbytes), dtype=np.uint8)
    if encoding == "q6_k":  # value = d * scale * (q - 32), int8 scales, q in 0..63
        data[..., 192:208] = rng.integers(-8, 9, size=(*blocks, 16)).astype(np.int8).view(np.uint8)
        data[..., 208:210] = _halves(rng, blocks, scale / 100, scale / 50)
    elif encoding == "q2_k":  # value = d * sc * q - dmin * m, 4-bit sc and m, q in 0..3
        data[..., 80:82] = _halves(rng, blocks, scale / 90, scale / 45)
        data[..., 82:84] = _halves(rng, blocks, scale / 400, scale / 200)
    elif encoding == "q3_k":  # value = d * (scale - 32) * (q - 4), 6-bit scales, q in 0..7
        data[..., 108:110] = _halves(rng, blocks, scale / 400, scale / 200)
    elif encoding == "iq4_nl":  # value = d * table[q], table values in -127..113
        data[..., 0:2] = _halves(rng, blocks, scale / 200, scale / 100)
    elif encoding == "iq4_xs":  # value = d * (scale - 32) * table[q], 6-bit scales
        data[..., 0:2] = _halves(rng, blocks, scale / 6000, scale / 3000)
    else:  # value = d * sc * q - dmin * m, 6-bit sc and m, q in 0..15 (0..31 for q5_k)
        levels = 15 if encoding == "q4_k" else 31
        data[..., 0:2] = _halves(rng, blocks, scale / (20 * levels), scale / (10 * levels))
        data[..., 2:4] = _halves(rng, blocks, scale / 400, scale / 200)
    return QuantizedWeight(encoding, (rows, cols), data.reshape(rows, -1))


# encodings zoo's kernel multiplies in integers against x quantized to 8 bits
INTEGER_DOT_ENCODINGS = ("q8_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs")


def quantized_activations(x: np.ndarray) -> np.ndarray:
    """The values zoo's kernel multiplies for x under `INTEGER_DOT_ENCODINGS` (float64):
    llama.cpp's Q8_0 activations, blocks of 32 along the last axis with q = round(x * 127 / max|x|)
    (ties to even) and scale max|x| / 127, both computed in float32."""
    blocks = x.astype(np.float32).reshape(*x.shape[:-1], -1, 32)
    amax = np.abs(blocks).max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        inverse = np.where(amax > 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.rint(blocks * inverse)
    scale = amax / np.float32(127)
    return (q.astype(np.float64) * scale.astype(np.float64)).reshape(x.shape)


def bf16_rounded(x: np.ndarray) -> np.ndarray:
    """float32 x rounded to the nearest bfloat16 (ties to even), as float64."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return rounded.view(np.float32).astype(np.float64)


@contextmanager
def quantized_reference(hf: Any, modules: list[Any]) -> Iterator[Any]:
    """`hf` with the input rows of `modules` through `quantized_activations`, as zoo's kernel
    multiplies `INTEGER_DOT_ENCODINGS` weights in every graph (prefill and decode). Yields what to call in
    place of hf."""
    import torch

    def quantize(module: Any, args: tuple) -> tuple:
        x = args[0]
        return (torch.from_numpy(quantized_activations(x.detach().numpy())).to(x.dtype), *args[1:])

    handles = [module.register_forward_pre_hook(quantize) for module in modules]
    try:
        yield hf
    finally:
        for handle in handles:
            handle.remove()
