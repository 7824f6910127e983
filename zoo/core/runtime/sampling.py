"""Sampling options and host-side logits processors (NumPy).

The processors follow transformers' definitions and order: repetition
penalty, then temperature, top-k, top-p and min-p, then a draw from the
softmax. Only the last position's logits ever reach the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from zoo.core.errors import OptionsError


class SamplingOptions(BaseModel):
    """How to pick each next token. Temperature 0 or `greedy` means argmax.

    The one definition of the sampling options and their defaults: the CLI's
    flags and the Python API's keywords have these names (`--max-new-tokens`,
    `max_new_tokens=`). Build it with `create` to get an `OptionsError` for a
    bad value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: int = 50
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    greedy: bool = False
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False

    @classmethod
    def create(cls, **values: object) -> "SamplingOptions":
        """Options from keywords (None means the default), checked; bad names and values are OptionsErrors."""
        from pydantic import ValidationError

        given = {k: v for k, v in values.items() if v is not None}
        if isinstance(given.get("stop"), str):
            given["stop"] = (given["stop"],)
        try:
            return cls(**given).check()
        except ValidationError as error:
            first = error.errors()[0]
            name = ".".join(str(p) for p in first.get("loc", ())) or "option"
            flag = "--" + name.replace("_", "-")
            if first.get("type") == "extra_forbidden":
                raise OptionsError(f"unknown sampling option {name!r} (known: {', '.join(cls.model_fields)})") from None
            raise OptionsError(f"{flag}: {first.get('msg')} (got {first.get('input')!r})") from None

    def check(self) -> "SamplingOptions":
        """Raises a ZooError for options out of range; returns self."""
        if self.max_new_tokens < 1:
            raise OptionsError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if not (self.temperature >= 0.0 and np.isfinite(self.temperature)):
            raise OptionsError(f"--temperature must be a finite number >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise OptionsError(f"--top-k must be at least 1, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise OptionsError(f"--top-p must be in (0, 1], got {self.top_p}")
        if not 0.0 <= self.min_p <= 1.0:
            raise OptionsError(f"--min-p must be in [0, 1], got {self.min_p}")
        if not (self.repetition_penalty > 0.0 and np.isfinite(self.repetition_penalty)):
            raise OptionsError(f"--repetition-penalty must be a finite number > 0, got {self.repetition_penalty}")
        if self.seed is not None and self.seed < 0:
            raise OptionsError(f"--seed must be a non-negative integer, got {self.seed}")
        if any(s == "" for s in self.stop):
            raise OptionsError("--stop strings must not be empty")
        return self

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0.0

    @property
    def needs_logits(self) -> bool:
        """False when the graph's own argmax is the answer."""
        return not self.is_greedy or self.repetition_penalty != 1.0


def apply_repetition_penalty(logits: np.ndarray, seen: Sequence[Sequence[int]], penalty: float) -> np.ndarray:
    """Divides positive (multiplies negative) logits of already-seen tokens by `penalty`."""
    if penalty == 1.0:
        return logits
    out = logits.copy()
    for row, ids in enumerate(seen):
        idx = np.unique(np.asarray(ids, dtype=np.int64))
        scores = out[row, idx]
        out[row, idx] = np.where(scores < 0, scores * penalty, scores / penalty)
    return out


def apply_top_k(logits: np.ndarray, k: int | None) -> np.ndarray:
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -k, axis=-1)[:, -k][:, None]
    return np.where(logits < kth, -np.inf, logits)


def apply_top_p(logits: np.ndarray, top_p: float) -> np.ndarray:
    """Keeps the smallest set of tokens whose probability reaches `top_p` (at least one)."""
    if top_p >= 1.0:
        return logits
    order = np.argsort(logits, axis=-1)  # ascending, as transformers does
    sorted_logits = np.take_along_axis(logits, order, axis=-1)
    cumulative = np.cumsum(softmax(sorted_logits), axis=-1)
    remove_sorted = cumulative <= (1.0 - top_p)
    remove_sorted[:, -1] = False
    remove = np.zeros_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return np.where(remove, -np.inf, logits)


def apply_min_p(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Drops tokens whose probability is below `min_p` times the top token's."""
    if min_p <= 0.0:
        return logits
    probs = softmax(logits)
    threshold = min_p * probs.max(axis=-1, keepdims=True)
    return np.where(probs < threshold, -np.inf, logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def process_logits(logits: np.ndarray, seen: Sequence[Sequence[int]], options: SamplingOptions) -> np.ndarray:
    """All processors in transformers' order; returns float64 scores (-inf = removed)."""
    scores = apply_repetition_penalty(logits.astype(np.float64), seen, options.repetition_penalty)
    if options.is_greedy:
        return scores
    scores = scores / options.temperature
    scores = apply_top_k(scores, options.top_k)
    scores = apply_top_p(scores, options.top_p)
    return apply_min_p(scores, options.min_p)


class Sampler:
    """Picks next tokens from processed logits with a seeded generator."""

    def __init__(self, options: SamplingOptions) -> None:
        self.options = options
        self.rng = np.random.default_rng(options.seed)

    def __call__(self, logits: np.ndarray, seen: Sequence[Sequence[int]]) -> np.ndarray:
        scores = process_logits(logits, seen, self.options)
        if self.options.is_greedy:
            return scores.argmax(axis=-1)
        probs = softmax(scores)
        cdf = np.cumsum(probs, axis=-1)
        draws = self.rng.random(len(probs)) * cdf[:, -1]
        picks = (cdf < draws[:, None]).sum(axis=-1)
        return np.minimum(picks, probs.shape[-1] - 1)
