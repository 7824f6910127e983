"""How big a served model's cache pool is (no MAX import: `zoo serve` checks it before starting)."""

from __future__ import annotations

from zoo.core.config import ModelConfig

# Requests decoded together when --max-batch-size is not given (MAX's own default on a CPU is 1).
DEFAULT_MAX_BATCH_SIZE = 8


def pool_bytes(config: ModelConfig, dtype_bytes: int, slots: int, max_length: int) -> int:
    """Bytes of the cache pool: keys and values of every layer for slots x max_length tokens."""
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * dtype_bytes * slots * max_length


def describe_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
