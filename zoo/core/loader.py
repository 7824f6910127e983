"""From a model reference to a compiled, ready-to-run model, in two steps.

`prepare_model`: resolve the reference, read the config, tensors and tokenizer,
and check everything that needs no graph (config ranges, tokenizer against the
vocabulary), so callers can also check their prompts before paying for a
compile. `compile_prepared`: map the weights, build the MAX module lazily,
check every tensor's name, shape and dtype, compile the decoding head (and on
the CPU in float32 the one-token decode graph), then run one warm-up step.
`load_model` does both.

Encoded weights (`QuantizedWeight`, from a GGUF file or `quantize=TYPE`) stay
encoded in the model's projections and token embedding on the CPU
(`zoo.core.quantization`); an explicit dtype, or an accelerator, decodes them
at load instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .architecture import Architecture, Checkpoint, call_plugin, resolve
from .checkpoints.arrays import is_floating, is_torch
from .checkpoints.quantized import QuantizedWeight, StackedRows, as_float32
from .checkpoints.tokenizer import Tokenizer
from .config import ModelConfig
from .errors import ConfigError, OptionsError, PluginError, TokenizerError, WeightsError, ZooError, describe_failure
from .registry import Registry
from .resolve import ResolvedModel, architecture_for, default_registry, make_config, read_checkpoint, resolve_model

if TYPE_CHECKING:
    from max.driver import Device
    from max.dtype import DType

    from .blocks.heads import CompiledHead

DEVICES = ("auto", "cpu", "gpu")
DTYPES = ("float32", "bfloat16")
PIECES_PER_WEIGHT = 8  # at most this many graph values per mapped weight (parts, cut for MAX's matmul)


@dataclass
class PreparedModel:
    """A model read and checked, not yet compiled."""

    resolved: ResolvedModel
    config: ModelConfig
    checkpoint: Checkpoint

    @property
    def tokenizer(self) -> Tokenizer | None:
        return self.checkpoint.tokenizer


@dataclass
class LoadedModel:
    """A compiled model with what generation needs around it."""

    name: str
    architecture: Architecture
    config: ModelConfig
    tokenizer: Tokenizer | None
    graph: CompiledHead
    device: Device
    dtype: DType
    source: str
    compile_seconds: float


def check_device_options(device: str, dtype: str | None) -> None:
    """Device and dtype names, checked before anything is read."""
    if device not in DEVICES:
        raise OptionsError(f"unknown device {device!r} (choose auto, cpu or gpu)")
    if dtype is not None and dtype not in DTYPES:
        raise OptionsError(f"unsupported dtype {dtype!r} (choose float32 or bfloat16)")


def prepare_model(
    ref: str,
    registry: Registry | None = None,
    *,
    weights: Path | None = None,
    tokenizer: Path | None = None,
    need_tokenizer: bool = True,
) -> PreparedModel:
    """Resolves and reads `ref`; checks the tokenizer against the model's vocabulary (when
    `need_tokenizer`: a model run on token ids alone never builds a file's own tokenizer)."""
    resolved = resolve_model(ref, registry)
    checkpoint = read_checkpoint(resolved, registry, weights=weights, tokenizer=tokenizer, need_tokenizer=need_tokenizer)
    config = resolved.config
    if checkpoint.hf_config is not resolved.hf_config:  # read from the checkpoint's own files
        if architecture_for(checkpoint.hf_config, registry or default_registry()) is not resolved.architecture:
            raise ConfigError(f"{ref}: the downloaded config.json names another architecture than expected")
        config = make_config(resolved.architecture, checkpoint.hf_config)
    tok = checkpoint.tokenizer if need_tokenizer else None  # a deferred one stays unbuilt
    if tok is not None and tok.vocab_size > config.vocab_size:
        raise TokenizerError(
            f"the tokenizer has {tok.vocab_size} tokens but the model's vocabulary is {config.vocab_size}; "
            "pass the tokenizer the model was trained with (--tokenizer PATH)"
        )
    return PreparedModel(resolved, config, checkpoint)


def compile_prepared(
    prepared: PreparedModel,
    *,
    device: str = "auto",
    dtype: str | None = None,
    quantize: str | None = None,
    verbose: bool = True,
) -> LoadedModel:
    """Maps, checks and compiles a prepared model (encoding its weights with `quantize`),
    then warms it up."""
    resolved, checkpoint = prepared.resolved, prepared.checkpoint
    max_device = pick_device(device)
    max_dtype = pick_dtype(dtype, max_device)
    check_quantize_options(quantize, max_device, dtype)
    architecture = resolved.architecture

    def announce() -> None:
        if verbose:
            held = f", weights {quantize}" if quantize else ""
            log(f"{architecture.name} from {checkpoint.source} on {describe_device(max_device)}, {max_dtype.name}{held}; compiling...")

    graph, seconds = compile_model(
        architecture, prepared.config, dict(checkpoint.tensors), max_device, max_dtype, announce,
        quantize=quantize, keep_encoded=dtype is None or quantize is not None,
    )
    if verbose:
        done = "read the compiled graphs from zoo's graph cache" if graph.from_cache else "compiled"
        log(f"{done} in {seconds:.1f}s{held_encodings(graph.encodings, max_dtype)}")
    return LoadedModel(
        resolved.ref, architecture, prepared.config, checkpoint.tokenizer, graph, max_device, max_dtype, checkpoint.source, seconds
    )


def held_encodings(encodings: Mapping[str, int], dtype: DType) -> str:
    """"; weights held as 42 q4_k, 13 q6_k, 25 float32" where some weights stay encoded, else ""."""
    if set(encodings) <= {"float"}:
        return ""
    parts = [f"{count} {dtype.name if name == 'float' else name}" for name, count in encodings.items()]
    return "; weights held as " + ", ".join(parts)


def check_quantize_options(quantize: str | None, device: Device, dtype: str | None) -> None:
    """`quantize` needs a known type, the CPU and float32 activations."""
    from .quantization import check_quantize

    check_quantize(quantize)
    if quantize is None:
        return
    if not device.is_host:
        raise OptionsError(f"--quantize {quantize} runs on the CPU only (use --device cpu)")
    if dtype not in (None, "float32"):
        raise OptionsError(f"--quantize {quantize} computes in float32; it cannot be combined with --dtype {dtype}")


def load_model(
    ref: str,
    registry: Registry | None = None,
    *,
    weights: Path | None = None,
    tokenizer: Path | None = None,
    device: str = "auto",
    dtype: str | None = None,
    quantize: str | None = None,
    verbose: bool = True,
    need_tokenizer: bool = True,
) -> LoadedModel:
    """Resolves, reads, checks and compiles `ref` (alias, hub id, directory or file),
    with its weights encoded in `quantize` if given."""
    from .quantization import check_quantize

    check_device_options(device, dtype)
    check_quantize(quantize)
    prepared = prepare_model(ref, registry, weights=weights, tokenizer=tokenizer, need_tokenizer=need_tokenizer)
    return compile_prepared(prepared, device=device, dtype=dtype, quantize=quantize, verbose=verbose)


def check_weights(expected: Mapping[str, tuple[int, ...]], mapped: Mapping[str, Any]) -> None:
    """Raises one WeightsError naming missing, unexpected, mis-shaped and non-float tensors
    (an encoded `QuantizedWeight` counts as float, by its logical shape)."""
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(str(name) for name in set(mapped) - set(expected))
    common = set(expected) & set(mapped)
    not_tensor = sorted(f"{name} ({type(mapped[name]).__name__})" for name in common if _shape(mapped[name]) is None)
    misshaped = sorted(
        f"{name} {_shape(mapped[name])} != {expected[name]}"
        for name in common
        if _shape(mapped[name]) not in (None, expected[name])
    )
    not_float = sorted(
        f"{name} ({getattr(mapped[name], 'dtype', type(mapped[name]).__name__)})"
        for name in common
        if _shape(mapped[name]) is not None and not _is_float(mapped[name]) and not isinstance(mapped[name], StackedRows)
    )
    problems = []
    labelled = (("missing", missing), ("unexpected", unexpected), ("not tensors", not_tensor), ("mis-shaped", misshaped),
                ("not floating point", not_float))
    for label, names in labelled:
        if names:
            shown = ", ".join(names[:6]) + (f" (+{len(names) - 6} more)" if len(names) > 6 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise WeightsError("checkpoint does not fit the model: " + "; ".join(problems))


def _shape(tensor: Any) -> tuple[int, ...] | None:
    """A tensor's shape, or None for something that is not an array."""
    try:
        return tuple(int(d) for d in tensor.shape)
    except (AttributeError, TypeError, ValueError):
        return None


def _is_float(tensor: Any) -> bool:
    """Floating point, or a quantized weight (`QuantizedWeight`), which stands for floats."""
    return isinstance(tensor, QuantizedWeight) or is_floating(tensor)


def pick_device(name: str) -> Device:
    from max.driver import CPU, Accelerator, accelerator_count

    check_device_options(name, None)
    if name == "cpu":
        return CPU()
    if name == "gpu":
        if accelerator_count() == 0:
            raise OptionsError("--device gpu: no GPU (accelerator) is available on this machine")
        return Accelerator()
    return Accelerator() if accelerator_count() > 0 else CPU()


def pick_dtype(name: str | None, device: Device) -> DType:
    from max.dtype import DType

    check_device_options("auto", name)
    if name is None:
        return DType.float32 if device.is_host else DType.bfloat16
    return {"float32": DType.float32, "bfloat16": DType.bfloat16}[name]


def torch_dtype_for(dtype: DType) -> Any:
    """The torch dtype holding MAX `dtype` (float32 or bfloat16) on the host."""
    import torch
    from max.dtype import DType

    return torch.float32 if dtype == DType.float32 else torch.bfloat16


def compile_model(
    architecture: Architecture,
    config: ModelConfig,
    tensors: Mapping[str, Any],
    device: Device,
    dtype: DType,
    before_compile: Callable[[], None] | None = None,
    *,
    quantize: str | None = None,
    keep_encoded: bool = True,
) -> tuple[CompiledHead, float]:
    """Maps, checks and compiles (see `compile_mapped`)."""
    try:
        mapped = resolve(architecture.map_weights)(tensors, config)
    except ZooError:
        raise
    except (Exception, SystemExit) as error:
        raise WeightsError(f"{architecture.name}'s weight mapper failed on this checkpoint: {describe_failure(error)}") from None
    if not isinstance(mapped, Mapping):
        raise PluginError(f"plugin {architecture.plugin or 'unknown'!r}: {architecture.name}'s weight mapper returned a "
                          f"{type(mapped).__name__}, not a dict of tensors")
    mapped = dict(mapped)  # compile_mapped empties it as it takes the weights
    return compile_mapped(architecture, config, mapped, device, dtype, before_compile, quantize=quantize, keep_encoded=keep_encoded)


def compile_mapped(
    architecture: Architecture,
    config: ModelConfig,
    mapped: dict[str, Any],
    device: Device,
    dtype: DType,
    before_compile: Callable[[], None] | None = None,
    *,
    quantize: str | None = None,
    keep_encoded: bool = True,
) -> tuple[CompiledHead, float]:
    """Checks already-mapped tensors against the model, compiles the decoding head and warms
    it up; returns the compiled head and the compile time. `before_compile` runs once every
    check has passed.

    On the CPU with `keep_encoded`, encoded weights stay encoded where a module can hold
    them, and `quantize` encodes float ones (`quantization.prepare_weights`); otherwise
    every weight is decoded to `dtype`. The head records the weight bytes a decode step
    reads and how many weights each encoding holds.

    `mapped` is left empty: its tensors are taken one at a time into the graph's weights
    (on the host, one huge-page arena), so a source copied or converted on the way is
    freed as soon as its copy is placed, and the weights are never all held twice.
    """
    from max.experimental import functional as F
    from max.experimental.tensor import default_device, default_dtype
    from max.graph import DeviceRef

    from . import graph_cache, quantization, weight_arena
    from .blocks import kernels
    from .blocks.heads import CompiledHead, NextTokenHead, input_types
    from .blocks.linear import EncodedWeight
    from .runtime.engine import warm_up

    # Built lazily on the target device: random init is never materialised.
    with F.lazy(), default_dtype(dtype), default_device(device):
        model = call_plugin(architecture, f"{architecture.name}'s model builder", architecture.build_model, config)
        if model is None:
            raise PluginError(f"plugin {architecture.plugin or 'unknown'!r}: {architecture.name}'s model builder returned None")
        head = NextTokenHead(model)
        expected = {name[len("model.") :]: tuple(int(d) for d in p.shape) for name, p in head.parameters}
        check_weights(expected, mapped)
        holders = {
            f"{path[len('model.') :]}.weight": module
            for path, module in head.descendants
            if isinstance(module, EncodedWeight) and path.startswith("model.")
        }
        tied = bool(getattr(config, "tie_word_embeddings", False))
        held = quantization.prepare_weights(
            mapped, set(holders), quantize=quantize, keep_encoded=keep_encoded and device.is_host,
            output=quantization.output_weight(set(mapped), tied),
        )
        for name, tensor in held.items():
            if isinstance(tensor, (QuantizedWeight, StackedRows)):
                holders[name].hold_encoded(tensor)
    if before_compile is not None:
        before_compile()
    encoded = any(isinstance(t, (QuantizedWeight, StackedRows)) for t in held.values())
    per_token = quantization.bytes_per_token(held, tied=tied, itemsize=dtype.size_in_bytes)
    encodings = quantization.describe_encodings(held)
    layout = quantization.weight_encodings(held)

    def graph_values() -> Iterator[tuple[str, Any]]:
        """(name, value) of what the graph takes, made one weight at a time and taken out of
        `held`, so that each source is freed once its values are placed."""
        while held:
            name = next(iter(held))
            tensor = held.pop(name)
            if isinstance(tensor, (QuantizedWeight, StackedRows)):
                yield from holders[name].held_values(f"model.{name}", tensor, lambda t: _as_dtype(t, dtype)).items()
            else:
                yield f"model.{name}", _as_dtype(tensor, dtype)
            del tensor

    if device.is_host:  # into huge pages: the decode stream runs faster
        sizes = [quantization.held_bytes(t, dtype.size_in_bytes) for t in held.values()]
        weights = weight_arena.gather(graph_values(), weight_arena.capacity(sizes, PIECES_PER_WEIGHT * len(sizes)))
    else:
        weights = dict(graph_values())
    extensions = [kernels.package()] if encoded or kernels.applies(device, dtype) else []
    device_ref = DeviceRef.from_device(device)
    started = time.perf_counter()

    def compile_head(role: str, seqlen: int | str, extensions: list[Path]) -> Any:
        types = input_types(config, dtype, device_ref, seqlen=seqlen)
        if not device.is_host:
            return head.compile(*types, weights=weights, custom_extensions=extensions)
        parts = (role, architecture.name, type(config).__qualname__, config.graph_json(), dtype.name, layout)
        return graph_cache.compile_module(head, types, weights, extensions, parts)

    graph = CompiledHead(compile_head("any_length", "seqlen", extensions))
    graph.weight_bytes_per_token, graph.encodings = per_token, encodings
    if kernels.applies(device, dtype):
        with kernels.decode_kernels():
            graph.one_token = compile_head("one_token", 1, [kernels.package()])
    seconds = time.perf_counter() - started
    del weights
    warm_up(graph, config, device, dtype)
    return graph, seconds


def _as_dtype(tensor: Any, dtype: DType) -> Any:
    """A float weight in `dtype`: a NumPy array for float32, a torch tensor for bfloat16
    (NumPy has none). Quantized weights are decoded (an explicit --dtype asked for it)."""
    from max.dtype import DType

    if dtype == DType.float32:
        return as_float32(tensor)
    import torch

    if not is_torch(tensor):
        tensor = torch.from_numpy(as_float32(tensor))
    return tensor.detach().to(torch_dtype_for(dtype)).contiguous()


def describe_device(device: Device) -> str:
    return "cpu" if device.is_host else f"gpu:{device.id}"


def log(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)
