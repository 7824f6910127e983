"""From a model reference to a compiled, ready-to-run model.

resolve the source -> read config and tensors -> pick the architecture by the
HF `architectures` value -> map the weights -> build the MAX module lazily ->
check every tensor name and shape -> compile the decoding head.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .architecture import Architecture, Checkpoint, resolve
from .checkpoint import find_weights, read_config, read_tensors
from .config import ModelConfig
from .errors import ZooError
from .registry import Registry
from .sources import ModelSource, download, download_file, resolve_source
from .tokenizer import Tokenizer, load_tokenizer


@dataclass
class LoadedModel:
    """A compiled model with what generation needs around it."""

    name: str
    architecture: Architecture
    config: ModelConfig
    tokenizer: Tokenizer | None
    graph: Any  # the compiled NextTokenHead
    device: Any  # max.driver.Device
    dtype: Any  # max.dtype.DType
    source: str
    compile_seconds: float


def read_checkpoint(
    source: ModelSource, registry: Registry, *, weights: Path | None = None, tokenizer: Path | None = None
) -> Checkpoint:
    """Reads config, tensors and tokenizer for any kind of source."""
    alias = source.alias
    if alias is not None and alias.weights_file:
        path = download_file(alias.repo_id, alias.weights_file)
        if tokenizer is None and alias.tokenizer_file:
            tokenizer = download_file(alias.repo_id, alias.tokenizer_file)
        source = ModelSource(source.ref, "file", path=path, alias=alias)
    if source.kind == "file":
        for fmt in registry.weight_formats.values():
            if resolve(fmt.matches)(source.path):
                return resolve(fmt.load)(source.path, tokenizer)
        raise ZooError(
            f"{source.path} is a file in no known format; pass a checkpoint directory, "
            f"or a file in one of: {', '.join(registry.weight_formats) or 'none'}"
        )
    folder = source.path if source.kind == "dir" else download(source.repo_id)
    assert folder is not None
    hf_config = read_config(folder)
    architecture_for(hf_config, registry)  # fail on an unsupported model before reading its weights
    tensors = read_tensors(weights if weights is not None else find_weights(folder))
    tok = load_tokenizer(tokenizer if tokenizer is not None else folder)
    return Checkpoint(hf_config, tensors, tok, source=source.describe())


def architecture_for(hf_config: dict[str, Any], registry: Registry) -> Architecture:
    names = hf_config.get("architectures") or []
    for name in names:
        if name in registry.architectures:
            return registry.architectures[name]
    known = ", ".join(sorted(registry.architectures))
    shown = ", ".join(names) if names else "none given in config.json"
    raise ZooError(f"no plugin supports architecture {shown} (supported: {known})")


def check_weights(expected: dict[str, tuple[int, ...]], mapped: dict[str, Any]) -> None:
    """Raises one ZooError naming missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    misshaped = sorted(
        f"{name} {tuple(mapped[name].shape)} != {expected[name]}"
        for name in set(expected) & set(mapped)
        if tuple(mapped[name].shape) != expected[name]
    )
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if names:
            shown = ", ".join(names[:6]) + (f" (+{len(names) - 6} more)" if len(names) > 6 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ZooError("checkpoint does not fit the model: " + "; ".join(problems))


def pick_device(name: str) -> Any:
    from max.driver import CPU, Accelerator, accelerator_count

    if name == "cpu":
        return CPU()
    if name == "gpu":
        if accelerator_count() == 0:
            raise ZooError("--device gpu: no GPU (accelerator) is available on this machine")
        return Accelerator()
    if name == "auto":
        return Accelerator() if accelerator_count() > 0 else CPU()
    raise ZooError(f"unknown device {name!r} (choose auto, cpu or gpu)")


def pick_dtype(name: str | None, device: Any) -> Any:
    from max.dtype import DType

    if name is None:
        return DType.float32 if device.is_host else DType.bfloat16
    table = {"float32": DType.float32, "bfloat16": DType.bfloat16}
    if name not in table:
        raise ZooError(f"unsupported dtype {name!r} (choose float32 or bfloat16)")
    return table[name]


def torch_dtype_for(dtype: Any) -> Any:
    """The torch dtype holding MAX `dtype` (float32 or bfloat16) on the host."""
    import torch
    from max.dtype import DType

    return torch.float32 if dtype == DType.float32 else torch.bfloat16


def compile_model(
    architecture: Architecture, config: ModelConfig, tensors: dict[str, Any], device: Any, dtype: Any
) -> tuple[Any, float]:
    """Maps, checks and compiles; returns the compiled head and the compile time."""
    return compile_mapped(architecture, config, architecture.mapper()(tensors, config), device, dtype)


def compile_mapped(
    architecture: Architecture, config: ModelConfig, mapped: dict[str, Any], device: Any, dtype: Any
) -> tuple[Any, float]:
    """Checks already-mapped tensors against the model and compiles the decoding head."""
    from max.experimental import functional as F
    from max.experimental.tensor import default_device, default_dtype
    from max.graph import DeviceRef

    from . import kernels
    from .heads import CompiledHead, NextTokenHead, input_types

    # Built lazily on the target device: random init is never materialised.
    with F.lazy(), default_dtype(dtype), default_device(device):
        head = NextTokenHead(architecture.builder()(config))
    expected = {name[len("model.") :]: tuple(int(d) for d in p.shape) for name, p in head.parameters}
    check_weights(expected, mapped)
    torch_dtype = torch_dtype_for(dtype)
    weights = {f"model.{name}": _as_dtype(t, torch_dtype) for name, t in mapped.items()}
    shapes = (config.n_layers, config.n_kv_heads, config.head_dim, dtype, DeviceRef.from_device(device))
    started = time.perf_counter()
    graph = CompiledHead(head.compile(*input_types(*shapes), weights=weights))
    if kernels.applies(device, dtype):
        with kernels.decode_kernels():
            graph.one_token = head.compile(
                *input_types(*shapes, seqlen=1), weights=weights, custom_extensions=[kernels.PACKAGE]
            )
    return graph, time.perf_counter() - started


def _as_dtype(tensor: Any, torch_dtype: Any) -> Any:
    import torch

    if not isinstance(tensor, torch.Tensor):
        tensor = torch.as_tensor(tensor)
    return tensor.detach().to(torch_dtype).contiguous()


def load_model(
    ref: str,
    registry: Registry,
    *,
    weights: Path | None = None,
    tokenizer: Path | None = None,
    device: str = "auto",
    dtype: str | None = None,
    verbose: bool = True,
) -> LoadedModel:
    """Resolves, reads, checks and compiles `ref` (alias, hub id, directory or file)."""
    source = resolve_source(ref, registry)
    checkpoint = read_checkpoint(source, registry, weights=weights, tokenizer=tokenizer)
    architecture = architecture_for(checkpoint.hf_config, registry)
    config = architecture.config_class.from_hf(checkpoint.hf_config)
    max_device = pick_device(device)
    max_dtype = pick_dtype(dtype, max_device)
    if verbose:
        log(f"{architecture.name} from {checkpoint.source} on {describe_device(max_device)}, {max_dtype.name}; compiling...")
    graph, seconds = compile_model(architecture, config, dict(checkpoint.tensors), max_device, max_dtype)
    if verbose:
        log(f"compiled in {seconds:.1f}s")
    return LoadedModel(ref, architecture, config, checkpoint.tokenizer, graph, max_device, max_dtype, checkpoint.source, seconds)


def describe_device(device: Any) -> str:
    return "cpu" if device.is_host else f"gpu:{device.id}"


def log(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)
