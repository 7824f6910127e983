"""Timing generation runs: warm-up, repeats, medians."""

from __future__ import annotations

import resource
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Log = Callable[[str], None]

SEED = 0
WARMUP_TOKENS = 8


@dataclass
class Timing:
    """One generation run: seconds to the first new token, seconds for the rest, and the tokens."""

    prefill_s: float
    decode_s: float
    tokens: list[int]


@dataclass
class Rates:
    """Median throughput over repeated runs at one context length."""

    prefill_tok_s: float
    decode_tok_s: float
    tokens: list[int]

    @property
    def decode_ms_per_token(self) -> float:
        return 1000.0 / self.decode_tok_s


# A runner generates `new_tokens` greedily after `prompt` and times it.
Runner = Callable[[list[int], int], Timing]


def prompt_ids(context: int, vocab_size: int) -> list[int]:
    """Random token ids, the same for both sides and every run."""
    import numpy as np

    return np.random.default_rng(SEED + context).integers(0, vocab_size, size=context).tolist()


def measure(
    contexts: Sequence[int], vocab_size: int, new_tokens: int, repeats: int, runner: Runner, label: str, log: Log
) -> dict[int, Rates]:
    """Warms `runner` up once, then times it `repeats` times at each context length."""
    runner(prompt_ids(WARMUP_TOKENS, vocab_size), 2)
    rates = {}
    for context in contexts:
        prompt = prompt_ids(context, vocab_size)
        runs = [runner(prompt, new_tokens) for _ in range(repeats)]
        rates[context] = median_rates(runs, context, new_tokens)
        log(
            f"{label} at context {context}: prefill {rates[context].prefill_tok_s:.1f} tok/s, "
            f"decode {rates[context].decode_tok_s:.2f} tok/s"
        )
    return rates


def median_rates(runs: Sequence[Timing], context: int, new_tokens: int) -> Rates:
    prefill = statistics.median(r.prefill_s for r in runs)
    decode = statistics.median(r.decode_s for r in runs)
    return Rates(context / prefill, (new_tokens - 1) / decode, runs[0].tokens)


def first_token_seconds(runner: Runner) -> float:
    """Seconds to the first token of a short greedy generation (the first one a new model runs)."""
    return runner(prompt_ids(WARMUP_TOKENS, 2), 1).prefill_s


def process_seconds() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere 0)."""
    import os

    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def peak_memory_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def log_stderr(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)
