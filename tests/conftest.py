"""Shared test fixtures.

MAX compiles each distinct graph once (about 100 s cold, about 3 s from
~/.cache/modular), and a graph is fixed by the model's shapes, not its weight
values. So the suite keeps a few tiny configs and compiles each once per
session through the session-scoped fixtures below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
GPT2_TOKENIZER = SHARED_DATA / "gpt2-tokenizer"
STORIES = SHARED_DATA / "stories260K"


@pytest.fixture(scope="session")
def registry():
    from zoo.plugins.manager import get_registry

    return get_registry()


def save_gpt2_tokenizer(folder: Path) -> None:
    """Saves the real GPT-2 tokenizer (from ../shared) next to a test checkpoint."""
    from transformers import GPT2TokenizerFast

    GPT2TokenizerFast.from_pretrained(str(GPT2_TOKENIZER)).save_pretrained(str(folder))
