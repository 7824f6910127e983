"""Tokenizers: one small interface over HF fast tokenizers and sentencepiece models."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from zoo.core.errors import TokenizerError, ZooError, describe_failure

if TYPE_CHECKING:
    from tokenizers import Tokenizer as Backend

Message = dict[str, str]


class Tokenizer(Protocol):
    """What the engine and the API need from a tokenizer."""

    eos_token_ids: tuple[int, ...]
    bos_token_id: int | None
    chat_template: str | None

    @property
    def vocab_size(self) -> int:
        """Number of token ids the tokenizer can produce (the largest id + 1)."""

    def encode(self, text: str) -> list[int]:
        """Token ids for `text`, with the BOS token when the model expects one."""

    def decode(self, ids: Sequence[int]) -> str:
        """Text for `ids`, special tokens left out."""

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The prompt for `messages` through the chat template, ready for the assistant's turn."""


class DeferredTokenizer:
    """A tokenizer built on its first use, by `build`: a model loaded only to run token ids
    (a served model's worker, a benchmark) never builds it. Every attribute is the built
    tokenizer's."""

    def __init__(self, build: Callable[[], Tokenizer]) -> None:
        self._build = build
        self._built: Tokenizer | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._built is None:
            self._built = self._build()
        return getattr(self._built, name)


class HFTokenizer:
    """A `transformers` fast tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self.hf = tokenizer
        eos = tokenizer.eos_token_id
        self.eos_token_ids: tuple[int, ...] = () if eos is None else (int(eos),)
        self.bos_token_id: int | None = tokenizer.bos_token_id
        self.chat_template: str | None = getattr(tokenizer, "chat_template", None) or None

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return list(self.hf(text)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def render_chat(self, messages: Sequence[Message]) -> str:
        if not self.chat_template:
            raise TokenizerError("this model's tokenizer has no chat template")
        try:
            return self.hf.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        except Exception as error:
            raise TokenizerError(f"the chat template failed on these messages: {error}") from None


class BackendTokenizer(HFTokenizer):
    """A `tokenizers` backend that encodes and decodes as the transformers fast tokenizer
    around it does (no clean-up of decoded text, special tokens skipped). That wrapper
    (`hf`: chat templates, saving) is built by `wrap` only when asked for, so a run that
    just encodes and decodes never imports transformers."""

    def __init__(
        self, backend: Any, bos: int | None, eos: Sequence[int], chat_template: str | None, wrap: Callable[[], Any]
    ) -> None:
        self.backend = backend
        self.bos_token_id = bos
        self.eos_token_ids = tuple(eos)
        self.chat_template = chat_template or None
        self._wrap = wrap

    @cached_property
    def hf(self) -> Any:
        """transformers' fast tokenizer equal to the backend."""
        return self._wrap()

    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        return list(self.backend.encode(text).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.backend.decode([int(i) for i in ids], skip_special_tokens=True))


def backend_from_json(text: str) -> Backend:
    """A `tokenizers.Tokenizer` from its JSON, without padding or truncation (as transformers'
    fast tokenizer encodes a single text by default)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(text)
    backend.no_padding()
    backend.no_truncation()
    return backend


class SentencePieceTokenizer:
    """A sentencepiece `.model` (Llama 1/2, llama2.c): BOS prepended, as those models were trained."""

    chat_template: str | None = None

    def __init__(self, path: Path) -> None:
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        self.bos_token_id: int | None = self.sp.bos_id() if self.sp.bos_id() >= 0 else None
        self.eos_token_ids: tuple[int, ...] = (self.sp.eos_id(),) if self.sp.eos_id() >= 0 else ()

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        ids = self.sp.encode(text)
        return ([self.bos_token_id] if self.bos_token_id is not None else []) + ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text for `ids`; ids outside the tokenizer's vocabulary (a model's padded rows) are left out."""
        size = self.vocab_size
        return self.sp.decode([int(i) for i in ids if 0 <= int(i) < size])

    def render_chat(self, messages: Sequence[Message]) -> str:
        raise TokenizerError("this model's tokenizer has no chat template")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def has_tokenizer_files(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


# Files transformers may read from a tokenizer folder; each must really lie inside it.
FOLDER_FILES = (
    *TOKENIZER_FILES, "merges.txt", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
    "chat_template.json", "config.json", "generation_config.json", "vocab.txt", "spiece.model",
)


def check_tokenizer_folder(folder: Path) -> None:
    """Refuses a tokenizer folder whose files point outside it (symlinks, or file paths in
    `tokenizer_config.json`), so that loading it opens nothing else."""
    from .hf import confined_file, read_json

    for name in FOLDER_FILES:
        path = folder / name
        if path.exists() or path.is_symlink():
            confined_file(folder, path, "tokenizer file", TokenizerError)
    settings_path = folder / "tokenizer_config.json"
    if not settings_path.is_file():
        return
    settings = read_json(settings_path, "tokenizer config", TokenizerError)
    if not isinstance(settings, dict):
        raise TokenizerError(f"{settings_path} must hold a JSON object, not {type(settings).__name__}")
    for key, value in settings.items():
        if isinstance(key, str) and key.endswith(("_file", "_files")) and isinstance(value, str) and value:
            named = Path(value)
            if named.is_absolute() or ".." in named.parts:
                raise TokenizerError(f"{settings_path}: {key} names {value!r}, outside the tokenizer folder; refusing to read it")


def load_tokenizer(path: Path) -> Tokenizer:
    """Loads the tokenizer in `path`: a model directory, `tokenizer.json` or a sentencepiece `.model`."""
    if not path.exists():
        raise TokenizerError(f"tokenizer path {path} does not exist")
    if not path.is_file() and not path.is_dir():
        raise TokenizerError(f"tokenizer path {path} is neither a file nor a directory")
    try:
        return _load(path)
    except ZooError:
        raise
    except Exception as error:
        raise TokenizerError(f"cannot load the tokenizer from {path}: {describe_failure(error)}") from None


def _load(path: Path) -> Tokenizer:
    """The tokenizer at `path` (the checks done)."""
    from .hf_tokenizer import cached_transformers_tokenizer

    if path.is_dir():
        check_tokenizer_folder(path)
    if path.is_file():
        if path.suffix == ".model":
            return SentencePieceTokenizer(path)
        if path.name.endswith(".json"):
            return cached_transformers_tokenizer(path, "file", partial(_fast_from_file, path))
        raise TokenizerError(f"unrecognised tokenizer file {path} (expected tokenizer.json or a sentencepiece .model)")
    if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
        return cached_transformers_tokenizer(path, "auto", partial(_auto_from_folder, path))
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        return cached_transformers_tokenizer(path, "gpt2", partial(_gpt2_from_folder, path))
    if (path / "tokenizer.model").is_file():
        return SentencePieceTokenizer(path / "tokenizer.model")
    raise TokenizerError(
        f"no tokenizer in {path} (tokenizer.json, vocab.json + merges.txt or tokenizer.model); pass --tokenizer PATH"
    )


def _fast_from_file(path: Path) -> Any:
    with _quiet_transformers():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_file=str(path))


def _auto_from_folder(path: Path) -> Any:
    with _quiet_transformers():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


def _gpt2_from_folder(path: Path) -> Any:
    with _quiet_transformers():
        from transformers import GPT2TokenizerFast

        return GPT2TokenizerFast.from_pretrained(str(path))


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings while it loads a tokenizer (about config fields it reads) stay off stderr."""
    try:
        from transformers.utils import logging
    except ImportError:
        yield
        return
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
