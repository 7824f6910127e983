"""Text in, text out: tokenizing, streaming deltas, EOS and stop strings over the engine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zoo.core.checkpoints.tokenizer import Tokenizer
from zoo.core.config import ModelConfig
from zoo.core.errors import PromptError, TokenizerError

from .engine import Engine
from .sampling import SamplingOptions

if TYPE_CHECKING:
    from zoo.core.loader import LoadedModel


CONTEXT_TOKENS = 5  # prompt tokens decoded before the first output tokens (see `_update_text`)


@dataclass
class Completion:
    """One prompt's result; `finish_reason` is eos, stop, length or context."""

    prompt: str
    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None
    emitted: int = 0  # characters of `text` already streamed
    # Where the next decode starts and how far `text` has read, as indices into prompt + output ids.
    window_start: int = 0
    read_at: int = 0

    def ids_from(self, start: int, stop: int | None = None) -> list[int]:
        """Ids start .. stop - 1 of the prompt followed by the output (to the end: stop None)."""
        prompt = len(self.prompt_ids)
        if start >= prompt:
            return self.token_ids[start - prompt : None if stop is None else stop - prompt]
        if stop is not None and stop <= prompt:
            return self.prompt_ids[start:stop]
        return self.prompt_ids[start:] + self.token_ids[: None if stop is None else stop - prompt]

    @classmethod
    def start(cls, prompt: str, ids: list[int]) -> Completion:
        """A completion of `prompt` (token ids `ids`) with nothing generated yet, whose text is
        read with the prompt's last CONTEXT_TOKENS tokens as context."""
        return cls(prompt, ids, window_start=max(0, len(ids) - CONTEXT_TOKENS), read_at=len(ids))

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


def encode_prompts(tokenizer: Tokenizer, config: ModelConfig, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of every prompt, checked before anything runs: no prompt empty, each shorter
    than the context, every id in the vocabulary."""
    if not prompts:
        raise PromptError("no prompt given")
    encoded = []
    for number, prompt in enumerate(prompts, 1):
        label = "the prompt" if len(prompts) == 1 else f"prompt {number}"
        if not isinstance(prompt, str):
            raise PromptError(f"{label} must be a string, got {type(prompt).__name__}")
        if not prompt.strip():
            raise PromptError(f"{label} is empty")
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise PromptError(f"{label} is not valid text (it holds bytes that are not UTF-8)") from None
        ids = tokenizer.encode(prompt)
        if not ids:
            raise PromptError(f"{label} is empty after tokenization")
        if config.context_length < 2:
            raise PromptError(f"the model's context is {config.context_length} token, which leaves no room to generate")
        if len(ids) >= config.context_length:
            raise PromptError(
                f"{label} is {len(ids)} tokens but the model's context is {config.context_length}; "
                f"shorten it to at most {config.context_length - 1} tokens"
            )
        bad = [i for i in ids if not 0 <= i < config.vocab_size]
        if bad:
            raise PromptError(f"{label} has token id {bad[0]}, outside the model's vocabulary of {config.vocab_size}")
        encoded.append(ids)
    return encoded


def batch_bytes(config: ModelConfig, lengths: Sequence[int], new_tokens: int, itemsize: int = 4) -> int:
    """About how much host memory generating for prompts of `lengths` takes at its peak:
    the KV cache, the prefill's attention masks and scores, and the logits (float32 from the
    graph, float64 while sampling)."""
    batch, width = len(lengths), max(lengths)
    capacity = min(config.context_length, width + new_tokens)
    cache = batch * capacity * config.n_layers * 2 * config.n_kv_heads * config.head_dim * itemsize
    masks = batch * width * (width + 1) * 4 * (2 if config.has_sliding_window else 1)
    scores = batch * config.n_heads * width * width * 4
    logits = batch * config.vocab_size * (4 + 4 + 8 + 8)
    hidden = batch * width * max(config.hidden_size, getattr(config, "intermediate_size", 0) * 2) * 4 * 2
    return cache + masks + scores + logits + hidden


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_batch_memory(config: ModelConfig, lengths: Sequence[int], new_tokens: int, itemsize: int = 4) -> None:
    """Refuses a batch that cannot fit in memory, before anything is allocated or compiled."""
    available = available_memory()
    if available is None or not lengths:
        return
    needed = batch_bytes(config, lengths, new_tokens, itemsize)
    if needed > available:
        gib = 1 << 30
        raise PromptError(
            f"a batch of {len(lengths)} prompts (up to {max(lengths)} tokens, {new_tokens} new) needs about "
            f"{needed / gib:.1f} GiB but {available / gib:.1f} GiB of memory is available; run fewer prompts at a time "
            "or lower --max-new-tokens"
        )


class TextGenerator:
    """Generates text for one or more prompts with a loaded model."""

    def __init__(self, model: LoadedModel) -> None:
        if model.tokenizer is None:
            raise TokenizerError("this model has no tokenizer; pass --tokenizer PATH")
        self.model = model
        self.tokenizer: Tokenizer = model.tokenizer
        self.engine = Engine(model)
        self.completions: list[Completion] = []

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids, checked like every prompt (not empty, fits the context)."""
        return encode_prompts(self.tokenizer, self.model.config, [prompt])[0]

    def stream(self, prompts: Sequence[str], options: SamplingOptions) -> Iterator[tuple[int, str]]:
        """Yields `(row, new_text)` as tokens arrive; `self.completions` holds the results."""
        options.check()
        encoded = encode_prompts(self.tokenizer, self.model.config, prompts)
        check_batch_memory(self.model.config, [len(ids) for ids in encoded], options.max_new_tokens, self._itemsize())
        self.completions = [Completion.start(p, ids) for p, ids in zip(prompts, encoded)]
        eos = set() if options.ignore_eos else set(self.tokenizer.eos_token_ids)
        for step_tokens in self.engine.generate([c.prompt_ids for c in self.completions], options):
            for row, completion in enumerate(self.completions):
                if completion.done:
                    continue
                self._take(completion, int(step_tokens[row]), eos, options.stop)
                delta = _emit(completion, options.stop)
                if delta:
                    yield row, delta
            if all(c.done for c in self.completions):
                return
        for row, completion in enumerate(self.completions):
            if not completion.done:
                self._end(completion, options.stop, self.model.config.context_length)
                delta = _emit(completion, options.stop)
                if delta:
                    yield row, delta

    def _itemsize(self) -> int:
        dtype = getattr(self.model, "dtype", None)
        return int(getattr(dtype, "size_in_bytes", 4) or 4)

    def generate(self, prompts: Sequence[str], options: SamplingOptions) -> list[Completion]:
        for _ in self.stream(prompts, options):
            pass
        return self.completions

    def _take(self, completion: Completion, token: int, eos: set[int], stops: Sequence[str]) -> None:
        """Adds one generated token to `completion`, or ends it at an end-of-sequence token."""
        if token in eos:
            self._update_text(completion, stops, flush=True)
            completion.finish_reason = completion.finish_reason or "eos"
        else:
            completion.token_ids.append(token)
            self._update_text(completion, stops)

    def _end(self, completion: Completion, stops: Sequence[str], context_length: int) -> None:
        """Ends a completion the engine stopped: its last text read, at the token limit or the context."""
        self._update_text(completion, stops, flush=True)
        if not completion.done:
            at_context = len(completion.prompt_ids) + len(completion.token_ids) >= context_length
            completion.finish_reason = "context" if at_context else "length"

    def _update_text(self, completion: Completion, stops: Sequence[str], flush: bool = False) -> None:
        """Appends the text of the output tokens not read yet: the ids from `window_start` on,
        decoded with and without them, differ by it. Those few tokens of context make a fragment
        decode as it does in the whole text (sentencepiece keeps the space it drops at a
        fragment's start; a character split over tokens comes out whole), and each step
        decodes a handful of tokens however long the output. Text ending in half a character
        waits for the next token, unless `flush` (the output is complete). Context that decodes
        to nothing but spaces reaches further back: sentencepiece drops every space before a
        fragment's first visible character."""
        start = completion.window_start
        before = self.tokenizer.decode(completion.ids_from(start, completion.read_at))
        while start > 0 and not before.strip():
            start = max(0, start - CONTEXT_TOKENS)
            before = self.tokenizer.decode(completion.ids_from(start, completion.read_at))
        after = self.tokenizer.decode(completion.ids_from(start))
        if len(after) <= len(before) or (after.endswith("\ufffd") and not flush):
            return
        searched = len(completion.text)
        completion.text += after[len(before) :]
        completion.window_start = completion.read_at
        completion.read_at = len(completion.prompt_ids) + len(completion.token_ids)
        found = [
            at for at in (completion.text.find(stop, max(0, searched - len(stop) + 1)) for stop in stops) if at >= 0
        ]
        if found:
            completion.text = completion.text[: min(found)]
            completion.finish_reason = "stop"


def _emit(completion: Completion, stops: Sequence[str]) -> str:
    """The text of `completion` not streamed yet that can no longer change, marked as streamed:
    all of it once the completion is done; before that, not a half character and not a
    possible start of one of `stops`."""
    text, end = completion.text, len(completion.text)
    if not completion.done:
        end -= max((len(s) for s in stops), default=1) - 1
        while end > completion.emitted and text[end - 1] == "\ufffd":
            end -= 1
    delta = text[completion.emitted : end] if end > completion.emitted else ""
    completion.emitted += len(delta)
    return delta
