"""Rotary frequencies from a HF config, including HF's rope-scaling variants (NumPy only, no MAX).

Supported rope types: default, linear, llama3 and longrope (Phi-3). Anything
else is refused with a one-line error rather than run wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.core.errors import UnsupportedModelError

SUPPORTED = ("default", "linear", "llama3", "longrope")


@dataclass(frozen=True)
class RotarySpec:
    """What the rotary block needs: inverse frequencies and the cos/sin scale.

    LongRoPE switches a sequence to `long_inv_freq` once any of its positions
    reaches `long_after`: the rotary block switches per row of a call, and the
    engine recomputes a sequence whose cache was filled on the short
    frequencies when it crosses (`ModelConfig.rope_switch_position`).
    """

    inv_freq: tuple[float, ...]
    attention_scaling: float = 1.0
    long_inv_freq: tuple[float, ...] | None = None
    long_after: int | None = None


def rope_settings(hf: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
    """(theta, scaling dict) from either the old (`rope_theta` + `rope_scaling`) or the
    transformers-5 (`rope_parameters`) layout. The scaling dict has `rope_type` unless default."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    if not isinstance(params, Mapping) or not isinstance(scaling, Mapping):
        from zoo.core.errors import ConfigError

        raise ConfigError("config.json: rope_parameters / rope_scaling must be JSON objects")
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    merged = {**scaling, **params}
    merged.pop("rope_theta", None)
    kind = merged.pop("rope_type", None)
    legacy = merged.pop("type", None)
    kind = legacy if kind is None else kind
    kind = "default" if kind is None else kind
    if kind == "longrope" and merged.get("original_max_position_embeddings") is None and hf.get("original_max_position_embeddings") is not None:
        merged["original_max_position_embeddings"] = hf["original_max_position_embeddings"]
    if not isinstance(kind, str) or kind not in SUPPORTED:
        from zoo.core.config import show

        raise UnsupportedModelError(f"rope scaling type {show(kind)} is not supported (supported: {', '.join(SUPPORTED)})")
    _check_fields(kind, merged)
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0 or not math.isfinite(theta):
        from zoo.core.errors import ConfigError

        raise ConfigError(f"config.json: rope_theta must be a positive number, got {theta!r}")
    return float(theta), ({} if kind == "default" else {"rope_type": kind, **merged})


# Per rope type: the fields it needs (and optional ones) and what each must be.
_FIELDS: dict[str, dict[str, tuple[bool, str]]] = {
    "linear": {"factor": (True, "positive")},
    "llama3": {
        "factor": (True, "positive"), "low_freq_factor": (True, "positive"), "high_freq_factor": (True, "positive"),
        # a length in HF's configs; GGUF's rope_freqs divisors can leave it any positive number
        "original_max_position_embeddings": (True, "positive"),
    },
    "longrope": {
        # the original context is config.json's top-level field in Phi-3 (the family supplies its default)
        "short_factor": (True, "factors"), "long_factor": (True, "factors"), "original_max_position_embeddings": (False, "count"),
        "factor": (False, "positive"), "attention_factor": (False, "positive"),
    },
}


def _check_fields(kind: str, scaling: Mapping[str, Any]) -> None:
    """Each field the rope type uses is present and a number of the right kind (one-line ConfigError)."""
    from zoo.core.config import show
    from zoo.core.errors import ConfigError

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    for name, (required, rule) in _FIELDS.get(kind, {}).items():
        value = scaling.get(name)
        if value is None:
            if required:
                raise ConfigError(f"config.json: {kind} rope scaling lacks {name!r}")
            continue
        if rule == "positive":
            ok = number(value) and value > 0
        elif rule == "count":
            ok = number(value) and float(value).is_integer() and 1 <= value <= (1 << 24)
        else:
            ok = isinstance(value, list) and len(value) > 0 and all(number(v) and v > 0 for v in value)
        if not ok:
            wanted = {"positive": "a positive number", "count": "a positive integer", "factors": "a list of positive numbers"}[rule]
            raise ConfigError(f"config.json: {kind} rope scaling {name} must be {wanted}, got {show(value)}")
    if kind == "llama3" and not scaling["high_freq_factor"] > scaling["low_freq_factor"]:
        raise ConfigError(
            f"config.json: llama3 rope scaling needs high_freq_factor ({scaling['high_freq_factor']}) "
            f"> low_freq_factor ({scaling['low_freq_factor']})"
        )


def check_spec(make: Any, kind: str) -> RotarySpec:
    """Runs `make()` (building a `RotarySpec`) and checks that every frequency and scale is finite and positive."""
    from zoo.core.errors import ConfigError

    try:
        with np.errstate(all="ignore"):
            spec = make()
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ConfigError(f"config.json: {kind} rope scaling is malformed ({type(error).__name__}: {error})") from None
    values = [*spec.inv_freq, *(spec.long_inv_freq or ()), spec.attention_scaling]
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"config.json: {kind} rope scaling gives non-finite or non-positive rotary frequencies")
    return spec


def _base_inv_freq(dim: int, theta: float) -> np.ndarray:
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    return (1.0 / (np.float32(theta) ** exponents)).astype(np.float32)


def rope_inv_freq(dim: int, theta: float, scaling: Mapping[str, Any] | None = None, max_position: int | None = None) -> np.ndarray:
    """Inverse frequencies (dim/2,) in float32 as transformers computes them (LongRoPE: the short factors)."""
    return np.asarray(rotary_spec(dim, theta, scaling, max_position).inv_freq, dtype=np.float32)


def rotary_spec(dim: int, theta: float, scaling: Mapping[str, Any] | None = None, max_position: int | None = None) -> RotarySpec:
    """The rotary parameters for `dim` rotating dimensions under `scaling`."""
    scaling = dict(scaling or {})
    kind = scaling.get("rope_type", "default")
    base = _base_inv_freq(dim, theta)
    try:
        if kind == "default":
            return RotarySpec(tuple(base.tolist()))
        if kind == "linear":
            return RotarySpec(tuple((base / np.float32(scaling["factor"])).astype(np.float32).tolist()))
        if kind == "llama3":
            return RotarySpec(tuple(_llama3(base, scaling).tolist()))
        if kind == "longrope":
            return _longrope(dim, theta, scaling, max_position)
    except KeyError as missing:
        from zoo.core.errors import ConfigError

        raise ConfigError(f"config.json: {kind} rope scaling lacks {missing.args[0]!r}") from None
    raise UnsupportedModelError(f"rope scaling type {kind!r} is not supported (supported: {', '.join(SUPPORTED)})")


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


def _longrope(dim: int, theta: float, scaling: Mapping[str, Any], max_position: int | None) -> RotarySpec:
    original = int(scaling["original_max_position_embeddings"])
    factor = scaling.get("factor")
    if factor is None:
        factor = (max_position or original) / original
    attention = scaling.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    shape = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    powers = np.float32(theta) ** shape

    def inv(factors: Any) -> tuple[float, ...]:
        ext = np.asarray(factors, dtype=np.float32)
        if ext.shape != powers.shape:
            from zoo.core.errors import ConfigError

            raise ConfigError(f"config.json: longrope factors need {powers.shape[0]} values, got {ext.shape}")
        return tuple((1.0 / (ext * powers)).astype(np.float32).tolist())

    return RotarySpec(inv(scaling["short_factor"]), float(attention), inv(scaling["long_factor"]), original)
