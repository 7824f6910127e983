"""`zoo bench`: zoo's engine against HF transformers `generate` on the same weights.

For each context length, a prompt of that many random token ids (fixed seed)
goes through both sides with greedy decoding and a fixed number of new tokens
(no early stop). Prefill is the time from the call to the first new token;
decode is the time for the remaining `new_tokens - 1` tokens, so the two are
measured within one run. Each figure is the median of a few runs, after one
warm-up run per side.

The model goes through the same loader as `zoo run` (`prepare_model`,
`compile_prepared`); with `random_weights`, transformers builds the model from
the reference's config (seeded; an alias's stored config needs no download)
and zoo compiles that same state dict.

With `quantize` (or a checkpoint whose weights are encoded, such as a GGUF
file), zoo also runs the model with its weights encoded, in the same run,
beside the float32 one: each side's decode rate, the weight bytes one decode
step reads and so the effective bandwidth (bytes per token x tokens/s).
`time_to_first_token_s` is from the process's start to the first generated
token of the first model (imports, reading, compiling or loading the graphs
from MAX's cache, warm-up, one prefill); `startup` splits it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.core.architecture import Checkpoint
from zoo.core.errors import OptionsError
from zoo.core.loader import PreparedModel, check_device_options, compile_prepared, describe_device, prepare_model
from zoo.core.registry import Registry
from zoo.core.resolve import ResolvedModel, resolve_model

from .measure import SEED, Log, Rates, first_token_seconds, log_stderr, measure, peak_memory_mb, process_seconds
from .report import context_row, encoded_row, format_report, growth
from .runners import HFRunner, ZooRunner, hf_model_on, random_hf_model

__all__ = ["bench_model", "format_report"]


def check_request(contexts: Sequence[int], new_tokens: int, repeats: int) -> list[int]:
    """Validates the options that need no model; returns the contexts sorted and deduplicated."""
    if not contexts:
        raise OptionsError("--contexts needs at least one context length")
    if any(int(c) != c or c < 1 for c in contexts):
        raise OptionsError(f"--contexts must be positive integers, got {list(contexts)}")
    if new_tokens < 2:
        raise OptionsError(f"--new-tokens must be at least 2 (decode is timed after the first token), got {new_tokens}")
    if repeats < 1:
        raise OptionsError(f"repeats must be at least 1, got {repeats}")
    return sorted({int(c) for c in contexts})


def check_fits(model_ref: str, contexts: Sequence[int], new_tokens: int, context_length: int) -> None:
    """Every prompt plus its new tokens must fit the model's context."""
    longest = max(contexts)
    if longest + new_tokens > context_length:
        raise OptionsError(
            f"context {longest} + {new_tokens} new tokens exceed {model_ref}'s context length "
            f"{context_length}; use contexts up to {context_length - new_tokens} or fewer --new-tokens"
        )


def prepare_random(resolved: ResolvedModel, log: Log) -> tuple[PreparedModel, Any]:
    """The resolved config with seeded random weights built by transformers (and that model)."""
    log(f"building {resolved.ref} with random weights (seed {SEED}) from its config")
    model = random_hf_model(resolved.hf_config, SEED)
    checkpoint = Checkpoint(resolved.hf_config, dict(model.state_dict()), None, source="random")
    return PreparedModel(resolved, resolved.config, checkpoint), model


def bench_model(
    ref: str,
    *,
    random_weights: bool = False,
    contexts: Sequence[int] = (16, 256, 768),
    new_tokens: int = 64,
    device: str = "cpu",
    dtype: str | None = None,
    quantize: str | None = None,
    with_transformers: bool = True,
    weights: Path | None = None,
    tokenizer: Path | None = None,
    registry: Registry | None = None,
    repeats: int = 3,
    log: Log = log_stderr,
) -> dict[str, Any]:
    """Benchmarks `ref` and returns the JSON-ready report (see `format_report`)."""
    from zoo.core.quantization import check_quantize, holds_low_precision

    contexts = check_request(contexts, new_tokens, repeats)
    check_device_options(device, dtype)
    check_quantize(quantize)
    imports = process_seconds()
    started = time.perf_counter()
    if random_weights:
        resolved = resolve_model(ref, registry)
        check_fits(ref, contexts, new_tokens, resolved.config.context_length)
        prepared, hf_model = prepare_random(resolved, log)
    else:
        prepared = prepare_model(ref, registry, weights=weights, tokenizer=tokenizer, need_tokenizer=False)
        check_fits(ref, contexts, new_tokens, prepared.config.context_length)
        hf_model = None
    read = time.perf_counter() - started
    config = prepared.config
    encoded_source = holds_low_precision(prepared.checkpoint.tensors)
    threads = os.cpu_count() or 1
    torch_threads = _set_torch_threads(threads) if with_transformers else None  # torch runs only for transformers
    encoded: dict[int, Rates] = {}
    encoded_info: dict[str, Any] = {}
    try:
        log(f"compiling {prepared.resolved.architecture.name} (a new graph takes minutes, a cached one seconds)")
        # An encoded checkpoint's float32 baseline is the one an explicit --dtype asks for: decoded at load.
        loaded = compile_prepared(prepared, device=device, dtype=dtype or ("float32" if encoded_source else None), verbose=False)
        ready = time.perf_counter() - started
        log(f"compiled in {loaded.compile_seconds:.1f}s; ready {ready:.1f}s after the start")
        first_token = first_token_seconds(ZooRunner(loaded))
        startup = {
            "imports_s": imports,
            "read_s": read,
            "compile_s": loaded.compile_seconds,
            "map_and_warm_up_s": ready - read - loaded.compile_seconds,
            "first_token_s": first_token,
        }
        zoo = measure(contexts, config.vocab_size, new_tokens, repeats, ZooRunner(loaded), "engine", log)
        hf: dict[int, Rates] = {}
        hf_info: dict[str, Any] = {}
        if with_transformers:
            runner = _hf_runner(prepared, hf_model, loaded)
            hf_info = runner.describe()
            hf = measure(contexts, config.vocab_size, new_tokens, repeats, runner, "transformers", log)
        if quantize is not None or encoded_source:
            held = compile_prepared(prepared, device=device, quantize=quantize, verbose=False)
            label = quantize or "encoded"
            encoded = measure(contexts, config.vocab_size, new_tokens, repeats, ZooRunner(held), f"engine {label}", log)
            encoded_info = {
                "quantize": label,
                "encodings": held.graph.encodings,
                "weight_bytes_per_token": held.graph.weight_bytes_per_token,
                "compile_seconds": held.compile_seconds,
            }
    finally:
        if torch_threads is not None:
            _set_torch_threads(torch_threads)

    float_bytes = loaded.graph.weight_bytes_per_token
    rows = [context_row(c, zoo[c], hf.get(c)) for c in contexts]
    if encoded:
        for row in rows:
            row.update(encoded_row(zoo[row["context"]], encoded[row["context"]], float_bytes, encoded_info["weight_bytes_per_token"]))
    return {
        "model": ref,
        "architecture": prepared.resolved.architecture.name,
        "random_weights": random_weights,
        "weights": prepared.checkpoint.source,
        "device": describe_device(loaded.device),
        "dtype": loaded.dtype.name,
        "threads": threads,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "compile_seconds": loaded.compile_seconds,
        "load_seconds": ready,
        "time_to_first_token_s": imports + ready + first_token,
        "startup": startup,
        "weight_bytes_per_token": float_bytes,
        "encoded": encoded_info or None,
        "peak_memory_mb": peak_memory_mb(),
        **hf_info,
        "contexts": rows,
        "decode_ms_growth": growth(rows, "zoo_decode_ms_per_token"),
        "transformers_decode_ms_growth": growth(rows, "transformers_decode_ms_per_token"),
    }


def _hf_runner(prepared: PreparedModel, hf_model: Any, loaded: Any) -> HFRunner:
    import torch

    from zoo.core.loader import torch_dtype_for

    source = prepared.resolved.source
    if hf_model is None:
        folder = source.path if source.kind == "dir" and prepared.resolved.single_file is False else None
        hf_model = hf_model_on(prepared.checkpoint.hf_config, dict(prepared.checkpoint.tensors), folder)
    torch_device = "cuda" if not loaded.device.is_host and torch.cuda.is_available() else "cpu"
    return HFRunner(hf_model.to(device=torch_device, dtype=torch_dtype_for(loaded.dtype)).eval(), torch_device)


def _set_torch_threads(count: int) -> int:
    """Sets torch's intra-op threads; returns the previous count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    return previous
