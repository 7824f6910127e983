"""`zoo run`: generate text, as a stream, a batch, an interactive loop or a chat.

Everything that needs no graph (options, the model's config and tokenizer,
the prompts) is checked before the compile, and nothing reaches stdout before
the prompts have passed those checks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from zoo.core.errors import PromptError

if TYPE_CHECKING:
    from zoo.core.runtime.generation import TextGenerator
    from zoo.core.runtime.sampling import SamplingOptions

from .common import model_flags, quantize_flag, registry, sampling_flags, sampling_from, with_gguf_file


@click.command("run")
@click.argument("model")
@click.option("--prompt", "-p", "prompts", multiple=True, help="Prompt to complete (repeatable: one batch). Without it: interactive.")
@click.option("--prompts-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File with one prompt per line, run as one batch.")
@click.option("--chat", is_flag=True, help="Rich streaming chat session.")
@click.option("--benchmark", is_flag=True, help="Time compile, prefill and decode for this model and exit.")
@sampling_flags
@model_flags
@quantize_flag
def run_command(model: str, prompts: tuple[str, ...], prompts_file: Path | None, chat: bool, benchmark: bool, **flags: Any) -> None:
    """Generate text with MODEL (an alias, a HF repo id, a directory or a checkpoint file).

    With --prompt, stdout carries only the prompt and its continuation; progress
    goes to stderr. Without --prompt: an interactive prompt loop.
    """
    from zoo.core.loader import check_device_options, check_quantize_options, compile_prepared, pick_device, prepare_model
    from zoo.core.runtime.generation import TextGenerator, check_batch_memory, encode_prompts

    options = sampling_from(flags)
    model = with_gguf_file(model, flags.pop("gguf_file"))
    device, dtype, quantize = flags["device"], flags["dtype"], flags["quantize"]
    check_device_options(device, dtype)
    if quantize is not None:
        check_quantize_options(quantize, pick_device(device), dtype)
    all_prompts = list(prompts) + (read_prompts_file(prompts_file) if prompts_file else [])
    if benchmark:
        from zoo.bench.run import bench_model, format_report

        report = bench_model(model, contexts=[16, 256], new_tokens=max(2, options.max_new_tokens), device=device,
                             dtype=dtype, quantize=quantize, with_transformers=False, weights=flags["weights"],
                             tokenizer=flags["tokenizer"])
        click.echo(format_report(report))
        return

    prepared = prepare_model(model, registry(), weights=flags["weights"], tokenizer=flags["tokenizer"])
    if prepared.tokenizer is None:
        raise PromptError("this model has no tokenizer; pass --tokenizer PATH")
    if all_prompts:
        itemsize = 2 if dtype == "bfloat16" else 4
        check_batch_memory(prepared.config, [1] * len(all_prompts), options.max_new_tokens, itemsize)  # before encoding them all
        encoded = encode_prompts(prepared.tokenizer, prepared.config, all_prompts)
        check_batch_memory(prepared.config, [len(ids) for ids in encoded], options.max_new_tokens, itemsize)
    if chat and prepared.tokenizer.chat_template:
        prepared.tokenizer.render_chat([{"role": "user", "content": "Hello"}])  # a broken template fails now, not after the compile
    generator = TextGenerator(compile_prepared(prepared, device=device, dtype=dtype, quantize=quantize))
    if chat:
        from .interactive import chat_loop

        chat_loop(generator, options)
    elif not all_prompts:
        from .interactive import prompt_loop

        prompt_loop(generator, options)
    elif len(all_prompts) == 1:
        stream_one(generator, all_prompts[0], options)
    else:
        completions = generator.generate(all_prompts, options)
        click.echo("\n\n".join(c.prompt + c.text for c in completions))


MAX_PROMPTS_FILE = 64 << 20


def read_prompts_file(path: Path) -> list[str]:
    """One prompt per non-blank line of a UTF-8 text file (at most 64 MiB; a pipe is fine)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PROMPTS_FILE + 1)
    except OSError as error:
        raise PromptError(f"cannot read --prompts-file {path}: {error.strerror or error}") from None
    if len(data) > MAX_PROMPTS_FILE:
        raise PromptError(f"--prompts-file {path} is larger than {MAX_PROMPTS_FILE >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PromptError(f"--prompts-file {path} is not UTF-8 text") from None
    if "\x00" in text:
        raise PromptError(f"--prompts-file {path} is not a text file")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not lines:
        raise PromptError(f"--prompts-file {path} has no prompts (it is empty or blank)")
    return lines


def stream_one(generator: TextGenerator, prompt: str, options: SamplingOptions) -> None:
    """Prints the prompt, then the continuation as it is generated."""
    out = sys.stdout
    out.write(prompt)
    out.flush()
    for _, delta in generator.stream([prompt], options):
        out.write(delta)
        out.flush()
    out.write("\n")
    out.flush()
