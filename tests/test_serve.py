"""`zoo serve`: zoo models behind MAX's OpenAI-compatible server, checked over real HTTP.

Two servers run, one after the other: a random GPT-2 (the TINY shapes other
tests compile too) and the trained stories260K Llama. Each answers like
`zoo run --greedy`, alone, streamed and under concurrent requests, and turns
bad requests into 400s while it keeps serving.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, zoo
from conftest import STORIES
from gpt2_fixtures import TINY, make_checkpoint
from sentencepiece_json import save_hf_tokenizer
from serve_helpers import zoo_server

PROMPTS = {
    "gpt2": ["Hello, my dog", "The weather today", "In 1999 the", "A list of things:"],
    "stories": ["Once upon a time", "Tom had a red ball", "The sun was", "Lily and Ben went"],
}
NEW_TOKENS = 24


def stories_checkpoint(folder: Path) -> Path:
    """stories260K's HF weights plus a tokenizer.json (MAX's server needs an HF tokenizer)."""
    shutil.copytree(STORIES / "hf", folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    save_hf_tokenizer(STORIES / "tok512.model", folder)
    return folder


@pytest.fixture(scope="module", params=["gpt2", "stories"])
def served(request, tmp_path_factory):
    """(kind, checkpoint folder, running server)."""
    root = tmp_path_factory.mktemp(f"serve-{request.param}")
    if request.param == "gpt2":
        folder = root / "tiny-gpt2"
        make_checkpoint(folder, seed=5, **TINY)
    else:
        folder = stories_checkpoint(root / "stories260K")
    with zoo_server(str(folder), root / "server.log") as server:
        yield request.param, folder, server


def complete(server, prompt: str, **fields):
    import httpx

    body = {"model": server.model, "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0, **fields}
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=600)


def zoo_run_greedy(folder: Path, prompt: str) -> str:
    """What `zoo run --greedy` prints after the prompt (its trailing newline removed)."""
    result = zoo("run", str(folder), "-p", prompt, "--greedy", "-n", str(NEW_TOKENS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(prompt) and result.stdout.endswith("\n")
    return result.stdout[len(prompt) : -1]


@pytest.fixture(scope="module")
def expected(served):
    """Greedy continuations of every prompt, from the zoo library itself (what `zoo run` calls)."""
    from zoo.core.runtime.generation import TextGenerator
    from zoo.core.loader import load_model
    from zoo.core.runtime.sampling import SamplingOptions
    from zoo.plugins.manager import get_registry

    kind, folder, _ = served
    generator = TextGenerator(load_model(str(folder), get_registry(), device="cpu", verbose=False))
    options = SamplingOptions(greedy=True, max_new_tokens=NEW_TOKENS)
    return {p: generator.generate([p], options)[0].text for p in PROMPTS[kind]}


def test_completion_equals_zoo_run_greedy(served, expected):
    kind, folder, server = served
    prompt = PROMPTS[kind][0]
    response = complete(server, prompt)
    assert response.status_code == 200, response.text
    text = response.json()["choices"][0]["text"]
    assert text == zoo_run_greedy(folder, prompt)
    assert text == expected[prompt] and len(text) > 10


def test_streamed_events_concatenate_to_the_same_text(served, expected):
    import httpx

    kind, _, server = served
    prompt = PROMPTS[kind][1]
    body = {"model": server.model, "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0, "stream": True}
    pieces, done = [], False
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=600) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            payload = line[len("data: ") :]
            if payload == "[DONE]":
                done = True
                continue
            pieces.append(json.loads(payload)["choices"][0]["text"])
    assert done and len(pieces) > 1
    assert "".join(pieces) == expected[prompt]


def test_concurrent_requests_all_complete_correctly(served, expected):
    kind, _, server = served
    prompts = PROMPTS[kind] * 2
    with ThreadPoolExecutor(len(prompts)) as pool:
        responses = list(pool.map(lambda p: complete(server, p), prompts))
    assert [r.status_code for r in responses] == [200] * len(prompts)
    assert [r.json()["choices"][0]["text"] for r in responses] == [expected[p] for p in prompts]


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"model": "no-such-model"}, "Unknown model 'no-such-model'"),
        ({"max_tokens": -3}, "max_new_tokens must be a non-negative integer"),
        ({"prompt": "once more " * 400}, "Prompt is too long"),
    ],
)
def test_bad_requests_get_a_clear_400_and_the_server_keeps_serving(served, expected, fields, fragment):
    kind, _, server = served
    body = {"prompt": PROMPTS[kind][2], **fields}
    response = complete(server, **body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]
    good = complete(server, PROMPTS[kind][2])
    assert good.status_code == 200 and good.json()["choices"][0]["text"] == expected[PROMPTS[kind][2]]


# --------------------------------------------------------------------------- without a server


def test_dry_run_prints_the_equivalent_max_serve_command(tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(STORIES / "hf", folder)
    (folder / "tokenizer.json").write_text("{}")
    result = zoo("serve", str(folder), "--port", "9123", "--dry-run", "--", "--max-batch-size", "4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "max", "serve", "--model-path", str(folder.resolve()), "--served-model-name", str(folder),
        "--custom-architectures", "zoo.serving.max_architectures", "--host", "127.0.0.1", "--port", "9123",
        "--max-batch-size", "4",
    ]


def test_serve_an_alias_from_a_filled_hf_cache(tmp_path):
    repo = tmp_path / "hf" / "hub" / "models--openai-community--gpt2"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "n_embd": 64}))
    (snapshot / "tokenizer.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = zoo("serve", "gpt2", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert f"--model-path {snapshot.resolve()} --served-model-name gpt2 " in result.stdout


def test_serving_errors_are_one_line(tmp_path):
    assert_one_line_error(zoo("serve", "no-such-model-anywhere"), "unknown model")
    assert_one_line_error(zoo("serve", str(STORIES / "stories260K.bin")), "needs a Hugging Face checkpoint directory")
    assert_one_line_error(zoo("serve", str(STORIES / "hf")), "no Hugging Face tokenizer files")
    folder = tmp_path / "tiny"
    shutil.copytree(STORIES / "hf", folder)
    (folder / "tokenizer.json").write_text("{}")
    assert_one_line_error(zoo("serve", str(folder), "--port", "70000"), "not a TCP port")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_one_line_error(zoo("serve", str(folder), "--port", str(port)), f"cannot listen on 127.0.0.1:{port}")


def test_max_sees_every_zoo_architecture_including_plugins(tmp_path):
    """The `--custom-architectures` module registers built-ins and a third-party architecture."""
    from cli_helpers import make_plugin

    make_plugin(tmp_path, "zoo-tiny-arch", "zoo_tiny_arch", (
        "from zoo.core.architecture import Architecture\n"
        "from zoo.architectures.gpt2.config import GPT2Config\n"
        "from zoo.plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\n"
        "def register_architectures(register):\n"
        "    register(Architecture('TinyGPTForCausalLM', GPT2Config,\n"
        "        'zoo.architectures.gpt2.model:build_model', 'zoo.architectures.gpt2.weights:map_weights'))\n"
    ))
    code = (
        "import pickle, zoo.serving.max_architectures as m\n"
        "for a in m.ARCHITECTURES:\n"
        "    pickle.dumps((a.pipeline_model, a.config, a.weight_adapters))\n"  # MAX pickles them for its workers
        "    print(a.name, a.pipeline_model.__name__, a.config.zoo_architecture)\n"
    )
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    for name in ("GPT2LMHeadModel", "LlamaForCausalLM", "MixtralForCausalLM", "TinyGPTForCausalLM"):
        assert rows[name] == [f"Zoo{name}", name]
