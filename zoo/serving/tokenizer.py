"""MAX's text tokenizer with zoo's request checks, run in the API process before a request
reaches the model worker (a bad request gets HTTP 400 and never joins a batch).

- A prompt given as token ids must lie in the model's vocabulary: one id out
  of range would otherwise fail the whole batch's graph call in the worker.
  An empty prompt is refused for the same reason.
- A chat request for a model whose tokenizer has no chat template is refused
  with a message saying so (and pointing at /v1/completions).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from max.pipelines.context.exceptions import InputError
from max.pipelines.lib import TextTokenizer

from .registry import zoo_config


class ZooTokenizer(TextTokenizer):
    """Subclassed per architecture with `zoo_architecture` set (see `max_architectures`)."""

    zoo_architecture: ClassVar[str] = ""

    def __init__(self, model_path: str, pipeline_config: Any, **kwargs: Any) -> None:
        super().__init__(model_path, pipeline_config, **kwargs)
        self._hf_config = getattr(getattr(pipeline_config, "model", None), "huggingface_config", None)

    @cached_property
    def model_vocab_size(self) -> int:
        """Token ids the model accepts (its embedding rows); the tokenizer's own count if unknown."""
        if self._hf_config is None or not self.zoo_architecture:
            return int(self.tokenizer_vocab_size)
        return int(zoo_config(self.zoo_architecture, self._hf_config).vocab_size)

    async def encode(self, prompt: str | Sequence[int], add_special_tokens: bool = True) -> np.ndarray:
        if not isinstance(prompt, str):
            check_token_ids(prompt, self.model_vocab_size)
        return await super().encode(prompt, add_special_tokens)

    async def new_context(self, request: Any) -> Any:
        context = await super().new_context(request)
        if len(context.tokens.all) == 0:
            raise InputError("the prompt is empty (no tokens)")
        return context

    def apply_chat_template(self, messages: Any, tools: Any, **options: Any) -> str:
        if not self._custom_template_provided and not getattr(self.delegate, "chat_template", None):
            raise InputError(
                "this model's tokenizer has no chat template, so it cannot answer chat requests; "
                "send the prompt to /v1/completions instead"
            )
        return super().apply_chat_template(messages, tools, **options)


def check_token_ids(ids: Sequence[Any], vocab_size: int) -> None:
    """InputError (HTTP 400) unless every id is an integer in [0, vocab_size)."""
    for index, token in enumerate(ids):
        if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
            raise InputError(f"prompt token {index} is {token!r}, not a token id")
        if not 0 <= int(token) < vocab_size:
            raise InputError(
                f"prompt token {index} is id {int(token)}, outside the model's vocabulary of {vocab_size} tokens"
            )
