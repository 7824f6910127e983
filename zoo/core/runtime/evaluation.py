"""Perplexity with llama.cpp's `llama-perplexity` protocol, so the figures compare.

The text's tokens are cut into consecutive windows of `window` tokens (a
trailing partial window is dropped); each window's first token is replaced by
BOS when the tokenizer prepends one (llama.cpp's add_bos: the caller passes
`bos` then); the model sees the whole window and the second half of it is scored: the predictions at positions window/2 .. window-2 of the
tokens that follow them. Perplexity is exp of the mean negative log-likelihood
over all scored tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from zoo.core.errors import PromptError


@dataclass(frozen=True)
class Perplexity:
    """The result: perplexity, with what it was computed over."""

    perplexity: float
    negative_log_likelihood: float
    scored_tokens: int
    windows: int
    window: int


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def perplexity(
    score: Callable[[Sequence[int]], np.ndarray], tokens: Sequence[int], window: int, bos: int | None
) -> Perplexity:
    """Perplexity of `tokens` by `score` (token ids -> logits at every position), windowed as above."""
    if window < 4:
        raise PromptError(f"the perplexity window must be at least 4 tokens, got {window}")
    count = len(tokens) // window
    if count == 0:
        raise PromptError(f"the text is {len(tokens)} tokens, fewer than one window of {window}; use a smaller --context")
    first = window // 2
    total, scored = 0.0, 0
    for index in range(count):
        chunk = list(tokens[index * window : (index + 1) * window])
        if bos is not None:
            chunk[0] = bos
        logprobs = log_softmax(score(chunk)[first : window - 1])
        targets = np.asarray(chunk[first + 1 : window])
        total -= float(logprobs[np.arange(len(targets)), targets].sum())
        scored += len(targets)
    mean = total / scored
    return Perplexity(math.exp(mean), mean, scored, count, window)
