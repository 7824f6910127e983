"""Picking one GGUF file from a hub repo (or a local folder) that holds several, as llama.cpp's `-hf` does.

`owner/repo:TAG` names a quantization (`Q4_K_M`, `q8_0`, case-insensitive): the
first model file whose name has the tag followed by `.` or `-`; a TAG ending in
`.gguf` is an exact file name (what `--gguf-file NAME` gives). Without a tag,
Q4_K_M, then Q8_0, then the first model file. Projector, imatrix and draft
files are never models; of a split file only its first part counts (and zoo
reads single files only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from zoo.core.errors import DownloadError, ModelNotFoundError, WeightsError

DEFAULT_TAGS = ("Q4_K_M", "Q8_0")
_NOT_MODELS = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def split_tag(ref: str) -> tuple[str, str | None]:
    """`owner/repo:TAG` -> (`owner/repo`, TAG); a reference without a tag -> (ref, None)."""
    base, colon, tag = ref.rpartition(":")
    if not colon or not base or not tag or "/" in tag:
        return ref, None
    return base, tag


def is_model_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".gguf") and not any(marker in name for marker in _NOT_MODELS)


def _first_part(path: str) -> bool:
    split = _SPLIT.search(path)
    return split is None or int(split.group(1)) == 1


def pick_gguf(files: Sequence[str], tag: str | None, where: str) -> str:
    """The file of `files` that `tag` names (see the module docstring); `where` names the repo in errors."""
    models = [f for f in files if is_model_file(f) and _first_part(f)]
    if tag is not None and tag.lower().endswith(".gguf"):
        chosen = next((f for f in files if f == tag or f.rsplit("/", 1)[-1] == tag), None)
    else:
        chosen = None
        for wanted in [tag] if tag else DEFAULT_TAGS:
            pattern = re.compile(re.escape(wanted) + r"[.-]", re.IGNORECASE)
            chosen = next((f for f in models if pattern.search(f)), None)
            if chosen:
                break
        if chosen is None and tag is None and models:
            chosen = models[0]
    if chosen is None:
        available = ", ".join(f for f in files if f.endswith(".gguf")) or "none"
        wanted = f"no GGUF file {tag!r}" if tag and tag.lower().endswith(".gguf") else (
            f"no GGUF file for quantization {tag!r}" if tag else "no GGUF model file")
        raise ModelNotFoundError(f"{where} has {wanted} (GGUF files: {available})")
    split = _SPLIT.search(chosen)
    if split is not None and int(split.group(2)) > 1:
        raise WeightsError(f"{chosen} is one part of a split GGUF file; merge the parts into one (llama-gguf-split --merge) and run that")
    return chosen


def folder_gguf(folder: Path, tag: str | None) -> Path:
    """The GGUF file `tag` picks among the files of a local folder."""
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.gguf"))
    return folder / pick_gguf(files, tag, str(folder))


def repo_files(repo_id: str) -> list[str]:
    """The files of a hub repo; offline (or unreachable), those of its cached snapshot."""
    from .sources import hub_reachable, quiet_hub

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not offline and hub_reachable(repo_id, "README.md"):
        try:
            from huggingface_hub import HfApi

            with quiet_hub():
                return list(HfApi().list_repo_files(repo_id))
        except Exception as error:
            if type(error).__name__ in ("RepositoryNotFoundError", "GatedRepoError"):
                raise DownloadError(f"cannot list {repo_id!r}: the hub has no such public repository (or it is gated)") from None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        why = "HF_HUB_OFFLINE=1 is set" if offline else "the Hugging Face Hub cannot be reached"
        raise DownloadError(f"cannot list the files of {repo_id!r}: {why} and the repo is not in the local cache") from None
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def fetch_gguf(repo_id: str, tag: str | None) -> tuple[str, Path]:
    """(file name in the repo, local path) of the GGUF file `tag` picks, downloaded into the HF cache."""
    from .sources import download_file

    name = pick_gguf(repo_files(repo_id), tag, repo_id)
    return name, download_file(repo_id, name)
