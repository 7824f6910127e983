"""`zoo perplexity`: a model's perplexity on a text file, with llama-perplexity's protocol."""

from __future__ import annotations

import json
from pathlib import Path

import click

from zoo.core.errors import PromptError

from .common import json_flag, model_flags, with_gguf_file


@click.command("perplexity")
@click.argument("model")
@click.option("--file", "text_file", type=click.Path(path_type=Path, dir_okay=False), required=True, help="UTF-8 text to score.")
@click.option("--context", type=int, default=None, help="Window length in tokens [default: min(512, the model's context)].")
@json_flag
@model_flags
def perplexity_command(model: str, text_file: Path, context: int | None, as_json: bool, gguf_file: str | None,
                       weights: Path | None, tokenizer: Path | None, device: str, dtype: str | None) -> None:
    """Perplexity of MODEL on a text file: consecutive windows of --context tokens, each
    starting with BOS, the second half of each scored (llama.cpp's llama-perplexity protocol)."""
    from zoo.api import Model
    from zoo.core.loader import check_device_options, compile_prepared, prepare_model

    from .common import registry

    try:
        text = text_file.read_bytes().decode("utf-8")
    except OSError as error:
        raise PromptError(f"cannot read --file {text_file}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise PromptError(f"--file {text_file} is not UTF-8 text") from None
    text = text.removesuffix("\n")  # as llama-perplexity reads --file
    if not text.strip():
        raise PromptError(f"--file {text_file} is empty")
    if context is not None and not 4 <= context:
        raise PromptError(f"--context must be at least 4, got {context}")
    check_device_options(device, dtype)
    prepared = prepare_model(with_gguf_file(model, gguf_file), registry(), weights=weights, tokenizer=tokenizer)
    if context is not None and context > prepared.config.context_length:
        raise PromptError(f"--context {context} exceeds the model's context length {prepared.config.context_length}")
    result = Model(compile_prepared(prepared, device=device, dtype=dtype)).perplexity(text, context=context)
    if as_json:
        click.echo(json.dumps({"model": model, "file": str(text_file), **result.__dict__}, indent=2))
        return
    click.echo(f"perplexity {result.perplexity:.4f} over {result.scored_tokens} tokens "
               f"({result.windows} windows of {result.window})")
