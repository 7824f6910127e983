"""Tokenizers that transformers loads (a folder's `tokenizer.json`, GPT-2's `vocab.json` +
`merges.txt`), kept in zoo's tokenizer cache as their `tokenizers` backend.

Loading one through transformers imports it and torch (about 3 s). The first load
does that, then checks that the bare backend encodes and decodes as transformers'
tokenizer does: the class must leave encoding and decoding to the backend (no
override, special tokens not split), and both must agree on probe texts that
include the special tokens and the spacing transformers' decode clean-up would
change. Only then is the backend stored, under a key made of the tokenizer files'
bytes; a later run reads it back with `tokenizers` alone. A tokenizer that fails
the check is loaded through transformers every time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import tokenizer_cache
from .tokenizer import FOLDER_FILES, BackendTokenizer, HFTokenizer, backend_from_json

if TYPE_CHECKING:
    from tokenizers import Tokenizer as Backend
    from transformers import PreTrainedTokenizerBase

    LoadTokenizer = Callable[[], PreTrainedTokenizerBase]

# Methods of transformers' fast tokenizer whose work the bare backend repeats; a class
# that overrides one may encode or decode differently.
_BACKEND_METHODS = ("__call__", "encode", "_encode_plus", "decode", "_decode", "__len__")
_PROBES = (
    "Hello, world! It's a test: don't we've they're I'm -- 3.14 , . ? ! ' n't",
    "  leading spaces,\ttabs\n\nand  double  spaces ",
    "café ☕ 日本語 🙂 \u00a0 zero\u200bwidth",
)


def cached_transformers_tokenizer(path: Path, kind: str, load: LoadTokenizer) -> HFTokenizer:
    """The tokenizer at `path` (a file or folder) that `load` builds through transformers
    (`kind` names how): read from the tokenizer cache when stored, else loaded and, when its
    backend alone tokenizes as it does, stored."""
    key = tokenizer_cache.cache_key([kind, _file_digests(path)], Path(__file__))
    stored = tokenizer_cache.read(key)
    if stored is not None:
        try:
            return _from_entry(json.loads(stored), load)
        except Exception:  # a damaged entry: load through transformers, and store it anew
            pass
    loaded = load()
    if _leaves_work_to_backend(loaded):
        text = loaded.backend_tokenizer.to_str()
        if _agrees(loaded, backend_from_json(text)):
            entry = {
                "backend": text,
                "bos_token_id": loaded.bos_token_id,
                "eos_token_id": loaded.eos_token_id,
                "chat_template": getattr(loaded, "chat_template", None) or None,
            }
            tokenizer_cache.store(key, json.dumps(entry, ensure_ascii=False))
    return HFTokenizer(loaded)


def _file_digests(path: Path) -> list[tuple[str, str]]:
    """Name and SHA-256 of each tokenizer file transformers may read at `path`."""
    files = [path] if path.is_file() else [path / name for name in FOLDER_FILES if (path / name).is_file()]
    return [(file.name, hashlib.sha256(file.read_bytes()).hexdigest()) for file in files]


def _from_entry(entry: dict[str, Any], load: LoadTokenizer) -> BackendTokenizer:
    eos = entry["eos_token_id"]
    return BackendTokenizer(
        backend_from_json(entry["backend"]), entry["bos_token_id"], () if eos is None else (int(eos),), entry["chat_template"], load
    )


def _leaves_work_to_backend(loaded: PreTrainedTokenizerBase) -> bool:
    """Whether `loaded` is a fast tokenizer whose class hands encoding and decoding to its
    backend as transformers' base class does, special tokens not split."""
    from transformers import PreTrainedTokenizerFast

    if not isinstance(loaded, PreTrainedTokenizerFast) or getattr(loaded, "split_special_tokens", False):
        return False
    return all(getattr(type(loaded), name) is getattr(PreTrainedTokenizerFast, name) for name in _BACKEND_METHODS)


def _agrees(loaded: PreTrainedTokenizerBase, backend: Backend) -> bool:
    """Whether `backend` encodes and decodes the probe texts as `loaded` does."""
    specials = " ".join(loaded.all_special_tokens)
    texts = [*_PROBES, f"{specials} between {specials}"]
    if len(loaded) != backend.get_vocab_size(with_added_tokens=True):
        return False
    for text in texts:
        ids = list(loaded(text)["input_ids"])
        if backend.encode(text).ids != ids:
            return False
        if backend.decode(ids, skip_special_tokens=True) != loaded.decode(ids, skip_special_tokens=True):
            return False
    return True
