"""The streamed text of a generation, decoded a few tokens at a time, against decoding the
whole prompt and output at once (the real GPT-2 and stories260K tokenizers, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import GPT2_TOKENIZER, STORIES
from zoo.core.checkpoints.tokenizer import Tokenizer, load_tokenizer
from zoo.core.runtime.generation import Completion, TextGenerator, _emit

PROMPT = "Once upon a time, in a café by the sea, 猫 said"


@pytest.fixture(scope="module", params=["gpt2", "sentencepiece"])
def tokenizer(request) -> Tokenizer:
    return load_tokenizer(GPT2_TOKENIZER if request.param == "gpt2" else STORIES / "tok512.model")


class Streamer(TextGenerator):
    """A `TextGenerator` without a model: only the tokenizer, which is all the text needs."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer


def stream(tokenizer: Tokenizer, prompt_ids: list[int], output: list[int], stops=()) -> tuple[Completion, str]:
    """Feeds `output` one token at a time as `TextGenerator.stream` does (no end-of-sequence
    token, a context longer than the output); returns the completion and the text streamed."""
    streamer, completion, seen = Streamer(tokenizer), Completion.start("", prompt_ids), ""
    for token in output:
        streamer._take(completion, token, set(), stops)
        seen += _emit(completion, stops)
        if completion.done:
            return completion, seen
    streamer._end(completion, stops, context_length=len(prompt_ids) + len(output) + 1)
    return completion, seen + _emit(completion, stops)


def whole_text(tokenizer: Tokenizer, prompt_ids: list[int], output: list[int]) -> str:
    full, prompt = tokenizer.decode(prompt_ids + output), tokenizer.decode(prompt_ids)
    assert full.startswith(prompt)
    return full[len(prompt) :]


def test_text_of_a_real_sentence_equals_the_whole_decode(tokenizer):
    """Spaces, punctuation, accents and a CJK character that byte-level BPE and sentencepiece's
    byte fallback split over several tokens."""
    prompt_ids = tokenizer.encode(PROMPT)
    output = tokenizer.encode(PROMPT + " that the ünïcødé fish — 魚 — swam away.")[len(prompt_ids) :]
    completion, seen = stream(tokenizer, prompt_ids, output)
    assert completion.text == seen == whole_text(tokenizer, prompt_ids, output)
    assert "魚" in seen and "\ufffd" not in seen


def test_random_tokens_stream_the_whole_decode(tokenizer):
    """Any ids, half characters included: the streamed text ends equal to the whole decode
    (whose unfinished characters come out as replacement characters only at the end)."""
    rng = np.random.default_rng(5)
    prompt_ids = tokenizer.encode(PROMPT)
    for _ in range(20):
        output = [int(t) for t in rng.integers(3, tokenizer.vocab_size, size=40)]
        completion, seen = stream(tokenizer, prompt_ids, output)
        assert completion.text == seen == whole_text(tokenizer, prompt_ids, output)


def test_a_stop_string_split_over_tokens_ends_the_text_before_it(tokenizer):
    prompt_ids = tokenizer.encode(PROMPT)
    output = tokenizer.encode(PROMPT + " that the fish swam away. The end.")[len(prompt_ids) :]
    completion, seen = stream(tokenizer, prompt_ids, output, stops=("swam aw",))
    assert completion.finish_reason == "stop"
    assert completion.text == seen == whole_text(tokenizer, prompt_ids, output).split("swam aw")[0]
