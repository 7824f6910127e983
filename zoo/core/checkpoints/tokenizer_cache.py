"""Tokenizers built through transformers, kept on disk as `tokenizers` JSON.

Building one through transformers means importing it and torch (about 3 s here),
and converting a GGUF vocabulary takes seconds more for a large BPE one. The
result is stored once, under a key made of everything it was built from (a GGUF
file's metadata or a folder's tokenizer files, the code that built it, and the
transformers and tokenizers versions), and a later run reads it back with
`tokenizers` alone (`gguf_tokenizer`, `hf_tokenizer`).

`ZOO_TOKENIZER_CACHE` names the folder (default `~/.cache/zoo/tokenizers`);
`0` turns it off. The folder is pruned to `LIMIT_BYTES`, oldest first.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

SWITCH = "ZOO_TOKENIZER_CACHE"
LIMIT_BYTES = 512 << 20


def cache_dir() -> Path | None:
    """Where converted tokenizers are kept, or None when `ZOO_TOKENIZER_CACHE=0` turns the cache off."""
    from zoo.core.graph_cache import zoo_cache_home

    setting = os.environ.get(SWITCH, "")
    if setting.lower() in ("0", "off", "false", "no"):
        return None
    return Path(setting) if setting else zoo_cache_home() / "tokenizers"


def cache_key(source: object, code: Path) -> str:
    """The key of a tokenizer built from `source` (JSON-able) by the code in `code`."""
    digest = hashlib.sha256()
    for package in ("transformers", "tokenizers"):
        digest.update(_version(package).encode())
    digest.update(code.read_bytes())
    digest.update(json.dumps(source, ensure_ascii=False).encode())
    return digest.hexdigest()


def read(key: str) -> str | None:
    """The tokenizer JSON stored under `key`, or None."""
    path = _path(key)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
        os.utime(path)  # pruning removes the least recently used first
    except (OSError, UnicodeDecodeError):
        return None
    return text


def store(key: str, text: str) -> None:
    """Writes tokenizer JSON under `key`, then prunes the folder; a failure to write is ignored."""
    from zoo.core.graph_cache import prune_folder, write_whole

    path = _path(key)
    if path is not None and write_whole(path, lambda staging: staging.write_text(text, encoding="utf-8")):
        prune_folder(path.parent, LIMIT_BYTES, "*.json")


def _path(key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"{key}.json"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"
