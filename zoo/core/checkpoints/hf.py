"""Reading HF checkpoints: `config.json` plus safetensors (sharded too) or `pytorch_model.bin`.

Shard indexes are validated: every shard must be a `.safetensors` or `.bin`
file inside the checkpoint folder (after resolving symlinks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.core.errors import ConfigError, WeightsError

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_SHARD_SUFFIXES = (".safetensors", ".bin")


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's `config.json` as a dict (it must be a JSON object)."""
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(f"{folder} has no config.json, so its architecture is unknown")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {path}: {_first_line(error)}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object, not {type(config).__name__}")
    return config


def find_weights(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"no weights in {folder} (looked for {', '.join(WEIGHT_FILES)})")


def shard_paths(index: Path) -> list[Path]:
    """The shard files a `*.index.json` names, each checked to lie inside the index's folder."""
    try:
        document = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WeightsError(f"cannot read shard index {index}: {_first_line(error)}") from None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightsError(f"shard index {index} has no weight_map object")
    folder = index.parent.resolve()
    shards: list[Path] = []
    for name in sorted(set(weight_map.values()) if all(isinstance(v, str) for v in weight_map.values()) else []):
        path = (index.parent / name).resolve()
        if folder not in path.parents or not path.name.endswith(_SHARD_SUFFIXES) or path.name.endswith(".index.json"):
            raise WeightsError(f"shard index {index} names {name!r}, which is not a weights file inside {index.parent}")
        shards.append(path)
    if not shards:
        raise WeightsError(f"shard index {index}: weight_map values must be shard file names")
    return shards


def read_tensors(path: Path) -> dict[str, Any]:
    """All tensors of a weights file or shard index, as torch tensors by checkpoint name."""
    if path.name.endswith(".index.json"):
        tensors: dict[str, Any] = {}
        for shard in shard_paths(path):
            tensors.update(_read_file(shard))
        return tensors
    return _read_file(path)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
        else:
            import torch

            state = torch.load(str(path), map_location="cpu", weights_only=True)
            tensors = dict(state.get("state_dict", state)) if isinstance(state, Mapping) else None
            if tensors is None:
                raise ValueError("not a state dict")
    except Exception as error:
        raise WeightsError(f"cannot read weights {path}: corrupt or not a checkpoint ({_first_line(error)})") from None
    return tensors


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
