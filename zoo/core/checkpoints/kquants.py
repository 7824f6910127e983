"""GGML's K-quant encoders (Q4_K, Q5_K, Q6_K) in NumPy, which the `gguf` package lacks.

Each works on super-blocks of 256 values and follows the reference encoder of
ggml (the one llama-quantize uses without an importance matrix):

- Q4_K / Q5_K: 8 sub-blocks of 32 values, each x ~ d * sc * q - dmin * m with
  q in 0..15 (0..31), sc and m 6-bit; each sub-block's (scale, min) comes from
  a weighted least-squares search over 20 (15) trial scales; d and dmin are
  float16. Block bytes: d, dmin, 12 bytes of packed scales/mins, (Q5_K: 32
  bytes of fifth bits,) 128 bytes of nibbles.
- Q6_K: 16 sub-blocks of 16 values, x ~ d * sc * q with q in -32..31 and sc an
  int8; each sub-block's scale from a search over 19 trial scales weighted by
  x^2. Block bytes: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16
  scales, d.

All blocks are encoded at once (vectorised over rows), in float32 like ggml.
"""

from __future__ import annotations

import numpy as np

QK_K = 256
BLOCK_BYTES = {"q4_k": 144, "q5_k": 176, "q6_k": 210}


def quantize_k(array: np.ndarray, encoding: str) -> np.ndarray:
    """Encodes a float (rows, cols) array, cols a multiple of 256: uint8 (rows, cols / 256 * block
    bytes). Its temporaries are a few times the array: callers hand it a few rows at a time."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    rows, cols = array.shape
    if cols % QK_K:
        raise ValueError(f"{encoding} needs rows of a multiple of {QK_K} values, got {cols}")
    encode = {"q4_k": _q4_k, "q5_k": _q5_k, "q6_k": _q6_k}[encoding]
    return encode(array.reshape(-1, QK_K)).reshape(rows, -1)


def _rint(x: np.ndarray) -> np.ndarray:
    """ggml's nearest_int: round half to even."""
    return np.rint(x)


def _scale_min_search(x: np.ndarray, w: np.ndarray, nmax: int, rmin: float, rdelta: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sub-block (last axis) scale and min (x ~ scale * q - min, q in 0..nmax) minimising the
    weighted squared error: the plain min/max fit, then `steps + 1` nudged scales, each refitted
    by weighted least squares."""
    low = np.minimum(x.min(axis=-1), 0.0)
    high = x.max(axis=-1)
    span = high - low
    flat = span <= 0
    span = np.where(flat, 1.0, span).astype(np.float32)
    sum_w = w.sum(axis=-1)
    sum_x = (w * x).sum(axis=-1)

    iscale = np.float32(nmax) / span
    q = np.clip(_rint(iscale[..., None] * (x - low[..., None])), 0, nmax)
    scale = (1.0 / iscale).astype(np.float32)
    best_low = low.copy()
    best = (w * (scale[..., None] * q + low[..., None] - x) ** 2).sum(axis=-1)
    for step in range(steps + 1):
        # as ggml does, each trial starts from the best min found so far
        span = np.where(flat, 1.0, high - best_low).astype(np.float32)
        trial = (np.float32(rmin) + np.float32(rdelta) * np.float32(step) + np.float32(nmax)) / span
        q = np.clip(_rint(trial[..., None] * (x - best_low[..., None])), 0, nmax)
        sum_l = (w * q).sum(axis=-1)
        sum_l2 = (w * q * q).sum(axis=-1)
        sum_xl = (w * q * x).sum(axis=-1)
        det = sum_w * sum_l2 - sum_l * sum_l
        safe = np.where(det > 0, det, 1.0)
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / safe
        this_low = (sum_l2 * sum_x - sum_l * sum_xl) / safe
        positive = this_low > 0
        this_low = np.where(positive, 0.0, this_low)
        this_scale = np.where(positive, sum_xl / np.where(sum_l2 > 0, sum_l2, 1.0), this_scale)
        error = (w * (this_scale[..., None] * q + this_low[..., None] - x) ** 2).sum(axis=-1)
        better = (det > 0) & (error < best)
        best = np.where(better, error, best)
        scale = np.where(better, this_scale, scale).astype(np.float32)
        best_low = np.where(better, this_low, best_low).astype(np.float32)
    scale = np.where(flat, 0.0, scale).astype(np.float32)
    return scale, (-best_low).astype(np.float32)


def _super_scales(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """6-bit codes of the per-sub-block values and their float16 super-block step."""
    top = values.max(axis=-1)
    inverse = np.where(top > 0, np.float32(63) / np.where(top > 0, top, np.float32(1)), np.float32(0))
    codes = np.minimum(63, _rint(inverse[..., None] * values)).astype(np.uint8)
    return codes, (top / np.float32(63)).astype(np.float16)


def _pack_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """The 12 bytes holding eight 6-bit scales and eight 6-bit mins (ggml's get_scale_min_k4 layout)."""
    packed = np.empty((sc.shape[0], 12), dtype=np.uint8)
    packed[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    packed[:, 4:8] = mn[:, 0:4] | ((mn[:, 4:8] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:8] & 0xF) | ((mn[:, 4:8] & 0xF) << 4)
    return packed


def _asymmetric(blocks: np.ndarray, nmax: int, rmin: float, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q4_K/Q5_K quants (n, 256), with d/dmin bytes and packed scales."""
    x = blocks.reshape(-1, 8, 32)
    weights = np.sqrt((x * x).mean(axis=-1, keepdims=True)) + np.abs(x)
    scales, mins = _scale_min_search(x, weights, nmax, rmin, 0.1, steps)
    sc, d = _super_scales(scales)
    mn, dmin = _super_scales(mins)
    step = d.astype(np.float32)[:, None] * sc
    offset = dmin.astype(np.float32)[:, None] * mn
    safe = np.where(step != 0, step, 1.0)
    q = np.where(step[..., None] != 0, np.clip(_rint((x + offset[..., None]) / safe[..., None]), 0, nmax), 0)
    head = np.concatenate([d.reshape(-1, 1).view(np.uint8), dmin.reshape(-1, 1).view(np.uint8), _pack_scales(sc, mn)], axis=1)
    return q.astype(np.uint8).reshape(-1, QK_K), head, sc


def _nibbles(q: np.ndarray) -> np.ndarray:
    """128 bytes per block: for each 64 values, value l in the low and l + 32 in the high nibble."""
    q = q.reshape(-1, 4, 2, 32) & 0xF
    return (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(-1, 128).astype(np.uint8)


def _q4_k(blocks: np.ndarray) -> np.ndarray:
    q, head, _ = _asymmetric(blocks, 15, -1.0, 20)
    return np.concatenate([head, _nibbles(q)], axis=1)


def _q5_k(blocks: np.ndarray) -> np.ndarray:
    q, head, _ = _asymmetric(blocks, 31, -0.5, 15)
    high = (q >> 4).reshape(-1, 4, 2, 32)  # chunk c: bit 2c for value l, bit 2c + 1 for value l + 32
    shifts = (2 * np.arange(4)).reshape(1, 4, 1)
    qh = ((high[:, :, 0] << shifts) | (high[:, :, 1] << (shifts + 1))).sum(axis=1).astype(np.uint8)
    return np.concatenate([head, qh, _nibbles(q)], axis=1)


def _symmetric_scales(x: np.ndarray, nmax: int) -> np.ndarray:
    """Per sub-block scale of x ~ scale * q, q in -nmax..nmax-1, weighted by x^2, best of 19 trials."""
    index = np.abs(x).argmax(axis=-1)
    peak = np.take_along_axis(x, index[..., None], axis=-1)[..., 0]
    zero = np.abs(peak) < 1e-15
    peak = np.where(zero, 1.0, peak).astype(np.float32)
    w = x * x

    def fit(iscale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.clip(_rint(iscale[..., None] * x), -nmax, nmax - 1)
        return (w * x * q).sum(axis=-1), (w * q * q).sum(axis=-1)

    sum_lx, sum_l2 = fit((-nmax / peak).astype(np.float32))
    scale = np.where(sum_l2 > 0, sum_lx / np.where(sum_l2 > 0, sum_l2, 1.0), 0.0)
    best = scale * sum_lx
    for step in range(-9, 10):
        if step == 0:
            continue
        sum_lx, sum_l2 = fit((-(nmax + 0.1 * step) / peak).astype(np.float32))
        better = (sum_l2 > 0) & (sum_lx * sum_lx > best * sum_l2)
        trial = sum_lx / np.where(sum_l2 > 0, sum_l2, 1.0)
        scale = np.where(better, trial, scale)
        best = np.where(better, trial * sum_lx, best)
    return np.where(zero, 0.0, scale).astype(np.float32)


def _q6_k(blocks: np.ndarray) -> np.ndarray:
    x = blocks.reshape(-1, 16, 16)
    scales = _symmetric_scales(x, 32)
    index = np.abs(scales).argmax(axis=-1)
    top = np.take_along_axis(scales, index[:, None], axis=-1)[:, 0]
    empty = np.abs(top) < 1e-15
    iscale = np.where(empty, 0.0, -128.0 / np.where(empty, 1.0, top)).astype(np.float32)
    d = np.where(empty, 0.0, 1.0 / np.where(empty, 1.0, iscale)).astype(np.float16)
    sc = np.minimum(127, _rint(iscale[:, None] * scales)).astype(np.int8)
    step = d.astype(np.float32)[:, None] * sc
    safe = np.where(step != 0, step, 1.0)
    q = np.where(step[..., None] != 0, np.clip(_rint(x / safe[..., None]), -32, 31), 0) + 32
    q = q.astype(np.uint8).reshape(-1, 2, 4, 32)  # halves of 128, quarters of 32
    ql = np.concatenate([q[:, :, 0] & 0xF | ((q[:, :, 2] & 0xF) << 4), q[:, :, 1] & 0xF | ((q[:, :, 3] & 0xF) << 4)], axis=2)
    qh = (q[:, :, 0] >> 4) | ((q[:, :, 1] >> 4) << 2) | ((q[:, :, 2] >> 4) << 4) | ((q[:, :, 3] >> 4) << 6)
    return np.concatenate([ql.reshape(-1, 128), qh.reshape(-1, 64), sc.view(np.uint8), d.reshape(-1, 1).view(np.uint8)], axis=1)
