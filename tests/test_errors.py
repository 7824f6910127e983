"""Bad input through the real `zoo` process: one clear line on stderr, exit status 1, never a
traceback, nothing on stdout, and no compile for what needs no graph (test_hostile.py runs
many more cases in-process)."""

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


def only_the_error(result) -> str:
    """The whole of stderr is the one error line; stdout is empty."""
    line = assert_one_line_error(result)
    assert result.stderr.strip() == line and result.stdout == "", result.stderr
    return line


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "gpt2", "-p", "hi", "--device", "tpu"], "Invalid value for '--device': 'tpu' is not one of"),
        (["run", "gpt2", "-p", "hi", "-n", "abc"], "'abc' is not a valid integer"),
        (["run", "gpt2", "-p", "hi", "--frobnicate"], "No such option '--frobnicate'"),
        (["run"], "Missing argument 'MODEL'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["run", "gpt2", "-p", "hi", "--prompts-file", "."], "is a directory"),
    ],
    ids=["bad-choice", "not-an-integer", "unknown-option", "missing-argument", "unknown-command", "folder-as-file"],
)
def test_click_usage_errors_are_one_line_and_exit_1(args, message):
    assert message in only_the_error(zoo(*args))


def test_checks_that_need_no_graph_come_before_the_compile(tmp_path, tiny_folder):
    """Too-long prompt, integer weights: refused before 'compiling...', with nothing on stdout."""
    from safetensors.torch import load_file, save_file

    long_prompt = "word " * (TINY["n_positions"] + 20)
    only_the_error(zoo("run", str(tiny_folder), "-p", "fine", "-p", long_prompt))
    for item in tiny_folder.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    tensors = load_file(str(tiny_folder / "model.safetensors"))
    tensors["transformer.h.0.mlp.c_fc.weight"] = tensors["transformer.h.0.mlp.c_fc.weight"].long()
    save_file(tensors, str(tmp_path / "model.safetensors"))
    assert "not floating point: layers.0.mlp.up_proj.weight (int64)" in only_the_error(zoo("run", str(tmp_path), "-p", "hi"))


def test_plugin_that_exits_while_reading_its_config_is_one_line(tmp_path, tiny_folder):
    import os

    from cli_helpers import make_plugin

    make_plugin(tmp_path, "zoo-quits", "zoo_quits", (
        "import sys\nfrom zoo.core.architecture import Architecture\nfrom zoo.architectures.gpt2.config import GPT2Config\n"
        "from zoo.plugins.hookspecs import hookimpl\n\n"
        "class Quits(GPT2Config):\n    @classmethod\n    def from_hf(cls, hf):\n        sys.exit(7)\n\n"
        "@hookimpl\ndef register_architectures(register):\n"
        "    register(Architecture('QuitsLM', Quits, 'zoo.architectures.gpt2.weights:map_weights'))\n"
    ))
    folder = tmp_path / "ck"
    folder.mkdir()
    hf = json.loads((tiny_folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**hf, "architectures": ["QuitsLM"]}))
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    line = only_the_error(zoo("info", str(folder), env=env))
    assert "plugin 'zoo-quits'" in line and "sys.exit(7)" in line


@pytest.fixture()
def silent_hub():
    """A local endpoint that accepts connections and never answers (a stalled network)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.parametrize("ref", ["gpt2", "someone/not-cached", "stories260K"])
@pytest.mark.parametrize("hub", ["refusing", "silent"])
def test_unreachable_hub_is_one_line_within_seconds(ref, hub, silent_hub, tmp_path):
    import time

    endpoint = silent_hub if hub == "silent" else "http://127.0.0.1:9"
    env = {"HF_HOME": str(tmp_path / "empty"), "HF_ENDPOINT": endpoint, "HF_HUB_ETAG_TIMEOUT": "3"}
    started = time.monotonic()
    line = only_the_error(zoo("run", ref, "-p", "hi", env=env, timeout=120))
    assert "cannot reach the Hugging Face Hub" in line
    assert time.monotonic() - started < 60
