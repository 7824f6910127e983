"""One check for tokenizers that must tokenize as a transformers tokenizer does."""

from __future__ import annotations

from typing import Any

from conftest import SHARED_DATA

TEXT = SHARED_DATA / "texts" / "little-stories.txt"


def assert_tokenizes_as(hf: Any, *tokenizers: Any) -> list[int]:
    """Each of `tokenizers` encodes and decodes as transformers' `hf` (special tokens skipped)
    on a story, odd spacing, characters outside the vocabulary, the spacing a decode clean-up
    would change and the special tokens' own text; all describe themselves alike (BOS, EOS,
    vocabulary size, chat template). Returns the ids of the last text."""
    special = " ".join(hf.all_special_tokens)
    texts = [TEXT.read_text()[:3000], "  Hello,\tworld!\n\n new  line ", "café ☕ 日本語 🙂 , . ? n't", f"{special} after {special}"]
    for text in texts:
        ids = hf(text)["input_ids"]
        for tokenizer in tokenizers:
            assert tokenizer.encode(text) == ids, text
            assert tokenizer.decode(ids) == hf.decode(ids, skip_special_tokens=True), text
    described = [(t.bos_token_id, t.eos_token_ids, t.vocab_size, t.chat_template) for t in tokenizers]
    assert described == described[:1] * len(tokenizers)
    return ids
