"""The zoo weight mapper as a MAX weight adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .registry import zoo_architecture, zoo_config


@dataclass(frozen=True)
class ZooWeightAdapter:
    """A MAX `WeightsAdapter` that renames and reshapes HF tensors with an architecture's zoo mapper.

    MAX hands it the checkpoint's weights; the result is keyed by zoo module
    names. A plain picklable object, since MAX sends it to worker processes.
    """

    architecture: str

    def __call__(self, state_dict: dict[str, Any], *, huggingface_config: Any = None, **_: Any) -> dict[str, Any]:
        import torch

        tensors = {name: torch.from_dlpack(weights.data()) for name, weights in state_dict.items()}
        config = zoo_config(self.architecture, huggingface_config)
        return zoo_architecture(self.architecture).mapper()(tensors, config)
