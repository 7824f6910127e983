"""Why generation stops: EOS, a stop string, the token limit or the context, per row of a batch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpt2_fixtures import TINY, make_checkpoint
from reference import reference_greedy
from zoo.core.runtime.generation import TextGenerator
from zoo.core.runtime.sampling import SamplingOptions

PROMPT = "Hello world, this is"


class EosAt:
    """The model's tokenizer, with `eos` as its end-of-sequence token."""

    def __init__(self, tokenizer, eos: int) -> None:
        self.inner, self.eos_token_ids = tokenizer, (eos,)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, registry):
    from zoo.core.loader import load_model

    folder = tmp_path_factory.mktemp("ends-tiny")
    hf = make_checkpoint(folder, seed=3, **TINY)
    model = load_model(str(folder), registry, verbose=False)
    ids = model.tokenizer.encode(PROMPT)
    return model, reference_greedy(hf, ids, 10)


def generator_with_eos(model, eos: int) -> TextGenerator:
    return TextGenerator(replace(model, tokenizer=EosAt(model.tokenizer, eos)))


def test_eos_ends_the_row_without_its_token(tiny):
    model, greedy = tiny
    at = next(i for i in range(2, len(greedy)) if greedy[i] not in greedy[:i])
    [done] = generator_with_eos(model, greedy[at]).generate([PROMPT], SamplingOptions(greedy=True, max_new_tokens=10))
    assert done.finish_reason == "eos"
    assert done.token_ids == greedy[:at]
    assert done.text == model.tokenizer.decode(greedy[:at])


def test_ignore_eos_runs_to_the_token_limit(tiny):
    model, greedy = tiny
    options = SamplingOptions(greedy=True, max_new_tokens=6, ignore_eos=True)
    [done] = generator_with_eos(model, greedy[2]).generate([PROMPT], options)
    assert done.finish_reason == "length" and done.token_ids == greedy[:6]


def test_stop_string_ends_the_text_before_it(tiny):
    model, greedy = tiny
    text = model.tokenizer.decode(greedy)
    stop = text[5:9]
    [done] = TextGenerator(model).generate([PROMPT], SamplingOptions(greedy=True, max_new_tokens=10, stop=(stop,)))
    assert done.finish_reason == "stop" and done.text == text[: text.find(stop)]


def test_context_end_is_not_the_token_limit(tiny):
    model, _ = tiny
    prompt = " a" * (model.config.context_length - 3)  # one token per " a"
    assert len(model.tokenizer.encode(prompt)) == model.config.context_length - 3
    [done] = TextGenerator(model).generate([prompt], SamplingOptions(greedy=True, max_new_tokens=10, ignore_eos=True))
    assert done.finish_reason == "context" and len(done.token_ids) == 3


def test_rows_of_a_batch_end_for_their_own_reasons(tiny):
    model, greedy = tiny
    at = next(i for i in range(2, len(greedy)) if greedy[i] not in greedy[:i])
    generator = generator_with_eos(model, greedy[at])
    long_prompt = " a" * (model.config.context_length - 4)
    short, near_context = generator.generate([PROMPT, long_prompt], SamplingOptions(greedy=True, max_new_tokens=10))
    assert short.finish_reason == "eos" and short.token_ids == greedy[:at]
    assert near_context.finish_reason in ("context", "eos")
    if near_context.finish_reason == "context":
        assert len(near_context.token_ids) == 4
    streamed = "".join(delta for row, delta in generator.stream([PROMPT], SamplingOptions(greedy=True, max_new_tokens=10)) if row == 0)
    assert streamed == short.text
