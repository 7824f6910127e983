"""`zoo quantize`: any checkpoint zoo reads, written as a GGUF file of one type that llama.cpp runs."""

from __future__ import annotations

from pathlib import Path

from zoo.core.errors import OptionsError
from zoo.core.registry import Registry

from .gguf_writer import TARGETS, WrittenFile, layout_for, write_gguf


def tokenizer_folder(source_kind: str, source_path: Path | None, repo_id: str | None, tokenizer: Path | None) -> Path | None:
    """Where the tokenizer files of a checkpoint are (for the special tokens, merges and chat template)."""
    if tokenizer is not None:
        return tokenizer if tokenizer.is_dir() else tokenizer.parent
    if source_kind == "dir":
        return source_path
    if source_kind == "hub" and repo_id is not None:
        from .sources import download

        return download(repo_id)
    return None


def quantize_model(
    ref: str, target: str, out: Path, registry: Registry | None = None, *,
    weights: Path | None = None, tokenizer: Path | None = None,
) -> WrittenFile:
    """Reads `ref` (alias, hub id, folder or file) and writes it to `out` as a GGUF file of `target`."""
    from zoo.core.loader import prepare_model
    from zoo.core.resolve import default_registry

    from .gguf_vocab import tokenizer_fields

    if target not in TARGETS:
        raise OptionsError(f"unknown --to {target!r} (choose {', '.join(TARGETS)})")
    if out.exists() and out.is_dir():
        raise OptionsError(f"-o {out} is a directory; give the GGUF file to write")
    prepared = prepare_model(ref, registry, weights=weights, tokenizer=tokenizer)
    checkpoint, source = prepared.checkpoint, prepared.resolved.source
    hf = dict(checkpoint.hf_config)
    layout = layout_for(prepared.resolved.architecture, registry or default_registry())
    folder = tokenizer_folder(source.kind, source.path, source.repo_id, tokenizer)
    fields = tokenizer_fields(checkpoint, folder, hf, layout)
    name = Path(source.filename or source.path or source.repo_id or ref).name.removesuffix(".gguf")
    return write_gguf(layout, hf, checkpoint.tensors, out, target, fields, name)
