"""Where a model comes from: an alias, a hub repo id, a local directory or a file."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zoo.core.architecture import ModelAlias
from zoo.core.errors import DownloadError, ModelNotFoundError
from zoo.core.registry import Registry

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

# What a model directory needs from the hub: configs, tokenizer files and safetensors weights.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]
_HUB_FALLBACK_PATTERNS = ["pytorch_model*.bin"]


@dataclass(frozen=True)
class ModelSource:
    """A resolved model reference."""

    ref: str
    kind: str  # "alias", "hub", "dir" or "file"
    path: Path | None = None
    repo_id: str | None = None
    alias: ModelAlias | None = None
    filename: str | None = None
    """A file picked from a hub repo (a GGUF file): its name in the repo; `path` is its local copy."""

    def describe(self) -> str:
        if self.kind == "file" and self.repo_id and self.filename:
            return f"hf://{self.repo_id}/{self.filename}"
        if self.kind in ("dir", "file"):
            return str(self.path)
        suffix = f" (alias {self.alias.name})" if self.alias else ""
        return f"hf://{self.repo_id}{suffix}"


def resolve_source(ref: str, registry: Registry) -> ModelSource:
    """Turns what the user typed into a `ModelSource`, or a ZooError with close matches.

    `REF:TAG` picks one GGUF file of a hub repo or a local folder (a quantization such as
    Q4_K_M, or a file name); a folder of GGUF files without a config.json is one of them."""
    from .gguf_hub import fetch_gguf, folder_gguf, split_tag

    if not ref.strip() or "\x00" in ref:
        raise ModelNotFoundError(f"{ref!r} is not a model name (`zoo list` shows every model)")
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and any(path.glob("*.gguf")):
            return ModelSource(ref, "file", path=folder_gguf(path, None))
        return ModelSource(ref, "dir", path=path)
    if path.is_file():
        return ModelSource(ref, "file", path=path)
    base, tag = split_tag(ref)
    if tag is not None:
        folder = Path(base).expanduser()
        if folder.is_dir():
            return ModelSource(ref, "file", path=folder_gguf(folder, tag))
        if _REPO_ID.match(base) and not base.startswith((".", "/")):
            filename, local = fetch_gguf(base, tag)
            return ModelSource(ref, "file", path=local, repo_id=base, filename=filename)
    alias = registry.aliases.get(ref) or {a.lower(): v for a, v in registry.aliases.items()}.get(ref.lower())
    if alias is not None:
        return ModelSource(ref, "alias", repo_id=alias.repo_id, alias=alias)
    if _REPO_ID.match(ref) and not ref.startswith((".", "/")):
        return ModelSource(ref, "hub", repo_id=ref)
    matches = registry.close_matches(ref)
    hint = f"; did you mean {', '.join(matches)}?" if matches else ""
    raise ModelNotFoundError(f"unknown model {ref!r}{hint} (`zoo list` shows every model; a hub id looks like owner/name)")


def download(repo_id: str) -> Path:
    """Fetches a hub checkpoint into the standard HF cache (or finds it there).

    Honours `HF_HUB_OFFLINE=1` and an already-filled cache; shows the hub's
    progress bars on stderr. When the hub cannot be reached (`hub_reachable`),
    only the cache is used.
    """
    from huggingface_hub import snapshot_download

    local = not hub_reachable(repo_id, "config.json")
    try:
        with quiet_hub():
            folder = Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS, local_files_only=local))
            if not any(folder.glob("*.safetensors")):
                patterns = _HUB_PATTERNS + _HUB_FALLBACK_PATTERNS
                folder = Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=local))
    except Exception as error:
        raise DownloadError(_download_failure(repo_id, error)) from None
    return folder


def download_file(repo_id: str, filename: str) -> Path:
    """Fetches one file of a hub repo into the HF cache (or finds it there); when the hub
    cannot be reached, only the cache is used."""
    from huggingface_hub import hf_hub_download

    local = not hub_reachable(repo_id, filename)
    try:
        with quiet_hub():
            return Path(hf_hub_download(repo_id, filename, local_files_only=local))
    except Exception as error:
        raise DownloadError(_download_failure(f"{repo_id}/{filename}", error)) from None


@contextmanager
def quiet_hub() -> Iterator[None]:
    """huggingface_hub's retry warnings stay off stderr (zoo reports the failure itself)."""
    from huggingface_hub.utils import logging

    logger = logging.get_logger("huggingface_hub")
    level = logger.level
    logger.setLevel(max(level, 40))
    try:
        yield
    finally:
        logger.setLevel(level)


_UNREACHABLE: set[str] = set()  # hub endpoints found unreachable in this process (asked once)
_ANSWERED: set[str] = set()  # hub endpoints that answered in this process (not asked again)


def hub_reachable(repo_id: str, filename: str) -> bool:
    """Whether the hub answers one metadata request for the file within `HF_HUB_ETAG_TIMEOUT`
    (no retries; any answer, 404 included, counts), asked once per endpoint and process.
    False when HF_HUB_OFFLINE is set. Without it the hub client retries an
    unreachable or stalled hub for half a minute before it looks in the cache."""
    import httpx
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    if _offline() or constants.ENDPOINT in _UNREACHABLE:
        return False
    if constants.ENDPOINT in _ANSWERED:
        return True
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename), timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except (httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError, OSError):
        _UNREACHABLE.add(constants.ENDPOINT)
        return False
    except Exception:
        pass
    _ANSWERED.add(constants.ENDPOINT)
    return True


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _download_failure(repo_id: str, error: Exception) -> str:
    name = type(error).__name__
    offline = _offline()
    if name in ("RepositoryNotFoundError", "GatedRepoError"):
        return f"cannot download {repo_id!r}: the hub has no such public repository (or it is gated: log in with `hf auth login`)"
    if offline:
        return f"{repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it; unset it to download, or pass a local directory"
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return f"cannot reach the Hugging Face Hub and {repo_id!r} is not in the local cache; check the network, or pass a local directory"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else name
    return f"cannot download {repo_id!r} from the Hugging Face Hub ({name}: {first_line}); check the network or pass a local directory"
