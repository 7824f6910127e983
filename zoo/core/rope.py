"""Rotary inverse frequencies from a HF config, including HF's rope-scaling variants.

Supported `rope_scaling`/`rope_parameters` types: default, linear, llama3.
Anything else is refused with a clear error rather than run wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import ZooError


def rope_settings(hf: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
    """(theta, scaling dict) from either the old or the transformers-5 config layout."""
    params = dict(hf.get("rope_parameters") or {})
    scaling = dict(hf.get("rope_scaling") or {})
    theta = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
    merged = {**scaling, **params}
    merged.pop("rope_theta", None)
    return theta, merged


def rope_inv_freq(head_dim: int, theta: float, scaling: Mapping[str, Any] | None = None) -> np.ndarray:
    """Inverse frequencies (head_dim/2,) in float32, as transformers computes them."""
    base = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    base = base.astype(np.float32)
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default")) or "default"
    if kind == "default":
        return base
    if kind == "linear":
        return (base / float(scaling["factor"])).astype(np.float32)
    if kind == "llama3":
        return _llama3(base, scaling)
    raise ZooError(f"rope scaling type {kind!r} is not supported (supported: default, linear, llama3)")


def _llama3(inv_freq: np.ndarray, scaling: Mapping[str, Any]) -> np.ndarray:
    factor = float(scaling["factor"])
    low = float(scaling["low_freq_factor"])
    high = float(scaling["high_freq_factor"])
    original = float(scaling["original_max_position_embeddings"])
    low_wavelen = original / low
    high_wavelen = original / high
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)
