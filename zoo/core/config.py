"""The config every architecture provides: a pydantic model built from HF `config.json`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ModelConfig(BaseModel):
    """Fields the shared engine needs; architectures subclass and add their own.

    Subclasses implement `from_hf`, turning a HF `config.json` dict into the
    config, and may raise `ZooError` for variants they do not support.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vocab_size: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context_length: int
    eos_token_ids: tuple[int, ...] = ()
    bos_token_id: int | None = None

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> "ModelConfig":
        raise NotImplementedError

    def parameter_count(self) -> int | None:
        """Number of parameters, when the architecture can tell from the config."""
        return None


def eos_ids(value: int | list[int] | None) -> tuple[int, ...]:
    """Normalises HF's `eos_token_id` (an int, a list or null) to a tuple."""
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)
