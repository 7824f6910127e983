"""`zoo bench`: zoo's engine against HF transformers `generate` on the same weights.

For each context length, a prompt of that many random token ids (fixed seed)
goes through both sides with greedy decoding and a fixed number of new tokens
(no early stop). Prefill is the time from the call to the first new token;
decode is the time for the remaining `new_tokens - 1` tokens, so the two are
measured within one run. Each figure is the median of a few runs, after one
warm-up run per side.

With `random_weights`, the model is built offline from its alias's hub config
by transformers (seeded), and that same state dict is compiled by zoo.

MAX and torch are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.core.errors import ZooError

Log = Callable[[str], None]

SEED = 0
WARMUP_TOKENS = 8


def _log(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)


@dataclass
class Timing:
    """One generation run: seconds to the first new token, seconds for the rest, and the tokens."""

    prefill_s: float
    decode_s: float
    tokens: list[int]


@dataclass
class Rates:
    """Median throughput over repeated runs at one context length."""

    prefill_tok_s: float
    decode_tok_s: float
    tokens: list[int]

    @property
    def decode_ms_per_token(self) -> float:
        return 1000.0 / self.decode_tok_s


def run_bench(
    model_ref: str,
    *,
    random_weights: bool,
    contexts: Sequence[int],
    new_tokens: int,
    device: str = "cpu",
    dtype: str | None = None,
    with_transformers: bool = True,
    registry: Any = None,
    log: Log = _log,
    repeats: int = 3,
) -> dict[str, Any]:
    """Benchmarks `model_ref` and returns the JSON-ready result (see `format_table`)."""
    from zoo.core.loader import describe_device, pick_device, pick_dtype

    contexts = check_request(contexts, new_tokens, repeats)
    if registry is None:
        from zoo.plugins.manager import get_registry

        registry = get_registry()
    max_device = pick_device(device)
    max_dtype = pick_dtype(dtype, max_device)
    architecture, config, weights = prepare(model_ref, registry, random_weights, contexts, new_tokens, log)
    threads = os.cpu_count() or 1

    torch_threads = _set_torch_threads(threads)
    try:
        loaded = compile_zoo(model_ref, architecture, config, weights, max_device, max_dtype, log)
        zoo = measure(contexts, config.vocab_size, new_tokens, repeats, ZooRunner(loaded), "engine", log)
        hf: dict[int, Rates] = {}
        hf_info: dict[str, Any] = {}
        if with_transformers:
            runner = HFRunner.create(weights, max_device, max_dtype)
            hf_info = runner.describe()
            hf = measure(contexts, config.vocab_size, new_tokens, repeats, runner, "transformers", log)
    finally:
        _set_torch_threads(torch_threads)

    rows = [context_row(c, zoo[c], hf.get(c)) for c in contexts]
    return {
        "model": model_ref,
        "architecture": architecture.name,
        "random_weights": random_weights,
        "weights": "random" if random_weights else weights.source,
        "device": describe_device(max_device),
        "dtype": max_dtype.name,
        "threads": threads,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "compile_seconds": loaded.compile_seconds,
        "peak_memory_mb": peak_memory_mb(),
        **hf_info,
        "contexts": rows,
        "decode_ms_growth": growth(rows, "zoo_decode_ms_per_token"),
        "transformers_decode_ms_growth": growth(rows, "transformers_decode_ms_per_token"),
    }


def check_request(contexts: Sequence[int], new_tokens: int, repeats: int) -> list[int]:
    """Validates the options that need no model; returns the contexts sorted and deduplicated."""
    if not contexts:
        raise ZooError("--contexts needs at least one context length")
    if any(int(c) != c or c < 1 for c in contexts):
        raise ZooError(f"--contexts must be positive integers, got {list(contexts)}")
    if new_tokens < 2:
        raise ZooError(f"--new-tokens must be at least 2 (decode is timed after the first token), got {new_tokens}")
    if repeats < 1:
        raise ZooError(f"repeats must be at least 1, got {repeats}")
    return sorted({int(c) for c in contexts})


def check_fits(model_ref: str, contexts: Sequence[int], new_tokens: int, context_length: int) -> None:
    """Every prompt plus its new tokens must fit the model's context."""
    longest = max(contexts)
    if longest + new_tokens > context_length:
        raise ZooError(
            f"context {longest} + {new_tokens} new tokens exceed {model_ref}'s context length "
            f"{context_length}; use contexts up to {context_length - new_tokens} or fewer --new-tokens"
        )


# --- weights -----------------------------------------------------------------------------


@dataclass
class Weights:
    """What both sides are built from: the HF config, the tensors, and where they came from."""

    hf_config: dict[str, Any]
    tensors: dict[str, Any]
    source: str
    folder: Path | None = None  # a HF checkpoint directory transformers can load
    hf_model: Any = None  # the transformers model, when it was built first (random weights)


def prepare(
    model_ref: str, registry: Any, random_weights: bool, contexts: Sequence[int], new_tokens: int, log: Log
) -> tuple[Any, Any, Weights]:
    """Architecture, zoo config and weights; the lengths are checked before any model is built."""
    if random_weights:
        hf_config = hub_config(model_ref, registry)
        architecture, config = model_config(hf_config, registry, model_ref, contexts, new_tokens)
        return architecture, config, random_weights_for(model_ref, hf_config, log)
    weights = real_weights(model_ref, registry, log)
    architecture, config = model_config(weights.hf_config, registry, model_ref, contexts, new_tokens)
    return architecture, config, weights


def model_config(
    hf_config: dict[str, Any], registry: Any, model_ref: str, contexts: Sequence[int], new_tokens: int
) -> tuple[Any, Any]:
    """The architecture and zoo config for `hf_config`, checked against the requested lengths."""
    from zoo.core.loader import architecture_for

    architecture = architecture_for(hf_config, registry)
    config = architecture.config_class.from_hf(hf_config)
    check_fits(model_ref, contexts, new_tokens, config.context_length)
    return architecture, config


def random_weights_for(model_ref: str, hf_config: dict[str, Any], log: Log) -> Weights:
    """transformers builds the model (seeded); zoo gets that model's own state dict."""
    log(f"building {model_ref} with random weights (seed {SEED}) from its config")
    model = random_hf_model(hf_config, SEED)
    return Weights(hf_config, dict(model.state_dict()), "random", hf_model=model)


def hub_config(model_ref: str, registry: Any) -> dict[str, Any]:
    """The model's `config.json`: the alias's copy, a directory's file, or just that file from the hub."""
    from zoo.core.checkpoint import read_config
    from zoo.core.sources import download_file, resolve_source

    source = resolve_source(model_ref, registry)
    if source.kind == "alias" and source.alias is not None and source.alias.hf_config:
        return dict(source.alias.hf_config)
    if source.kind == "dir" and source.path is not None:
        return read_config(source.path)
    if source.kind in ("alias", "hub") and source.repo_id is not None:
        return read_config(download_file(source.repo_id, "config.json").parent)
    raise ZooError(
        f"--random-weights needs a model alias, hub id or checkpoint directory (for its config.json), not the file {model_ref}"
    )


def random_hf_model(hf_config: dict[str, Any], seed: int) -> Any:
    """A transformers causal LM with `hf_config`'s shapes and seeded random weights, in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(hf_config)
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise ZooError("the model's config has no model_type, so transformers cannot build it")
    try:
        config = AutoConfig.for_model(model_type, **fields)
    except (ValueError, KeyError) as error:
        raise ZooError(f"transformers cannot build a {model_type!r} model: {error}") from None
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def real_weights(model_ref: str, registry: Any, log: Log) -> Weights:
    """Reads the checkpoint (no tokenizer needed); HF directories are also what transformers loads."""
    from zoo.core.checkpoint import find_weights, read_config, read_tensors
    from zoo.core.loader import read_checkpoint
    from zoo.core.sources import download, resolve_source

    source = resolve_source(model_ref, registry)
    single_file = source.kind == "file" or (source.alias is not None and source.alias.weights_file)
    if single_file:
        checkpoint = read_checkpoint(source, registry)
        return Weights(dict(checkpoint.hf_config), dict(checkpoint.tensors), checkpoint.source)
    folder = source.path if source.kind == "dir" else download(source.repo_id)
    assert folder is not None
    log(f"reading {source.describe()}")
    tensors = read_tensors(find_weights(folder))
    return Weights(read_config(folder), tensors, source.describe(), folder=folder)


# --- the two sides -----------------------------------------------------------------------


def compile_zoo(model_ref: str, architecture: Any, config: Any, weights: Weights, device: Any, dtype: Any, log: Log) -> Any:
    """Compiles the weights into a `LoadedModel` (no tokenizer: the engine runs on ids)."""
    from zoo.core.loader import LoadedModel, compile_model, describe_device

    log(f"compiling {architecture.name} on {describe_device(device)}, {dtype.name} (a new graph takes minutes)")
    graph, seconds = compile_model(architecture, config, dict(weights.tensors), device, dtype)
    log(f"compiled in {seconds:.1f}s")
    return LoadedModel(model_ref, architecture, config, None, graph, device, dtype, weights.source, seconds)


class ZooRunner:
    """Greedy generation through zoo's KV-cached engine."""

    def __init__(self, loaded: Any) -> None:
        from zoo.core.engine import Engine

        self.engine = Engine(loaded)

    def __call__(self, prompt: list[int], new_tokens: int) -> Timing:
        from zoo.core.sampling import SamplingOptions

        options = SamplingOptions(greedy=True, max_new_tokens=new_tokens)
        started = time.perf_counter()
        steps = self.engine.generate([prompt], options)
        tokens = [int(next(steps)[0])]
        first = time.perf_counter()
        tokens += [int(step[0]) for step in steps]
        finished = time.perf_counter()
        return Timing(first - started, finished - first, tokens)


class HFRunner:
    """Greedy `generate` of a transformers model, timed token by token through a streamer."""

    def __init__(self, model: Any, torch_device: str) -> None:
        self.model = model
        self.torch_device = torch_device

    @classmethod
    def create(cls, weights: Weights, max_device: Any, max_dtype: Any) -> "HFRunner":
        import torch

        from zoo.core.loader import torch_dtype_for

        torch_dtype = torch_dtype_for(max_dtype)
        torch_device = "cuda" if not max_device.is_host and torch.cuda.is_available() else "cpu"
        model = weights.hf_model if weights.hf_model is not None else hf_model_for(weights)
        return cls(model.to(device=torch_device, dtype=torch_dtype).eval(), torch_device)

    def describe(self) -> dict[str, Any]:
        import transformers

        return {
            "transformers_version": transformers.__version__,
            "transformers_device": self.torch_device,
            "transformers_attention": getattr(self.model.config, "_attn_implementation", None),
        }

    def __call__(self, prompt: list[int], new_tokens: int) -> Timing:
        import torch

        ids = torch.tensor([prompt], dtype=torch.long, device=self.torch_device)
        clock = _TokenClock()
        pad = _pad_token_id(self.model.config)
        with torch.inference_mode():
            started = time.perf_counter()
            out = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                num_beams=1,
                use_cache=True,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=pad,
                streamer=clock,
            )
        stamps = clock.stamps
        if len(stamps) != new_tokens + 1:  # the prompt, then one stamp per new token
            raise ZooError(f"transformers streamed {len(stamps) - 1} tokens, expected {new_tokens}")
        tokens = [int(t) for t in out[0, len(prompt) :]]
        return Timing(stamps[1] - started, stamps[-1] - stamps[1], tokens)


class _TokenClock:
    """A transformers streamer (duck-typed `BaseStreamer`) that only notes when each `put` happens:
    once for the prompt, then once per new token."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, value: Any) -> None:
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def _pad_token_id(config: Any) -> int:
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        eos = getattr(config, "eos_token_id", None)
        pad = eos[0] if isinstance(eos, (list, tuple)) else eos
    return int(pad) if pad is not None else 0


def hf_model_for(weights: Weights) -> Any:
    """transformers' model on the same weights: `from_pretrained` on a directory, else the tensors loaded in."""
    from transformers import AutoModelForCausalLM

    if weights.folder is not None:
        return AutoModelForCausalLM.from_pretrained(str(weights.folder))
    model = random_hf_model(weights.hf_config, SEED)
    result = model.load_state_dict(weights.tensors, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    missing = sorted(set(result.missing_keys) - tied)
    if missing:
        raise ZooError(f"transformers' model does not take these weights (missing {', '.join(missing[:5])}); use --no-transformers")
    return model


# --- measuring ---------------------------------------------------------------------------


Runner = Callable[[list[int], int], Timing]


def prompt_ids(context: int, vocab_size: int) -> list[int]:
    """Random token ids, the same for both sides and every run."""
    import numpy as np

    return np.random.default_rng(SEED + context).integers(0, vocab_size, size=context).tolist()


def measure(
    contexts: Sequence[int], vocab_size: int, new_tokens: int, repeats: int, runner: Runner, label: str, log: Log
) -> dict[int, Rates]:
    """Warms `runner` up once, then times it `repeats` times at each context length."""
    runner(prompt_ids(WARMUP_TOKENS, vocab_size), 2)
    rates = {}
    for context in contexts:
        prompt = prompt_ids(context, vocab_size)
        runs = [runner(prompt, new_tokens) for _ in range(repeats)]
        rates[context] = median_rates(runs, context, new_tokens)
        log(
            f"{label} at context {context}: prefill {rates[context].prefill_tok_s:.1f} tok/s, "
            f"decode {rates[context].decode_tok_s:.2f} tok/s"
        )
    return rates


def median_rates(runs: Sequence[Timing], context: int, new_tokens: int) -> Rates:
    prefill = statistics.median(r.prefill_s for r in runs)
    decode = statistics.median(r.decode_s for r in runs)
    return Rates(context / prefill, (new_tokens - 1) / decode, runs[0].tokens)


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


def peak_memory_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _set_torch_threads(count: int) -> int:
    """Sets torch's intra-op threads; returns the previous count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    return previous


# --- output ------------------------------------------------------------------------------


def format_table(result: dict[str, Any]) -> str:
    """A plain-text report of `run_bench`'s result."""
    head = (
        f"{result['model']} ({'random' if result.get('random_weights') else 'checkpoint'} weights) "
        f"on {result['device']}, {result['dtype']}, "
        f"{result['threads']} threads, {result['new_tokens']} new tokens, median of {result['repeats']}\n"
        f"compile {result['compile_seconds']:.1f} s, peak memory {result['peak_memory_mb']:.0f} MB"
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
    cells = [[title for title, _, _ in columns]]
    for row in result["contexts"]:
        cells.append(["-" if row[key] is None else fmt.format(row[key]) for _, key, fmt in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    growth_line = f"zoo decode ms/token, largest context over smallest: {_fmt(result['decode_ms_growth'], '{:.2f}')}"
    if result.get("transformers_decode_ms_growth") is not None:
        growth_line += f" (transformers {result['transformers_decode_ms_growth']:.2f})"
    return "\n".join([head, "", *lines, "", growth_line])


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
