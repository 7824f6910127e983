"""`zoo bench` and `zoo bench-moe`: measuring and reporting live in `zoo.bench`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from zoo.core.errors import OptionsError

from .common import device_flag, dtype_flag, gguf_file_flag, json_flag, quantize_flag, registry, with_gguf_file


@click.command("bench")
@click.argument("model")
@click.option("--random-weights", is_flag=True, help="Use the model's real shapes with random weights (works offline for aliases).")
@click.option("--contexts", default="16,256,768", show_default=True, help="Comma-separated prompt lengths.")
@click.option("--new-tokens", type=int, default=64, show_default=True, help="Tokens to decode at each context.")
@json_flag
@click.option("--no-transformers", is_flag=True, help="Skip the HF transformers baseline.")
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="Weights file to use instead of the checkpoint directory's own.")
@click.option("--tokenizer", type=click.Path(path_type=Path), default=None, help="Tokenizer file or directory.")
@gguf_file_flag
@device_flag
@dtype_flag
@quantize_flag
def bench_command(model: str, random_weights: bool, contexts: str, new_tokens: int, as_json: bool,
                  no_transformers: bool, weights: Path | None, tokenizer: Path | None, gguf_file: str | None,
                  device: str, dtype: str | None, quantize: str | None) -> None:
    """Benchmark compile, prefill and decode speed against HF transformers.

    With --quantize TYPE (or an encoded checkpoint such as a GGUF file), the model also runs with
    encoded weights beside the float32 one: decode rates, weight bytes per token and GB/s."""
    from zoo.bench.run import bench_model, format_report

    model = with_gguf_file(model, gguf_file)
    try:
        lengths = [int(c) for c in contexts.split(",") if c.strip()]
    except ValueError:
        raise OptionsError(f"--contexts must be comma-separated integers, got {contexts!r}") from None
    report = bench_model(model, random_weights=random_weights, contexts=lengths, new_tokens=new_tokens, device=device,
                         dtype=dtype, quantize=quantize, with_transformers=not no_transformers, weights=weights, tokenizer=tokenizer,
                         registry=registry())
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@click.command("bench-moe")
@click.option("--context", type=int, default=16, show_default=True, help="Prompt length.")
@click.option("--new-tokens", type=int, default=32, show_default=True, help="Tokens to decode.")
@json_flag
def bench_moe_command(context: int, new_tokens: int, as_json: bool) -> None:
    """What mixture-of-experts routing costs: a Mixtral-shaped model against a dense Llama of the same active size."""
    from zoo.bench.moe import compare_decode

    if context < 1 or new_tokens < 2:
        raise OptionsError("--context must be >= 1 and --new-tokens >= 2")
    result = compare_decode(context=context, new_tokens=new_tokens)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for label in ("llama_active", "mixtral_grouped", "mixtral_dense"):
        ms = result[f"{label}_decode_ms_per_token"]
        ratio = "" if label == "llama_active" else f"  ({result[f'{label}_over_llama_active']:.2f}x the dense model)"
        click.echo(f"{label:16} {ms:7.2f} ms/token{ratio}")
