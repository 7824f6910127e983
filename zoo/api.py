"""The Python API: `zoo.load(ref)` returns a `Model`; `zoo.models()` lists what `zoo list` lists.

    import zoo

    model = zoo.load("gpt2")                      # alias, hub id, directory or checkpoint file
    print(model.generate("The meaning of life is", max_new_tokens=20, greedy=True))
    for piece in model.stream("Once upon a time", temperature=0.7, seed=1):
        print(piece, end="")
    model.chat([{"role": "user", "content": "Hi!"}])   # through the tokenizer's chat template
    model.perplexity(open("text.txt").read())

Sampling keywords are the CLI's flags (`max_new_tokens`, `temperature`,
`top_k`, `top_p`, `min_p`, `repetition_penalty`, `greedy`, `seed`, `stop`,
`ignore_eos`) with the same defaults (`SamplingOptions`). Every failure is a
`zoo.ZooError` with the message the CLI prints.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from zoo.core.checkpoints.tokenizer import Message, Tokenizer
from zoo.core.config import ModelConfig
from zoo.core.errors import TokenizerError
from zoo.core.loader import LoadedModel, load_model
from zoo.core.registry import Registry
from zoo.core.runtime.engine import Engine
from zoo.core.runtime.evaluation import Perplexity, perplexity
from zoo.core.runtime.generation import TextGenerator
from zoo.core.runtime.sampling import SamplingOptions

DEFAULT_PERPLEXITY_WINDOW = 512


class Model:
    """A loaded, compiled model: generate, stream, chat, score."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.engine = Engine(loaded)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def config(self) -> ModelConfig:
        return self.loaded.config

    @property
    def tokenizer(self) -> Tokenizer:
        if self.loaded.tokenizer is None:
            raise TokenizerError("this model has no tokenizer; load it with tokenizer=PATH")
        return self.loaded.tokenizer

    def info(self) -> dict[str, Any]:
        """What was loaded: architecture, plugin, source, device, dtype, how many weights each
        encoding holds, the weight bytes a decode step reads, and the config."""
        from zoo.core.loader import describe_device

        return {
            "model": self.name,
            "architecture": self.loaded.architecture.name,
            "plugin": self.loaded.architecture.plugin,
            "weights": self.loaded.source,
            "device": describe_device(self.loaded.device),
            "dtype": self.loaded.dtype.name,
            "parameters": self.config.parameter_count(),
            "compile_seconds": self.loaded.compile_seconds,
            "weight_encodings": self.loaded.graph.encodings,
            "weight_bytes_per_token": self.loaded.graph.weight_bytes_per_token,
            "config": self.config.model_dump(),
        }

    def generator(self) -> TextGenerator:
        return TextGenerator(self.loaded)

    @overload
    def generate(self, prompt: str, **sampling: Any) -> str: ...
    @overload
    def generate(self, prompt: Sequence[str], **sampling: Any) -> list[str]: ...

    def generate(self, prompt: str | Sequence[str], **sampling: Any) -> str | list[str]:
        """The continuation of `prompt` (or of each prompt of a list, run as one batch)."""
        options = SamplingOptions.create(**sampling)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        texts = [c.text for c in self.generator().generate(prompts, options)]
        return texts[0] if isinstance(prompt, str) else texts

    def stream(self, prompt: str, **sampling: Any) -> Iterator[str]:
        """The continuation of `prompt`, piece by piece as it is generated."""
        options = SamplingOptions.create(**sampling)
        for _, piece in self.generator().stream([prompt], options):
            yield piece

    def chat_prompt(self, messages: Sequence[Message]) -> str:
        """The prompt the chat template makes of `messages` (ready for the assistant's reply)."""
        return self.tokenizer.render_chat(messages)

    def chat(self, messages: Sequence[Message], **sampling: Any) -> str:
        """The assistant's reply to `messages` (dicts with `role` and `content`)."""
        return "".join(self.stream_chat(messages, **sampling))

    def stream_chat(self, messages: Sequence[Message], **sampling: Any) -> Iterator[str]:
        return self.stream(self.chat_prompt(messages), **sampling)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """float32 logits (len(token_ids), vocab): position i's prediction of token i + 1."""
        return self.engine.score([int(t) for t in token_ids])

    def perplexity(self, text: str, *, context: int | None = None) -> Perplexity:
        """Perplexity of `text` with llama-perplexity's protocol (windows of `context` tokens,
        default min(512, the model's context), each from BOS when the tokenizer prepends one,
        the second half scored)."""
        window = context or min(DEFAULT_PERPLEXITY_WINDOW, self.config.context_length)
        tokens = self.tokenizer.encode(text)
        bos = self.tokenizer.bos_token_id
        return perplexity(self.logits, tokens, window, bos if tokens and tokens[0] == bos else None)


def load(
    ref: str,
    *,
    device: str = "auto",
    dtype: str | None = None,
    quantize: str | None = None,
    weights: str | Path | None = None,
    tokenizer: str | Path | None = None,
    verbose: bool = False,
) -> Model:
    """Loads and compiles `ref`: an alias (`zoo.models()`), a hub id, a directory or a checkpoint file.

    `quantize` ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k" or "bf16") encodes the projection
    and embedding weights in memory, as `zoo run --quantize` does (CPU only)."""
    loaded = load_model(
        ref,
        weights=Path(weights) if weights is not None else None,
        tokenizer=Path(tokenizer) if tokenizer is not None else None,
        device=device,
        dtype=dtype,
        quantize=quantize,
        verbose=verbose,
    )
    return Model(loaded)


def registry() -> Registry:
    """Every architecture, alias, weight format and command the plugins registered."""
    from zoo.plugins.manager import get_registry

    return get_registry()


def models() -> list[dict[str, Any]]:
    """One dict per alias, then per architecture: what `zoo list --json` prints."""
    reg = registry()
    rows: list[dict[str, Any]] = []
    for alias in sorted(reg.aliases.values(), key=lambda a: (a.architecture, a.name)):
        rows.append(
            {
                "name": alias.name,
                "kind": "model",
                "architecture": alias.architecture,
                "source": f"hf://{alias.repo_id}" + (f"/{alias.weights_file}" if alias.weights_file else ""),
                "plugin": alias.plugin,
                "parameters": alias.parameters,
                "description": alias.description,
            }
        )
    for arch in sorted(reg.architectures.values(), key=lambda a: a.name):
        rows.append(
            {
                "name": arch.name,
                "kind": "architecture",
                "architecture": arch.name,
                "source": "any HF checkpoint with this architecture",
                "plugin": arch.plugin,
                "parameters": None,
                "description": arch.description,
            }
        )
    return rows


def info(ref: str) -> dict[str, Any]:
    """What `ref` resolves to, without loading weights or compiling (`zoo info`)."""
    from zoo.core.resolve import resolve_model

    resolved = resolve_model(ref, registry())
    alias = resolved.source.alias
    if resolved.source.kind == "dir":
        from zoo.core.checkpoints.hf import find_weights

        weights = str(find_weights(resolved.source.path))
    elif alias is not None and alias.weights_file:
        weights = f"hf://{alias.repo_id}/{alias.weights_file}"
    else:
        weights = resolved.source.describe()
    return {
        "model": ref,
        "architecture": resolved.architecture.name,
        "plugin": resolved.architecture.plugin,
        "weights": weights,
        "parameters": alias.parameters if alias is not None and alias.parameters else resolved.config.parameter_count(),
        "config": resolved.config.model_dump(),
    }
