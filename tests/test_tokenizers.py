"""Tokenizers transformers loads, kept in zoo's tokenizer cache: the cached backend
encodes and decodes as transformers does, and one whose backend alone would not is
never stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import GPT2_TOKENIZER, STORIES, save_gpt2_tokenizer
from sentencepiece_json import save_hf_tokenizer
from tokenizer_checks import assert_tokenizes_as
from zoo.core.checkpoints import tokenizer as module
from zoo.core.checkpoints.tokenizer import BackendTokenizer, HFTokenizer, load_tokenizer

LOADERS = ("_fast_from_file", "_auto_from_folder", "_gpt2_from_folder")


def _source(kind: str, folder: Path) -> Path:
    """A tokenizer of `kind` as a user would point zoo at it."""
    if kind == "gpt2 vocab.json + merges.txt":
        return GPT2_TOKENIZER
    if kind == "sentencepiece tokenizer.json":
        save_hf_tokenizer(STORIES / "tok512.model", folder)
        return folder
    save_gpt2_tokenizer(folder)
    return folder / "tokenizer.json" if kind == "gpt2 tokenizer.json file" else folder


def _refuse_transformers(monkeypatch) -> None:
    def refuse(*args):
        raise AssertionError("loaded through transformers")

    for name in LOADERS:
        monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize(
    "kind", ["gpt2 vocab.json + merges.txt", "gpt2 folder", "gpt2 tokenizer.json file", "sentencepiece tokenizer.json"]
)
def test_a_cached_tokenizer_encodes_and_decodes_as_transformers(kind, tmp_path, monkeypatch):
    """The first load goes through transformers and stores the backend; the next reads it
    back with `tokenizers` alone, and both tokenize as transformers' tokenizer on text with
    special tokens, odd spacing and characters outside the vocabulary. A damaged entry is
    loaded again through transformers and stored anew."""
    monkeypatch.setenv("ZOO_TOKENIZER_CACHE", str(tmp_path / "cache"))
    source = _source(kind, tmp_path / "tokenizer")
    loaded = load_tokenizer(source)
    [entry] = (tmp_path / "cache").glob("*.json")
    assert type(loaded) is HFTokenizer
    originals = {name: getattr(module, name) for name in LOADERS}
    _refuse_transformers(monkeypatch)
    cached = load_tokenizer(source)
    assert isinstance(cached, BackendTokenizer)
    hf = loaded.hf
    ids = assert_tokenizes_as(hf, loaded, cached)
    for name, original in originals.items():
        monkeypatch.setattr(module, name, original)
    again = load_tokenizer(source)  # its transformers tokenizer (chat templates, saving) is built when asked for
    assert isinstance(again, BackendTokenizer) and again.hf.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)
    entry.write_text("{damaged")
    assert type(load_tokenizer(source)) is HFTokenizer
    assert json.loads(entry.read_text())["backend"]


def test_a_changed_tokenizer_file_is_not_read_from_the_old_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_TOKENIZER_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "tokenizer"
    save_gpt2_tokenizer(folder)
    load_tokenizer(folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "eos_token": "!"}))
    changed = load_tokenizer(folder)
    assert type(changed) is HFTokenizer and changed.eos_token_ids == (0,)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


def _wordpiece_with_clean_up(folder: Path) -> None:
    """A WordPiece tokenizer whose config asks transformers to clean up decoded text
    (" ." -> "."), which its backend alone does not do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "hello", "world", ".", ",", "?", "!", "'", "n", "##t", "a", "test"]
    backend = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", clean_up_tokenization_spaces=True).save_pretrained(
        str(folder)
    )


def _splitting_special_tokens(folder: Path) -> None:
    """GPT-2's tokenizer told to split special-token text like any other text."""
    save_gpt2_tokenizer(folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "split_special_tokens": True}))


@pytest.mark.parametrize("make", [_wordpiece_with_clean_up, _splitting_special_tokens])
def test_a_tokenizer_its_backend_alone_would_change_is_never_stored(make, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_TOKENIZER_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "tokenizer"
    make(folder)
    for _ in range(2):
        tokenizer = load_tokenizer(folder)
        assert type(tokenizer) is HFTokenizer
        text = "hello , world . a test <|endoftext|>"
        assert tokenizer.decode(tokenizer.encode(text)) == tokenizer.hf.decode(tokenizer.hf(text)["input_ids"], skip_special_tokens=True)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.json"))
