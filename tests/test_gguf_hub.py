"""Picking a GGUF file from a hub repo or folder holding several (`MODEL:Q4_K_M`, `--gguf-file NAME`).

The hub cannot be reached here, so the repo listing is mocked, or a repo is laid out in a
private Hugging Face cache and used offline, as a user with a filled cache would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, zoo
from gguf_fixtures import GGUF_DATA
from zoo.core.checkpoints.gguf_hub import pick_gguf, split_tag
from zoo.core.checkpoints.sources import resolve_source
from zoo.core.errors import ModelNotFoundError, WeightsError

REPO_FILES = [
    "README.md",
    "mmproj-model-Q8_0.gguf",
    "model-Q2_K.gguf",
    "model-Q4_K_M.gguf",
    "model-q8_0.gguf",
    "model-Q4_K_S.gguf",
    "big/model-Q6_K-00001-of-00002.gguf",
    "big/model-Q6_K-00002-of-00002.gguf",
]


def test_split_tag():
    assert split_tag("owner/repo:Q4_K_M") == ("owner/repo", "Q4_K_M")
    assert split_tag("owner/repo") == ("owner/repo", None)
    assert split_tag("./dir/sub:x.gguf") == ("./dir/sub", "x.gguf")
    assert split_tag("gpt2") == ("gpt2", None)


def test_a_tag_picks_by_quantization_case_insensitively():
    assert pick_gguf(REPO_FILES, "q4_k_m", "r") == "model-Q4_K_M.gguf"
    assert pick_gguf(REPO_FILES, "Q8_0", "r") == "model-q8_0.gguf"  # not the projector
    assert pick_gguf(REPO_FILES, "Q4_K_S", "r") == "model-Q4_K_S.gguf"


def test_without_a_tag_q4_k_m_then_q8_0_then_the_first_model():
    assert pick_gguf(REPO_FILES, None, "r") == "model-Q4_K_M.gguf"
    assert pick_gguf([f for f in REPO_FILES if "Q4_K_M" not in f], None, "r") == "model-q8_0.gguf"
    assert pick_gguf(["mmproj-x.gguf", "a-Q3_K.gguf", "b-Q5_0.gguf"], None, "r") == "a-Q3_K.gguf"


def test_a_file_name_is_taken_as_it_is():
    assert pick_gguf(REPO_FILES, "model-Q2_K.gguf", "r") == "model-Q2_K.gguf"
    with pytest.raises(ModelNotFoundError, match=r"r has no GGUF file 'nope\.gguf' \(GGUF files: mmproj-model-Q8_0\.gguf, "):
        pick_gguf(REPO_FILES, "nope.gguf", "r")


def test_missing_quantizations_and_split_files_are_one_line_errors():
    with pytest.raises(ModelNotFoundError, match="r has no GGUF file for quantization 'Q3_K_L'"):
        pick_gguf(REPO_FILES, "Q3_K_L", "r")
    with pytest.raises(WeightsError, match="one part of a split GGUF file"):
        pick_gguf(REPO_FILES, "Q6_K", "r")
    with pytest.raises(ModelNotFoundError, match="no GGUF model file"):
        pick_gguf(["README.md", "mmproj-f16.gguf"], None, "r")


def test_a_hub_tag_downloads_only_the_picked_file(monkeypatch, registry):
    import huggingface_hub

    fetched = []
    local = GGUF_DATA / "stories260K-q8_0.gguf"
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo_id, **options: REPO_FILES)
    monkeypatch.setattr("zoo.core.checkpoints.sources.hub_reachable", lambda repo_id, filename: True)  # a hub that answers
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, **options: fetched.append((repo_id, filename)) or str(local))
    source = resolve_source("someone/model-GGUF:Q8_0", registry)
    assert (source.kind, source.path, source.filename) == ("file", local, "model-q8_0.gguf")
    assert source.describe() == "hf://someone/model-GGUF/model-q8_0.gguf"
    assert fetched == [("someone/model-GGUF", "model-q8_0.gguf")]


def test_a_repo_of_gguf_files_without_config_runs_the_default_pick(monkeypatch, registry):
    """`zoo run owner/repo-GGUF`: no config.json in the repo, so the file llama.cpp's -hf would take."""
    import huggingface_hub

    from zoo.core.resolve import resolve_model

    local = GGUF_DATA / "llama-256-Q4_K_M.gguf"

    def download(repo_id, filename, **options):
        if filename == "config.json":
            raise huggingface_hub.errors.EntryNotFoundError("no config.json")
        return str(local)

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo_id, **options: REPO_FILES)
    monkeypatch.setattr("zoo.core.checkpoints.sources.hub_reachable", lambda repo_id, filename: True)  # a hub that answers
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    resolved = resolve_model("someone/model-GGUF", registry)
    assert resolved.source.filename == "model-Q4_K_M.gguf" and resolved.config.hidden_size == 256


def fill_hf_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lays out `repo_id` in a Hugging Face cache as a download would leave it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    for name, source in files.items():
        target = root / "snapshots" / commit / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)


def test_cli_picks_from_a_cached_repo_offline(tmp_path):
    cache = tmp_path / "hub"
    fill_hf_cache(cache, "someone/stories-GGUF", {
        "stories260K-Q4_0.gguf": GGUF_DATA / "stories260K-Q4_0.gguf",
        "stories260K-q8_0.gguf": GGUF_DATA / "stories260K-q8_0.gguf",
        "stories260K-f32.gguf": GGUF_DATA / "stories260K-f32.gguf",
    })
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    by_tag = zoo("info", "someone/stories-GGUF:Q8_0", env=env)
    assert by_tag.returncode == 0, by_tag.stderr
    assert "weights:      hf://someone/stories-GGUF/stories260K-q8_0.gguf" in by_tag.stdout
    by_name = zoo("info", "someone/stories-GGUF", "--gguf-file", "stories260K-f32.gguf", "--json", env=env)
    assert '"weights": "hf://someone/stories-GGUF/stories260K-f32.gguf"' in by_name.stdout, by_name.stderr
    default = zoo("info", "someone/stories-GGUF", env=env)  # no Q4_K_M or Q8_0 tag: q8_0 matches case-insensitively
    assert "hf://someone/stories-GGUF/stories260K-q8_0.gguf" in default.stdout, default.stderr
    assert_one_line_error(zoo("info", "someone/stories-GGUF:Q6_K", env=env), "no GGUF file for quantization 'Q6_K'",
                          "stories260K-Q4_0.gguf")
    assert_one_line_error(zoo("info", "someone/other-GGUF:Q6_K", env=env), "HF_HUB_OFFLINE=1", "someone/other-GGUF")


def test_a_local_folder_of_gguf_files(tmp_path, registry):
    for name in ("stories260K-f32.gguf", "stories260K-Q4_0.gguf"):
        shutil.copy(GGUF_DATA / name, tmp_path / name)
    assert resolve_source(f"{tmp_path}:Q4_0", registry).path == tmp_path / "stories260K-Q4_0.gguf"
    assert resolve_source(str(tmp_path), registry).path == tmp_path / "stories260K-Q4_0.gguf"  # first model file
