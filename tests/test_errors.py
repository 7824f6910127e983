"""Bad input: one clear line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, zoo
from gpt2_fixtures import TINY, make_checkpoint


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("errors-tiny")
    make_checkpoint(folder, seed=4, **TINY)
    return folder


def test_unknown_model_lists_close_matches():
    assert_one_line_error(zoo("run", "gtp2", "-p", "hi"), "unknown model 'gtp2'", "gpt2")


def test_no_network_and_no_cache(tmp_path):
    env = {"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    assert_one_line_error(zoo("run", "gpt2", "-p", "hi", env=env), "openai-community/gpt2", "cache")


def test_directory_without_weights(tmp_path, tiny_folder):
    (tmp_path / "config.json").write_text((tiny_folder / "config.json").read_text())
    assert_one_line_error(zoo("run", str(tmp_path), "-p", "hi"), "no weights", "model.safetensors")


def test_corrupt_weights_file(tmp_path, tiny_folder):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_text((tiny_folder / name).read_text())
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    assert_one_line_error(zoo("run", str(tmp_path), "-p", "hi"), "model.safetensors", "corrupt")


def test_missing_unexpected_and_misshaped_tensors_are_named(tmp_path, tiny_folder):
    import shutil

    from safetensors.torch import load_file, save_file

    for item in tiny_folder.iterdir():
        shutil.copy(item, tmp_path / item.name)
    tensors = load_file(str(tiny_folder / "model.safetensors"))
    del tensors["transformer.h.1.mlp.c_fc.weight"]
    tensors["transformer.h.0.attn.c_proj.bias"] = tensors["transformer.h.0.attn.c_proj.bias"][:10].clone()
    tensors["transformer.h.0.surprise.weight"] = tensors["transformer.ln_f.weight"].clone()
    save_file(tensors, str(tmp_path / "model.safetensors"))
    line = assert_one_line_error(zoo("run", str(tmp_path), "-p", "hi"), "missing: layers.1.mlp.up_proj.weight")
    assert "unexpected: h.0.surprise.weight" in line
    assert "mis-shaped: layers.0.attention.o_proj.bias (10,) != (64,)" in line


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    assert_one_line_error(zoo("run", str(tmp_path), "-p", "hi"), "BertModel", "GPT2LMHeadModel")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--temperature", "-0.5"], "--temperature"),
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--top-p", "1.5"], "--top-p"),
        (["--top-k", "0"], "--top-k"),
        (["--min-p", "2"], "--min-p"),
        (["--repetition-penalty", "0"], "--repetition-penalty"),
    ],
)
def test_invalid_sampling_options(tiny_folder, flags, message):
    assert_one_line_error(zoo("run", str(tiny_folder), "-p", "hi", *flags), message)


def test_prompt_longer_than_the_context(tiny_folder):
    long_prompt = "word " * (TINY["n_positions"] + 20)
    assert_one_line_error(zoo("run", str(tiny_folder), "-p", long_prompt), "context is 128")
