"""The tokenizer stored in a GGUF file's metadata, built by transformers' GGUF converters.

transformers has a fast-tokenizer converter per GGUF vocabulary kind
(`transformers.integrations.ggml`); this picks the one that matches what
llama.cpp would run: a sentencepiece-style vocabulary (`tokenizer.ggml.model`
= llama) through the converter the architecture's `GGUFLayout` names (Llama's
unless it says otherwise), a byte-level BPE through the
converter of its pre-tokenizer (`tokenizer.ggml.pre`). BOS is prepended as
llama.cpp does (`add_bos_token`, by default for sentencepiece vocabularies
and Llama 3's BPE), and the end-of-generation ids come from the metadata.
The converted tokenizer is kept in zoo's tokenizer cache (`tokenizer_cache`): a
later run reads it back with `tokenizers` alone, without importing transformers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.core.errors import TokenizerError

from . import tokenizer_cache
from .tokenizer import BackendTokenizer, backend_from_json

# BPE pre-tokenizer name (tokenizer.ggml.pre) -> transformers GGUF converter.
BPE_CONVERTERS = {
    "gpt-2": "gpt2", "default": "gpt2", "gpt2": "gpt2",
    "qwen2": "qwen2",
    "llama3": "llama", "llama-v3": "llama", "llama-bpe": "llama",
}
# Pre-tokenizers for which llama.cpp prepends BOS by default.
BPE_WITH_BOS = ("llama3", "llama-v3", "llama-bpe")
CONTROL = 3


class GGUFTokenizer(BackendTokenizer):
    """A GGUF file's tokenizer as a `tokenizers` backend. The backend prepends BOS itself
    where llama.cpp does (its post-processor), and the end-of-generation ids come from the
    metadata; transformers' wrapper names the metadata's special tokens."""

    def __init__(
        self, backend: Any, special_tokens: dict[str, str], bos: int | None, eos: Sequence[int], chat_template: str | None
    ) -> None:
        super().__init__(backend, bos, eos, chat_template, self._wrapper)
        self.special_tokens = special_tokens

    def _wrapper(self) -> Any:
        """transformers' `PreTrainedTokenizerFast` around the backend, special tokens named."""
        from transformers import PreTrainedTokenizerFast

        hf = PreTrainedTokenizerFast(tokenizer_object=self.backend, **self.special_tokens)
        if self.chat_template:
            hf.chat_template = self.chat_template
        return hf


def gguf_tokenizer(file: Any, sentencepiece_converter: str = "llama") -> GGUFTokenizer:
    """The tokenizer of a `GGUFFile`; a sentencepiece vocabulary goes through transformers'
    `sentencepiece_converter` (the architecture's `GGUFLayout` names it). The converted
    tokenizer is read from zoo's tokenizer cache when it is there, and stored in it when not."""
    model = file.value("tokenizer.ggml.model")
    tokens = file.value("tokenizer.ggml.tokens")
    if model is None or not tokens:
        raise TokenizerError(f"{file.path.name} holds no tokenizer; pass --tokenizer PATH")
    pre = file.value("tokenizer.ggml.pre") or "default"
    converter = _converter(model, pre, sentencepiece_converter)
    ids = {kind: file.value(f"tokenizer.ggml.{kind}_token_id") for kind in ("bos", "eos", "eot", "eom", "unknown", "padding")}
    details = {
        "tokenizer_type": model,
        "tokens": tokens,
        "token_type": file.value("tokenizer.ggml.token_type") or [1] * len(tokens),
        "bos_token_id": ids["bos"],
        "eos_token_id": ids["eos"],
        "unk_token_id": ids["unknown"],
        "pad_token_id": ids["padding"],
    }
    for key, name in (("scores", "scores"), ("merges", "merges"), ("add_space_prefix", "add_prefix_space")):
        value = file.value(f"tokenizer.ggml.{key}")
        if value is not None:
            details[name] = value
    if model == "llama" and "scores" not in details:
        raise TokenizerError(f"{file.path.name}: its sentencepiece vocabulary has no scores; pass --tokenizer PATH")
    default_bos = model == "llama" or pre in BPE_WITH_BOS
    add_bos = bool(file.value("tokenizer.ggml.add_bos_token", default_bos)) and ids["bos"] is not None
    eos = [i for i in dict.fromkeys((ids["eos"], ids["eot"], ids["eom"])) if i is not None]
    named = {"bos_token": ids["bos"], "eos_token": ids["eos"], "unk_token": ids["unknown"], "pad_token": ids["padding"]}
    special = {key: tokens[i] for key, i in named.items() if i is not None and 0 <= i < len(tokens)}
    bos = ids["bos"] if "bos_token" in special else None
    chat_template = file.value("tokenizer.chat_template")
    key = tokenizer_cache.cache_key([converter, add_bos, special, details], Path(__file__))
    stored = tokenizer_cache.read(key)
    if stored is not None:
        try:
            return GGUFTokenizer(backend_from_json(stored), special, bos, eos, chat_template)
        except Exception:  # a damaged entry: convert again, and store it anew
            pass
    backend = _convert(converter, details)
    if add_bos:
        _prepend_bos(backend, tokens[ids["bos"]], ids["bos"])
    tokenizer = GGUFTokenizer(backend, special, bos, eos, chat_template)
    tokenizer.backend = tokenizer.hf.backend_tokenizer  # with the special tokens transformers registers
    tokenizer_cache.store(key, tokenizer.backend.to_str())
    return tokenizer


def _converter(model: str, pre: str, sentencepiece_converter: str) -> str:
    if model == "llama":
        return sentencepiece_converter
    if model == "gpt2":
        if pre not in BPE_CONVERTERS:
            print(f"zoo: warning: GGUF pre-tokenizer {pre!r} is not known to zoo; splitting text as GPT-2 does", file=sys.stderr)
        return BPE_CONVERTERS.get(pre, "gpt2")
    raise TokenizerError(f"GGUF tokenizer model {model!r} is not supported (llama and gpt2 are); pass --tokenizer PATH")


def _convert(converter: str, details: dict[str, Any]) -> Any:
    """transformers' conversion, with its progress bar and merge-building messages silenced."""
    from transformers.integrations.ggml import convert_gguf_tokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        backend, _ = convert_gguf_tokenizer(converter, details)
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TokenizerError(f"cannot build the tokenizer from the GGUF metadata: {text}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    return backend


def _prepend_bos(backend: Any, bos: str, bos_id: int) -> None:
    """Makes the backend tokenizer start every encoding with BOS (with special tokens on)."""
    from tokenizers.processors import TemplateProcessing

    backend.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, bos_id)]
    )
