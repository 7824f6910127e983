"""What several commands share: click settings, the sampling and model flags, output helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from zoo.core.quantization import QUANTIZE_TYPES
from zoo.core.registry import Registry
from zoo.core.runtime.sampling import SamplingOptions

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])

_DEFAULTS = {name: field.default for name, field in SamplingOptions.model_fields.items()}

# flag, short flags, type, help; every default comes from SamplingOptions.
_SAMPLING_FLAGS: list[tuple[str, tuple[str, ...], Any, str]] = [
    ("max_new_tokens", ("-n",), int, "Tokens to generate at most."),
    ("temperature", ("--temp",), float, "Sampling temperature; 0 means greedy."),
    ("top_k", (), int, "Sample from the k most likely tokens only."),
    ("top_p", (), float, "Nucleus sampling: smallest token set with this total probability."),
    ("min_p", (), float, "Drop tokens below min_p times the top token's probability."),
    ("repetition_penalty", (), float, "Penalise tokens already in the prompt or output (>1 discourages)."),
    ("seed", (), int, "Random seed: same seed and options, same text."),
]


def sampling_flags(func: F) -> F:
    """The sampling flags (names as in `max generate` and llama.cpp), defaults from `SamplingOptions`."""
    decorators = []
    for name, short, kind, text in _SAMPLING_FLAGS:
        default = _DEFAULTS[name]
        shown = f" [default: {default}]" if default is not None else ""
        decorators.append(click.option(f"--{name.replace('_', '-')}", *short, name, type=kind, default=None, help=text + shown))
    decorators += [
        click.option("--greedy", is_flag=True, default=None, help="Always take the most likely token."),
        click.option("--stop", multiple=True, help="Stop when this string appears (repeatable)."),
        click.option("--ignore-eos", is_flag=True, default=None, help="Keep generating past the end-of-sequence token."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def sampling_from(values: dict[str, Any]) -> SamplingOptions:
    """Pops the sampling flags out of a command's keyword arguments and checks them."""
    picked = {name: values.pop(name) for name in list(values) if name in SamplingOptions.model_fields}
    if not picked.get("stop"):
        picked.pop("stop", None)
    return SamplingOptions.create(**picked)


def model_flags(func: F) -> F:
    """Where the weights, tokenizer, device and dtype come from."""
    decorators = [
        gguf_file_flag,
        click.option("--weights", type=click.Path(path_type=Path), default=None, help="Weights file to use instead of the checkpoint directory's own."),
        click.option("--tokenizer", type=click.Path(path_type=Path), default=None, help="Tokenizer file or directory (tokenizer.json, sentencepiece .model; llama2.c tokenizer.bin with llama2.c checkpoints)."),
        device_flag,
        dtype_flag,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


device_flag = click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True, help="Where to run.")
dtype_flag = click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None, help="Weights and activations dtype [default: float32 on CPU, bfloat16 on GPU].")
quantize_flag = click.option(
    "--quantize", type=click.Choice(QUANTIZE_TYPES), default=None,
    help="Encode the projection and embedding weights in memory (CPU; llama-quantize's type choices).",
)
json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
gguf_file_flag = click.option(
    "--gguf-file", default=None, metavar="NAME",
    help="The GGUF file to run from a hub repo (or folder) holding several; same as MODEL:NAME (MODEL:Q4_K_M picks by quantization).",
)


def with_gguf_file(model: str, gguf_file: str | None) -> str:
    """MODEL with --gguf-file NAME becomes MODEL:NAME, the reference that picks that file."""
    if gguf_file is None:
        return model
    if not gguf_file.lower().endswith(".gguf"):
        from zoo.core.errors import OptionsError

        raise OptionsError(f"--gguf-file must name a .gguf file, got {gguf_file!r} (MODEL:{gguf_file} picks by quantization)")
    return f"{model}:{gguf_file}"


def registry() -> Registry:
    from zoo.plugins.manager import get_registry

    return get_registry()
