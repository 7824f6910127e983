"""The tokenizer metadata of a GGUF file zoo writes, stored as llama.cpp's converter stores it.

- From a GGUF file: its `tokenizer.*` keys, copied as they are.
- From a sentencepiece model (`tokenizer.model`, or a `.model` passed with --tokenizer):
  every piece with its score and type (normal, unknown, control, unused, byte), padded
  to the model's vocabulary with `[PADn]` pieces, `tokenizer.ggml.model` = llama.
- From a byte-level BPE tokenizer (GPT-2's kind): tokens by id, added tokens typed control
  (special) or user-defined, the merges, `tokenizer.ggml.model` = gpt2 and the
  pre-tokenizer named as llama.cpp names it (gpt-2, qwen2, llama-bpe).

Special token ids, add-BOS/EOS flags, merges and the chat template come from the
checkpoint folder through `gguf.SpecialVocab` (the `gguf` package's reader of
tokenizer_config.json / tokenizer.json / config.json), as in the converter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zoo.core.errors import TokenizerError

from .gguf_layout import GGUFLayout

Fields = Callable[[Any], None]

# token types (gguf.TokenType)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def copy_from_gguf(path: Path) -> Fields:
    """Every `tokenizer.*` key of an existing GGUF file, with its types."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(path), "r")
    fields = [(k, f) for k, f in reader.fields.items() if k.startswith("tokenizer.")]

    def add(writer: Any) -> None:
        for key, field in fields:
            main = field.types[0]
            value = field.contents()
            if main == GGUFValueType.ARRAY:
                writer.add_key_value(key, value, main, sub_type=field.types[-1])
            else:
                writer.add_key_value(key, value, main)

    return add


def _special(folder: Path | None, n_vocab: int, merges: bool, config: Mapping[str, Any]) -> Any:
    """gguf's SpecialVocab of the checkpoint as the converter sees it: the tokenizer files of
    `folder` beside the model's config.json."""
    import shutil
    import tempfile

    from gguf import SpecialVocab

    with tempfile.TemporaryDirectory() as scratch:
        for name in ("tokenizer.json", "tokenizer_config.json", "merges.txt"):
            if folder is not None and (folder / name).is_file():
                shutil.copy(folder / name, Path(scratch) / name)
        (Path(scratch) / "config.json").write_text(json.dumps(dict(config)))
        return SpecialVocab(Path(scratch), load_merges=merges, n_vocab=n_vocab)


def sentencepiece_fields(processor: Any, folder: Path | None, config: Mapping[str, Any], layout: GGUFLayout) -> Fields:
    """A sentencepiece vocabulary as the converter stores it."""
    vocab_size = int(config.get("vocab_size") or processor.vocab_size())
    tokens = [f"[PAD{i}]".encode() for i in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    types = [UNUSED] * vocab_size
    for i in range(min(processor.vocab_size(), vocab_size)):
        tokens[i] = processor.IdToPiece(i).encode("utf-8")
        scores[i] = processor.GetScore(i)
        types[i] = (
            UNKNOWN if processor.IsUnknown(i) else CONTROL if processor.IsControl(i) else UNUSED if processor.IsUnused(i)
            else BYTE if processor.IsByte(i) else NORMAL
        )
    _added_tokens(folder, tokens, scores, types)
    special = _special(folder, len(tokens), False, config)

    def add(writer: Any) -> None:
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        special.add_to_gguf(writer, quiet=True)
        if not layout.sentencepiece_space_prefix:
            writer.add_add_space_prefix(False)

    return add


def _added_tokens(folder: Path | None, tokens: list[bytes], scores: list[float], types: list[int]) -> None:
    """tokenizer_config.json's added tokens over the sentencepiece pieces (control if special)."""
    path = folder / "tokenizer_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return
    decoder = json.loads(path.read_text(encoding="utf-8")).get("added_tokens_decoder", {})
    for token_id, data in decoder.items():
        index = int(token_id)
        if index >= len(tokens):
            continue
        content = data["content"]
        special = data.get("special") or (content.startswith("<|") and content.endswith("|>"))
        tokens[index] = (content if special else content.replace("\u2581", " ")).encode("utf-8")
        scores[index] = -1000.0
        types[index] = CONTROL if special else USER_DEFINED


def pre_tokenizer_name(tokenizer: Any) -> str:
    """llama.cpp's name for a byte-level BPE tokenizer's way of splitting text."""
    pre = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    pattern = next((p.get("pattern", {}).get("Regex", "") for p in parts if p.get("type") == "Split"), "")
    if pattern.startswith("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"):
        return "qwen2"
    if pattern.startswith("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"):
        return "llama-bpe"
    raise TokenizerError("zoo cannot name this tokenizer's pre-tokenizer for llama.cpp (it knows GPT-2's, Qwen 2's and Llama 3's)")


def bpe_fields(tokenizer: Any, folder: Path | None, config: Mapping[str, Any], layout: GGUFLayout) -> Fields:
    """A byte-level BPE vocabulary as the converter stores it."""
    vocab_size = int(config.get("vocab_size") or len(tokenizer))
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
        elif token in added:
            special = decoder[i].special or (token.startswith("<|") and token.endswith("|>"))
            tokens.append(token if special else token.replace("\u2581", " "))
            types.append(CONTROL if special else USER_DEFINED)
        else:
            tokens.append(token)
            types.append(NORMAL)
    pre = pre_tokenizer_name(tokenizer)
    special = _special(folder, len(tokens), True, config)
    if not special.merges:
        model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
        special.merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    prefix = getattr(tokenizer, "add_prefix_space", None) if layout.bpe_prefix_from_config else None

    def add(writer: Any) -> None:
        if prefix is not None:
            writer.add_add_space_prefix(bool(prefix))
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        special.add_to_gguf(writer, quiet=True)

    return add


def tokenizer_fields(checkpoint: Any, folder: Path | None, config: Mapping[str, Any], layout: GGUFLayout) -> Fields:
    """The tokenizer metadata for a checkpoint zoo read (`folder`: where its tokenizer files are),
    stored as the converter stores it for the family `layout` describes."""
    from .tokenizer import HFTokenizer, SentencePieceTokenizer

    if checkpoint.extra.get("format") == "gguf" and checkpoint.extra.get("tokenizer_from_file", True):
        return copy_from_gguf(Path(checkpoint.source))
    tokenizer = checkpoint.tokenizer
    if folder is not None and (folder / "tokenizer.model").is_file():
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
        return sentencepiece_fields(processor, folder, config, layout)
    if isinstance(tokenizer, SentencePieceTokenizer):
        return sentencepiece_fields(tokenizer.sp, folder, config, layout)
    if isinstance(tokenizer, HFTokenizer):
        return bpe_fields(tokenizer.hf, folder, config, layout)
    raise TokenizerError("zoo cannot store this tokenizer in a GGUF file; pass --tokenizer with a sentencepiece .model or a HF tokenizer folder")
