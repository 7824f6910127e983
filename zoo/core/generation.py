"""Text in, text out: tokenizing, streaming deltas, EOS and stop strings over the engine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .engine import Engine
from .errors import ZooError
from .loader import LoadedModel
from .sampling import SamplingOptions


@dataclass
class Completion:
    """One prompt's result; `finish_reason` is eos, stop, length or context."""

    prompt: str
    prompt_ids: list[int]
    prompt_text: str = ""  # the prompt ids decoded, to cut continuations from
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    emitted: int = 0  # characters of `text` already streamed

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class TextGenerator:
    """Generates text for one or more prompts with a loaded model."""

    def __init__(self, model: LoadedModel) -> None:
        if model.tokenizer is None:
            raise ZooError("this model has no tokenizer; pass --tokenizer PATH")
        self.model = model
        self.tokenizer = model.tokenizer
        self.engine = Engine(model)

    def encode(self, prompt: str) -> list[int]:
        ids = self.tokenizer.encode(prompt)
        if not ids:
            raise ZooError("the prompt is empty after tokenization")
        return ids

    def stream(self, prompts: Sequence[str], options: SamplingOptions) -> Iterator[tuple[int, str]]:
        """Yields `(row, new_text)` as tokens arrive; `self.completions` holds the results."""
        options.check()
        self.completions = []
        for prompt in prompts:
            ids = self.encode(prompt)
            self.completions.append(Completion(prompt, ids, self.tokenizer.decode(ids)))
        eos = set() if options.ignore_eos else set(self.tokenizer.eos_token_ids)
        hold = max((len(s) for s in options.stop), default=1) - 1
        for step_tokens in self.engine.generate([c.prompt_ids for c in self.completions], options):
            for row, completion in enumerate(self.completions):
                if completion.done:
                    continue
                token = int(step_tokens[row])
                if token in eos:
                    completion.finish_reason = "eos"
                else:
                    completion.token_ids.append(token)
                    self._update_text(completion, options.stop)
                if completion.done:
                    delta = completion.text[completion.emitted :]
                else:
                    delta = _safe_delta(completion, hold)
                if delta:
                    completion.emitted += len(delta)
                    yield row, delta
            if all(c.done for c in self.completions):
                return
        for row, completion in enumerate(self.completions):
            if not completion.done:
                at_context = len(completion.prompt_ids) + len(completion.token_ids) >= self.model.config.context_length
                completion.finish_reason = "context" if at_context else "length"
                delta = completion.text[completion.emitted :]
                if delta:
                    completion.emitted += len(delta)
                    yield row, delta

    def generate(self, prompts: Sequence[str], options: SamplingOptions) -> list[Completion]:
        for _ in self.stream(prompts, options):
            pass
        return self.completions

    def _update_text(self, completion: Completion, stops: Sequence[str]) -> None:
        # Decode prompt + whole suffix each time and keep what follows the
        # prompt's text: multi-byte characters split across tokens come out
        # whole, and tokenizers that drop a leading space when decoding a
        # fragment (sentencepiece) keep it.
        full = self.tokenizer.decode(completion.prompt_ids + completion.token_ids)
        if full.startswith(completion.prompt_text):
            completion.text = full[len(completion.prompt_text) :]
        else:
            completion.text = self.tokenizer.decode(completion.token_ids)
        for stop in stops:
            at = completion.text.find(stop)
            if at >= 0:
                completion.text = completion.text[:at]
                completion.finish_reason = "stop"


def _safe_delta(completion: Completion, hold: int) -> str:
    """New text that can no longer change: not a half character, not a possible stop-string start."""
    text = completion.text
    end = len(text) - hold
    while end > completion.emitted and text[end - 1] == "\ufffd":
        end -= 1
    return text[completion.emitted : end] if end > completion.emitted else ""
