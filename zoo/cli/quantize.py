"""`zoo quantize`: write a checkpoint as a GGUF file of one type, for zoo or llama.cpp."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.core.checkpoints.gguf_writer import TARGETS

from .common import gguf_file_flag, registry, with_gguf_file


@click.command("quantize")
@click.argument("model")
@click.option("--to", "target", required=True, type=click.Choice(list(TARGETS)),
              help="Tensor type: q4_k and q5_k are llama.cpp's Q4_K_M / Q5_K_M mixes (Q6_K output and some attn_v / ffn_down).")
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="GGUF file to write.")
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="Weights file to use instead of the checkpoint directory's own.")
@click.option("--tokenizer", type=click.Path(path_type=Path), default=None, help="Tokenizer file or directory to store in the file.")
@gguf_file_flag
def quantize_command(model: str, target: str, out: Path, weights: Path | None, tokenizer: Path | None, gguf_file: str | None) -> None:
    """Write MODEL (any checkpoint zoo reads) as a GGUF file llama.cpp loads, its weights in --to type."""
    from zoo.core.checkpoints.quantize import quantize_model

    written = quantize_model(with_gguf_file(model, gguf_file), target, out, registry(), weights=weights, tokenizer=tokenizer)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(written.type_counts().items()))
    size = written.path.stat().st_size / 1e6
    click.echo(f"zoo: wrote {written.path} ({size:.1f} MB, {written.file_type}; tensors: {counts})", err=True)
