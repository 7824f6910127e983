"""`zoo bench`'s report: one row per context, and the plain-text table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .measure import Rates


def context_row(context: int, zoo: Rates, hf: Rates | None) -> dict[str, Any]:
    """One context's figures; transformers fields are None when it was not run."""
    return {
        "context": context,
        "zoo_prefill_tok_s": zoo.prefill_tok_s,
        "zoo_decode_tok_s": zoo.decode_tok_s,
        "zoo_decode_ms_per_token": zoo.decode_ms_per_token,
        "transformers_prefill_tok_s": hf.prefill_tok_s if hf else None,
        "transformers_decode_tok_s": hf.decode_tok_s if hf else None,
        "transformers_decode_ms_per_token": hf.decode_ms_per_token if hf else None,
        "prefill_speedup": zoo.prefill_tok_s / hf.prefill_tok_s if hf else None,
        "decode_speedup": zoo.decode_tok_s / hf.decode_tok_s if hf else None,
        "matching_tokens": _common_prefix(zoo.tokens, hf.tokens) if hf else None,
    }


def encoded_row(float32: Rates, encoded: Rates, float_bytes: int, encoded_bytes: int) -> dict[str, Any]:
    """One context's figures for the encoded-weights model beside the float32 one: rates,
    their ratios and the effective bandwidth of each decode (weight bytes per token x tokens/s)."""
    return {
        "encoded_prefill_tok_s": encoded.prefill_tok_s,
        "encoded_decode_tok_s": encoded.decode_tok_s,
        "encoded_decode_ms_per_token": encoded.decode_ms_per_token,
        "encoded_over_float32_decode": encoded.decode_tok_s / float32.decode_tok_s,
        "encoded_over_float32_prefill": encoded.prefill_tok_s / float32.prefill_tok_s,
        "float32_decode_gb_s": float_bytes * float32.decode_tok_s / 1e9,
        "encoded_decode_gb_s": encoded_bytes * encoded.decode_tok_s / 1e9,
    }


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def growth(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    """The largest context's value over the smallest's."""
    first, last = rows[0][key], rows[-1][key]
    return None if first is None or last is None else last / first

def format_report(result: dict[str, Any]) -> str:
    """A plain-text report of `bench_model`'s result."""
    head = (
        f"{result['model']} ({'random' if result.get('random_weights') else 'checkpoint'} weights) "
        f"on {result['device']}, {result['dtype']}, "
        f"{result['threads']} threads, {result['new_tokens']} new tokens, median of {result['repeats']}\n"
        f"compile {result['compile_seconds']:.1f} s, ready (load + compile) {result['load_seconds']:.1f} s, "
        f"peak memory {result['peak_memory_mb']:.0f} MB"
    )
    columns = [
        ("context", "context", "{:d}"),
        ("zoo prefill tok/s", "zoo_prefill_tok_s", "{:.1f}"),
        ("zoo decode tok/s", "zoo_decode_tok_s", "{:.2f}"),
        ("zoo ms/token", "zoo_decode_ms_per_token", "{:.1f}"),
        ("hf prefill tok/s", "transformers_prefill_tok_s", "{:.1f}"),
        ("hf decode tok/s", "transformers_decode_tok_s", "{:.2f}"),
        ("hf ms/token", "transformers_decode_ms_per_token", "{:.1f}"),
        ("decode zoo/hf", "decode_speedup", "{:.2f}x"),
    ]
    encoded = result.get("encoded")
    if encoded:
        label = encoded["quantize"]
        columns += [
            (f"{label} prefill tok/s", "encoded_prefill_tok_s", "{:.1f}"),
            (f"{label} decode tok/s", "encoded_decode_tok_s", "{:.2f}"),
            (f"decode {label}/f32", "encoded_over_float32_decode", "{:.2f}x"),
            ("f32 GB/s", "float32_decode_gb_s", "{:.1f}"),
            (f"{label} GB/s", "encoded_decode_gb_s", "{:.1f}"),
        ]
    cells = [[title for title, _, _ in columns]]
    for row in result["contexts"]:
        cells.append(["-" if row[key] is None else fmt.format(row[key]) for _, key, fmt in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    growth_line = f"zoo decode ms/token, largest context over smallest: {_fmt(result['decode_ms_growth'], '{:.2f}')}"
    if result.get("transformers_decode_ms_growth") is not None:
        growth_line += f" (transformers {result['transformers_decode_ms_growth']:.2f})"
    tail = [growth_line]
    if encoded:
        held = ", ".join(f"{count} {name}" for name, count in encoded["encodings"].items())
        tail.append(
            f"weights read per decode step: float32 {result['weight_bytes_per_token'] / 1e6:.1f} MB, "
            f"{encoded['quantize']} {encoded['weight_bytes_per_token'] / 1e6:.1f} MB ({held} tensors)"
        )
    startup = result.get("startup")
    if startup:
        parts = ", ".join(f"{key[:-2].replace('_', ' ')} {value:.2f}" for key, value in startup.items())
        tail.append(f"time to first token {result['time_to_first_token_s']:.2f} s ({parts})")
    return "\n".join([head, "", *lines, "", *tail])


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
