"""Reading HF checkpoints: `config.json` plus safetensors (sharded too) or `pytorch_model.bin`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ZooError

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ZooError(f"{folder} has no config.json, so its architecture is unknown")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ZooError(f"cannot read {path}: {error}") from None


def find_weights(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ZooError(f"no weights in {folder} (looked for {', '.join(WEIGHT_FILES)})")


def read_tensors(path: Path) -> dict[str, Any]:
    """All tensors of a weights file or shard index, as torch tensors by checkpoint name."""
    if path.name.endswith(".index.json"):
        try:
            weight_map: Mapping[str, str] = json.loads(path.read_text())["weight_map"]
        except (OSError, ValueError, KeyError) as error:
            raise ZooError(f"cannot read shard index {path}: {error}") from None
        tensors: dict[str, Any] = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(read_tensors(path.parent / shard))
        return tensors
    if not path.is_file():
        raise ZooError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True)
        return dict(state.get("state_dict", state))
    except ZooError:
        raise
    except Exception as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ZooError(f"cannot read weights {path}: corrupt or not a checkpoint ({detail})") from None
