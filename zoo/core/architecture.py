"""What a plugin registers: architectures, model aliases and weight formats.

These records hold no MAX or torch objects, so that listing them is cheap.
Builders, mappers and readers may be given as callables or as
`"module:attribute"` strings, which are imported only when a model is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ModelConfig
from .errors import PluginError, ZooError, describe_failure

if TYPE_CHECKING:
    from .checkpoints.gguf_layout import GGUFLayout
    from .checkpoints.tokenizer import Tokenizer

# A weight mapper: (checkpoint tensors by HF name, config) -> tensors by zoo module name. The
# tensors are NumPy arrays (bfloat16 ones of ml_dtypes' type), torch tensors (`pytorch_model.bin`
# checkpoints) or `QuantizedWeight`s; `zoo.core.checkpoints.arrays` has helpers that take either kind.
WeightMapper = Callable[[Mapping[str, Any], ModelConfig], dict[str, Any]]
# A model builder: config -> a `zoo.core.blocks.decoder.DecoderLM` (constructed under `F.lazy()`).
ModelBuilder = Callable[[ModelConfig], Any]

SHARED_DECODER = "zoo.core.blocks.decoder:build_decoder"


def resolve(target: Callable[..., Any] | str) -> Callable[..., Any]:
    """Returns `target`, importing it first if it is a `"module:attribute"` string."""
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def call_plugin(record: Any, what: str, target: Callable[..., Any] | str, *args: Any, returns: Any = None) -> Any:
    """Calls one of a plugin record's functions (importing a `"module:attribute"` first).

    A `ZooError` it raises is the user's error and passes through; anything
    else it raises (`sys.exit` included) or a result that is not a `returns`
    is a `PluginError` naming the plugin, so a plugin's bug is one line.
    """
    plugin = getattr(record, "plugin", "") or "unknown"
    try:
        result = resolve(target)(*args)
    except ZooError:
        raise
    except (Exception, SystemExit) as error:
        raise PluginError(f"plugin {plugin!r}: {what} failed: {describe_failure(error)}") from None
    if returns is not None and not isinstance(result, returns):
        expected = returns.__name__ if isinstance(returns, type) else " or ".join(t.__name__ for t in returns)
        raise PluginError(f"plugin {plugin!r}: {what} returned a {type(result).__name__}, not a {expected}")
    return result


@dataclass(frozen=True)
class Variant:
    """A small random checkpoint of an architecture for `zoo verify`: HF `config.json` fields
    (sizes and options) on top of which verify builds the transformers reference model."""

    name: str
    hf_config: Mapping[str, Any]
    prompt_lengths: tuple[int, ...] = (7, 3)
    new_tokens: int = 8


@dataclass(frozen=True)
class Architecture:
    """One architecture: its config class, weight mapper and (usually shared) model builder.

    `name` is the HF `architectures` value in `config.json` (e.g. `GPT2LMHeadModel`).
    `reference` is the transformers model class `zoo verify` compares against
    (`"transformers:Name"`, by default the class named `name`), and `variants`
    the small configs it builds for that comparison. `gguf` says how llama.cpp's
    GGUF files of the architecture are laid out, if zoo reads and writes them.
    """

    name: str
    config_class: type[ModelConfig]
    map_weights: WeightMapper | str
    build_model: ModelBuilder | str = SHARED_DECODER
    description: str = ""
    plugin: str = ""
    reference: str = ""
    variants: tuple[Variant, ...] = ()
    gguf: GGUFLayout | None = None

    def builder(self) -> ModelBuilder:
        return resolve(self.build_model)

    def mapper(self) -> WeightMapper:
        return resolve(self.map_weights)

    @property
    def reference_class(self) -> str:
        return self.reference or f"transformers:{self.name}"


@dataclass(frozen=True)
class ModelAlias:
    """A short name for a real checkpoint on the Hugging Face Hub."""

    name: str
    repo_id: str
    architecture: str
    description: str = ""
    parameters: int | None = None
    plugin: str = ""
    weights_file: str | None = None
    """For a repo holding a single non-HF checkpoint file (llama2.c `.bin`, GGUF): its path in the repo."""
    tokenizer_file: str | None = None
    """The tokenizer file to fetch alongside `weights_file`."""
    hf_config: Mapping[str, Any] | None = None
    """The hub checkpoint's `config.json` (or its essential fields), so that
    `zoo bench --random-weights` and `zoo info` work without a download."""


@dataclass
class Checkpoint:
    """A checkpoint read into memory: HF-style config and tensors, plus its tokenizer."""

    hf_config: dict[str, Any]
    tensors: Mapping[str, Any]
    tokenizer: Tokenizer | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WeightFormat:
    """A non-HF checkpoint format (for example llama2.c's `.bin`).

    `matches(path)` says whether a file is in this format; `read_config(path)`
    returns its HF-style `config.json` dict cheaply (no tensors), and
    `load(path, tokenizer_path)` reads it into a `Checkpoint` whose config and
    tensor names follow HF, so the architecture's own mapper applies.
    With `with_registry`, both also get the registry as their last argument
    (a format whose files hold many architectures asks theirs).
    """

    name: str
    matches: Callable[[Path], bool] | str
    load: Callable[..., Checkpoint] | str
    read_config: Callable[..., dict[str, Any]] | str
    description: str = ""
    plugin: str = ""
    with_registry: bool = False
