"""Llama 3 rope scaling in GGUF: llama.cpp's converter stores it as per-dimension frequency divisors
(the `rope_freqs` tensor), not as HF's parameters. Both ways here.

HF's llama3 rope divides each inverse frequency by 1 (short wavelengths), by `factor` (long ones)
or, in between, by 1 / ((1 - s) / factor + s) with s = (original / wavelength - low) / (high - low).
The stored divisors fix `factor` and the line s(1 / wavelength), which is all the computation
depends on: the parameters read back are the original ones when low_freq_factor was 1 (as in
every Llama 3 release), and an equivalent set otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from zoo.core.errors import UnsupportedModelError


def _wavelengths(dim: int, theta: float) -> np.ndarray:
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    return 2 * math.pi * (np.float32(theta) ** exponents).astype(np.float64)


def rope_factors(scaling: Mapping[str, Any], dim: int, theta: float) -> np.ndarray:
    """The float32 divisors llama.cpp's converter writes for HF llama3 rope parameters."""
    factor = float(scaling.get("factor", 8.0))
    low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
    original = float(scaling.get("original_max_position_embeddings", 8192))
    out = []
    for wavelength in _wavelengths(dim, theta):
        if wavelength < original / high:
            out.append(1.0)
        elif wavelength > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def llama3_scaling(divisors: np.ndarray, dim: int, theta: float) -> dict[str, Any]:
    """HF llama3 rope parameters that give these divisors."""
    f = np.asarray(divisors, dtype=np.float64)
    factor = float(f.max())
    if factor <= 1.0 + 1e-6:
        return {}
    medium = (f > 1.0 + 1e-6) & (f < factor * (1 - 1e-6))
    wavelengths = _wavelengths(dim, theta)
    if medium.sum() >= 2:
        smooth = (1 / f[medium] - 1 / factor) / (1 - 1 / factor)
        slope, intercept = np.polyfit(1 / wavelengths[medium], smooth, 1)  # s = a / wavelength - b
        a, b = float(slope), float(-intercept)
    else:
        # at most one smoothed dimension: edges inside the gaps that give its value will do
        short = wavelengths[f <= 1.0 + 1e-6]
        long = wavelengths[f >= factor * (1 - 1e-6)]
        high_edge = float(short.max()) if len(short) else float(wavelengths.min()) / 4
        low_edge = float(long.min()) if len(long) else float(wavelengths.max()) * 4
        if medium.any():
            w0 = float(wavelengths[medium][0])
            s0 = float((1 / f[medium][0] - 1 / factor) / (1 - 1 / factor))
            high = math.sqrt(max(high_edge, s0 * w0) * w0)  # above s0 * w0, so that low comes out positive
            low = 1 / ((1 / w0 - s0 / high) / (1 - s0))
        else:
            middle = math.sqrt(high_edge * low_edge)
            high, low = math.sqrt(high_edge * middle), math.sqrt(low_edge * middle)
        a = 1 / (1 / high - 1 / low)
        b = a / low
    if b <= 0:
        raise UnsupportedModelError(f"rope_freqs: the factors imply low_freq_factor <= 0 ({b:.3g})")
    low, high, original = 1.0, (b + 1) / b, a / b
    scaling = {"rope_type": "llama3", "factor": float(_tidy(factor)), "low_freq_factor": low,
               "high_freq_factor": float(_tidy(high)), "original_max_position_embeddings": _tidy(original)}
    if not np.allclose(rope_factors(scaling, dim, theta), f, rtol=1e-5, atol=0):
        raise UnsupportedModelError("rope_freqs: these factors are not Llama 3 rope scaling")
    return scaling


def _tidy(value: float) -> float | int:
    """A value within float32 noise of an integer (8192, 4.0) back to that integer."""
    nearest = round(value)
    return int(nearest) if abs(value - nearest) <= 1e-4 * max(1.0, abs(value)) else value
