"""Reading HF checkpoints: `config.json` plus safetensors (sharded too) or `pytorch_model.bin`.

A checkpoint folder's files are confined to it: `config.json`, the weights
file and every shard a `*.index.json` names must be regular files inside the
folder after resolving symlinks (in a Hugging Face cache snapshot, inside that
repository's `blobs` folder, where the snapshot's symlinks point). Shards must
be `.safetensors` or `.bin` files; index files and state dicts are validated.
A path the user names (`--weights`) is trusted; the shards its index names are
confined to that index's folder.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.core.errors import ConfigError, WeightsError

from .arrays import as_bfloat16

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_SHARD_SUFFIXES = (".safetensors", ".bin")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")
MAX_JSON_BYTES = 64 << 20
"""config.json and shard indexes above this size are refused (real ones are kilobytes)."""


def allowed_roots(folder: Path) -> list[Path]:
    """Where files of the checkpoint in `folder` may really live: the folder itself and,
    for a Hugging Face cache snapshot (`.../snapshots/<revision>`), the repository's blobs."""
    roots = [folder.resolve()]
    if folder.parent.name == "snapshots" and (folder.parent.parent / "blobs").is_dir():
        roots.append((folder.parent.parent / "blobs").resolve())
    return roots


def inside(folder: Path, path: Path) -> bool:
    """Whether `path`, with symlinks resolved, lies in one of `folder`'s allowed roots."""
    real = path.resolve()
    return any(root in real.parents for root in allowed_roots(folder))


def confined_file(folder: Path, path: Path, what: str, error: type[Exception] = WeightsError) -> Path:
    """`path` if it is a regular file inside the checkpoint `folder`; else a one-line error."""
    if not inside(folder, path):
        raise error(f"{what} {path} points outside the checkpoint folder {folder} (to {path.resolve()}); refusing to read it")
    if not path.is_file():
        raise error(f"{what} {path} is not a regular file")
    return path


def read_json(path: Path, what: str, error: type[Exception]) -> Any:
    """A small JSON file's value; unreadable, oversized, non-UTF-8, malformed or too deeply
    nested JSON is a one-line `error`."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
        if len(raw) > MAX_JSON_BYTES:
            raise error(f"{what} {path} is larger than {MAX_JSON_BYTES >> 20} MiB; not a real {what}")
        return json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as failure:
        raise error(f"cannot read {what} {path}: {_first_line(failure)}") from None
    except RecursionError:
        raise error(f"cannot read {what} {path}: JSON nested too deeply") from None


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's `config.json` as a dict (it must be a JSON object)."""
    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(f"{folder} has no config.json, so its architecture is unknown")
    confined_file(folder, path, "config file", ConfigError)
    config = read_json(path, "config file", ConfigError)
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object, not {type(config).__name__}")
    return config


def find_weights(folder: Path) -> Path:
    """The weights file of a checkpoint folder (confined to it)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file() or path.is_symlink():
            return confined_file(folder, path, "weights file")
    raise WeightsError(f"no weights in {folder} (looked for {', '.join(WEIGHT_FILES)})")


def check_weights_path(path: Path) -> Path:
    """A weights file the user named (`--weights`): it must exist and look like weights."""
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if not path.is_file():
        raise WeightsError(f"weights file {path} is not a regular file")
    if not path.name.endswith(_WEIGHT_SUFFIXES):
        raise WeightsError(f"{path} is not a weights file (expected .safetensors, .bin, .pt, .pth or a *.index.json shard index)")
    return path


def shard_paths(index: Path) -> list[Path]:
    """The shard files a `*.index.json` names, each a weights file inside the index's folder."""
    document = read_json(index, "shard index", WeightsError)
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightsError(f"shard index {index} has no weight_map object (tensor name -> shard file)")
    bad = next((v for v in weight_map.values() if not isinstance(v, str)), None)
    if bad is not None:
        raise WeightsError(f"shard index {index}: weight_map values must be shard file names, got {_show(bad)}")
    shards: list[Path] = []
    for name in sorted(set(weight_map.values())):
        relative = PurePosixPath(name)
        plain = (
            name and "\x00" not in name and "\\" not in name and not relative.is_absolute()
            and ".." not in relative.parts and name.endswith(_SHARD_SUFFIXES) and not name.endswith(".index.json")
        )
        if not plain:
            raise WeightsError(f"shard index {index} names {_show(name)}, which is not a .safetensors or .bin file inside {index.parent}")
        path = index.parent / relative
        if not path.exists() and not path.is_symlink():
            raise WeightsError(f"shard index {index} names {name!r}, which does not exist")
        shards.append(confined_file(index.parent, path, "shard"))
    return shards


def read_tensors(path: Path) -> dict[str, Any]:
    """All tensors of a weights file or shard index by checkpoint name: NumPy arrays (views of
    a safetensors file, bfloat16 included), or torch tensors for a `.bin` file."""
    if path.name.endswith(".index.json"):
        tensors: dict[str, Any] = {}
        for shard in shard_paths(path):
            tensors.update(_read_file(shard))
        return tensors
    return _read_file(path)


# safetensors dtype -> bytes per element (sub-byte float formats are refused by the dtype check anyway)
_SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}
# safetensors dtype -> the NumPy dtype its bytes are viewed as (BF16 as uint16, then as bfloat16)
_VIEW_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "uint16",
    "I32": "int32", "U32": "uint32", "F32": "float32", "I64": "int64", "U64": "uint64", "F64": "float64", "C64": "complex64",
}
MAX_SAFETENSORS_HEADER = 100 << 20


def check_safetensors(path: Path) -> tuple[dict[str, Any], int]:
    """Validates a safetensors file's header before any tensor is read (no torch needed):
    its length, its JSON, and each tensor's dtype, shape and byte range within the file.
    Returns the tensors' entries by name and where their data starts in the file."""

    def bad(reason: str) -> WeightsError:
        return WeightsError(f"cannot read weights {path}: corrupt safetensors file ({reason})")

    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise bad("shorter than its 8-byte header length")
            length = int.from_bytes(prefix, "little")
            if length > MAX_SAFETENSORS_HEADER or 8 + length > size:
                raise bad(f"its header claims {length} bytes; the file has {size}")
            raw = f.read(length)
    except OSError as error:
        raise WeightsError(f"cannot read weights {path}: {error.strerror or error}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    data = size - 8 - length
    entries: dict[str, Any] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise bad("__metadata__ must map names to strings")
            continue
        if not isinstance(entry, dict):
            raise bad(f"tensor {_show(name)} is not described by an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in _SAFETENSORS_DTYPES:
            raise bad(f"tensor {_show(name)} has unknown dtype {_show(dtype)}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise bad(f"tensor {_show(name)} has shape {_show(shape)}, not a list of sizes")
        if (
            not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data
        ):
            raise bad(f"tensor {_show(name)} has data_offsets {_show(offsets)} outside the file's {data} data bytes")
        count = 1
        for d in shape:
            count *= d
        if count * _SAFETENSORS_DTYPES[dtype] != offsets[1] - offsets[0]:
            raise bad(f"tensor {_show(name)} of shape {shape} and dtype {dtype} does not fill its {offsets[1] - offsets[0]} bytes")
        entries[name] = entry
    return entries, 8 + length


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if not path.is_file():
        raise WeightsError(f"weights file {path} is not a regular file")
    entries, start = check_safetensors(path) if path.suffix == ".safetensors" else ({}, 0)
    try:
        if path.suffix == ".safetensors" and all(e["dtype"] in _VIEW_DTYPES for e in entries.values()):
            tensors = _mapped_safetensors(path, entries, start)
        elif path.suffix == ".safetensors":  # float8 and other dtypes NumPy lacks
            from safetensors.torch import load_file

            tensors = load_file(str(path))
        else:
            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state = torch.load(str(path), map_location="cpu", weights_only=True)
            tensors = _state_dict(state, path)
    except WeightsError:
        raise
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found:
            raise WeightsError(
                f"refusing to load {path}: its pickle asks for {found.group(1)}, which a weights file never needs "
                "(unpickling it could run code)"
            ) from None
        raise WeightsError(f"cannot read weights {path}: not a PyTorch weights file (the pickle holds more than tensors)") from None
    except Exception as error:
        raise WeightsError(f"cannot read weights {path}: corrupt or not a checkpoint ({_first_line(error)})") from None
    return tensors


def _mapped_safetensors(path: Path, entries: Mapping[str, Any], start: int) -> dict[str, Any]:
    """The tensors of a checked safetensors file as views of its bytes (a copy-on-write
    mapping, as a GGUF file's): the weight arena copies each once and gives the file's
    pages back. BF16 tensors are ml_dtypes' bfloat16 over the same bytes."""
    import mmap

    import numpy as np

    with path.open("rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    tensors: dict[str, Any] = {}
    for name, entry in entries.items():
        dtype = np.dtype(_VIEW_DTYPES[entry["dtype"]])
        first, last = entry["data_offsets"]
        value = np.frombuffer(mapped, dtype, (last - first) // dtype.itemsize, start + first).reshape(entry["shape"])
        if not value.flags.aligned:  # writers align every tensor; a file that does not is copied
            value = value.copy()
        tensors[name] = as_bfloat16(value) if entry["dtype"] == "BF16" else value
    return tensors


def _state_dict(state: Any, path: Path) -> dict[str, Any]:
    """The name -> tensor dict inside an unpickled `.bin` (optionally under "state_dict")."""
    import torch

    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path} is not a state dict (it holds a {type(state).__name__})")
    for name, value in state.items():
        if not isinstance(name, str):
            raise WeightsError(f"{path}: tensor names must be strings, got {_show(name)}")
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: {name!r} is not a tensor (it is of type {type(value).__name__})")
    return dict(state)


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
