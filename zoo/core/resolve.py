"""The one path from a model reference to what it is: source, HF config, architecture, typed config.

`resolve_model` is cheap (no tensors, no compile): an alias with a stored
config downloads nothing; a hub id downloads only `config.json`; a single-file
checkpoint has its config read from its header. `run`, `info`, `bench`,
`serve` and the Python API all start here, so they agree on every verdict.
`read_checkpoint` then reads the tensors and tokenizer of a resolved model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .architecture import Architecture, Checkpoint, WeightFormat, call_plugin, resolve
from .checkpoints.hf import check_weights_path, find_weights, read_config, read_tensors
from .checkpoints.sources import ModelSource, download, download_file, resolve_source
from .checkpoints.tokenizer import has_tokenizer_files, load_tokenizer
from .config import LIMITS, ModelConfig
from .errors import ConfigError, DownloadError, PluginError, UnsupportedModelError, WeightsError, ZooError, describe_failure
from .registry import Registry


@dataclass(frozen=True)
class ResolvedModel:
    """What a model reference names, before any tensor is read."""

    ref: str
    source: ModelSource
    hf_config: dict[str, Any]
    architecture: Architecture
    config: ModelConfig

    @property
    def single_file(self) -> bool:
        """A checkpoint in one non-HF file (llama2.c, GGUF), local or named by an alias."""
        return self.source.kind == "file" or (self.source.alias is not None and bool(self.source.alias.weights_file))


def default_registry() -> Registry:
    from zoo.plugins.manager import get_registry

    return get_registry()


def resolve_model(ref: str, registry: Registry | None = None) -> ResolvedModel:
    """Resolves `ref` (alias, hub id, directory or checkpoint file) and checks its config."""
    registry = registry or default_registry()
    source = resolve_source(ref, registry)
    try:
        hf_config = _hf_config(source, registry)
    except DownloadError:
        gguf = _gguf_only_repo(source)
        if gguf is None:
            raise
        source, hf_config = gguf, _hf_config(gguf, registry)
    architecture = architecture_for(hf_config, registry)
    return ResolvedModel(ref, source, hf_config, architecture, make_config(architecture, hf_config))


def _hf_config(source: ModelSource, registry: Registry) -> dict[str, Any]:
    alias = source.alias
    if alias is not None and alias.hf_config is not None:
        return dict(alias.hf_config)
    if source.kind == "dir":
        return read_config(source.path)
    if alias is not None and alias.weights_file:
        return _file_config(download_file(alias.repo_id, alias.weights_file), registry)
    if source.kind == "file":
        return _file_config(source.path, registry)
    return read_config(download_file(source.repo_id, "config.json").parent)


def _gguf_only_repo(source: ModelSource) -> ModelSource | None:
    """A hub repo without config.json that holds GGUF files: the file llama.cpp's -hf would pick."""
    if source.kind != "hub" or source.repo_id is None:
        return None
    from .checkpoints.gguf_hub import fetch_gguf, is_model_file, repo_files

    try:
        files = repo_files(source.repo_id)
    except ZooError:
        return None
    if "config.json" in files or not any(is_model_file(f) for f in files):
        return None
    filename, local = fetch_gguf(source.repo_id, None)
    return ModelSource(source.ref, "file", path=local, repo_id=source.repo_id, filename=filename)


def _file_config(path: Path, registry: Registry) -> dict[str, Any]:
    fmt = weight_format_for(path, registry)
    args = (path, registry) if fmt.with_registry else (path,)
    return dict(call_plugin(fmt, f"weight format {fmt.name!r} reading {path.name}", fmt.read_config, *args, returns=Mapping))


def weight_format_for(path: Path, registry: Registry) -> WeightFormat:
    """The registered format that reads the file at `path`."""
    from zoo.plugins.manager import warn

    for fmt in registry.weight_formats.values():
        try:
            if resolve(fmt.matches)(path):
                return fmt
        except Exception as error:
            warn(f"plugin {fmt.plugin!r}: weight format {fmt.name!r} failed to inspect {path.name}: {error}")
    known = ", ".join(registry.weight_formats) or "none"
    raise WeightsError(f"{path} is a file in no known format; pass a checkpoint directory, or a file in one of: {known}")


def architecture_for(hf_config: Mapping[str, Any], registry: Registry) -> Architecture:
    """The registered architecture named by the config's `architectures` list."""
    names = hf_config.get("architectures") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"config.json: architectures must be a list of class names, got {names!r}")
    for name in names:
        if name in registry.architectures or name in registry.conflicts:
            return registry.architecture(name)
    known = ", ".join(sorted(registry.architectures))
    shown = ", ".join(names) if names else "none given in config.json"
    raise UnsupportedModelError(f"no plugin supports architecture {shown} (supported: {known})")


def make_config(architecture: Architecture, hf_config: Mapping[str, Any]) -> ModelConfig:
    """The architecture's typed config, with the fields every model shares checked."""
    try:
        config = architecture.config_class.from_hf(hf_config)
    except ZooError:
        raise
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigError(f"config.json does not fit {architecture.name}: {field}: {first.get('msg')}") from None
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ConfigError(f"config.json does not fit {architecture.name}: {describe_failure(error)}") from None
    except (Exception, SystemExit) as error:
        raise PluginError(
            f"plugin {architecture.plugin or 'unknown'!r}: {architecture.name}'s config reader failed: {describe_failure(error)}"
        ) from None
    if not isinstance(config, ModelConfig):
        raise PluginError(
            f"plugin {architecture.plugin or 'unknown'!r}: {architecture.name}'s config reader returned a "
            f"{type(config).__name__}, not a ModelConfig"
        )
    check_common(config)
    return config


def check_common(config: ModelConfig) -> None:
    """Sizes every model has must be positive, bounded and consistent."""
    bounds = {
        "vocab_size": LIMITS["vocab"],
        "hidden_size": LIMITS["hidden"],
        "n_layers": LIMITS["layers"],
        "n_heads": LIMITS["heads"],
        "n_kv_heads": LIMITS["heads"],
        "head_dim": LIMITS["head_dim"],
        "context_length": LIMITS["context"],
    }
    for name, high in bounds.items():
        value = getattr(config, name)
        if not 1 <= value <= high:
            raise ConfigError(f"{name} must be between 1 and {high}, got {value}")
    if config.n_heads % config.n_kv_heads:
        raise ConfigError(f"the head count ({config.n_heads}) is not a multiple of the key/value head count ({config.n_kv_heads})")
    for token in config.eos_token_ids:
        if token < 0:
            raise ConfigError(f"eos token id must be non-negative, got {token}")
    config.check()


def single_file_path(resolved: ResolvedModel) -> Path:
    """The local weights file of a single-file model (an alias's is downloaded first)."""
    alias = resolved.source.alias
    if alias is not None and alias.weights_file:
        return download_file(alias.repo_id, alias.weights_file)
    assert resolved.source.path is not None
    return resolved.source.path


def read_checkpoint(
    resolved: ResolvedModel,
    registry: Registry | None = None,
    *,
    weights: Path | None = None,
    tokenizer: Path | None = None,
    need_tokenizer: bool = True,
) -> Checkpoint:
    """Reads the tensors and tokenizer of a resolved model (downloading them if needed);
    without `need_tokenizer`, a checkpoint folder without tokenizer files is fine."""
    registry = registry or default_registry()
    source, alias = resolved.source, resolved.source.alias
    if resolved.single_file:
        if weights is not None:
            raise WeightsError("--weights replaces the weights file of a checkpoint directory; this model is a single file already")
        path = single_file_path(resolved)
        if alias is not None and alias.weights_file and tokenizer is None and alias.tokenizer_file:
            tokenizer = download_file(alias.repo_id, alias.tokenizer_file)
        fmt = weight_format_for(path, registry)
        args = (path, tokenizer, registry) if fmt.with_registry else (path, tokenizer)
        checkpoint = call_plugin(fmt, f"weight format {fmt.name!r} loading {path.name}", fmt.load, *args, returns=Checkpoint)
        if not isinstance(checkpoint.hf_config, Mapping) or not isinstance(checkpoint.tensors, Mapping):
            raise PluginError(f"plugin {fmt.plugin or 'unknown'!r}: weight format {fmt.name!r} returned a malformed checkpoint")
        return checkpoint
    folder = source.path if source.kind == "dir" else download(source.repo_id)
    tensors = read_tensors(check_weights_path(weights) if weights is not None else find_weights(folder))
    tok = None
    if need_tokenizer or tokenizer is not None or has_tokenizer_files(folder):
        tok = load_tokenizer(tokenizer if tokenizer is not None else folder)
    # A downloaded checkpoint runs with its own config.json; an alias's stored copy is for
    # listing, `zoo info` and random-weight benches without a download.
    hf_config = resolved.hf_config if source.kind == "dir" else read_config(folder)
    return Checkpoint(hf_config, tensors, tok, source=source.describe())
