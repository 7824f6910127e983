"""`zoo serve`: zoo models behind MAX's OpenAI-compatible server, checked over real HTTP.

Two servers run, one after the other, both on shapes other tests compile too:
- a random GPT-2 (TINY) with a chat template, 4 cache slots, started from a
  temporary directory: single, streamed, batched and chat answers equal the
  library's, bad requests get 400s among good ones, and a hostile load test
  (disconnects, invalid requests) leaves every slot free and memory flat;
- the trained stories260K Llama (no chat template) on IPv6 loopback with one
  slot and a one-request queue: chat is refused, a full queue answers 429;
- the same Llama as a GGUF file in Q8_0 (which MAX's own GGUF loader cannot
  read): it answers as `zoo run` on the file does, its weights kept encoded.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, zoo
from conftest import STORIES
from gpt2_fixtures import TINY, make_checkpoint
from sentencepiece_json import save_hf_tokenizer
from serve_helpers import server_rss, zoo_server

PROMPTS = ["Hello, my dog", "The weather today", "In 1999 the", "A list of things:", "Once more, with feeling"]
STORY_PROMPT = "Once upon a time"
NEW_TOKENS = 24
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a dog?"}]
SLOTS = 4


def with_chat_template(folder: Path) -> Path:
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config_path.write_text(json.dumps(config, indent=2))
    return folder


def stories_checkpoint(folder: Path) -> Path:
    """stories260K's HF weights plus a tokenizer.json (MAX's server needs an HF tokenizer)."""
    shutil.copytree(STORIES / "hf", folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    save_hf_tokenizer(STORIES / "tok512.model", folder)
    return folder


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """(checkpoint folder, running server): started in a temporary directory, not the checkout."""
    root = tmp_path_factory.mktemp("serve-gpt2")
    folder = root / "tiny-gpt2"
    make_checkpoint(folder, seed=5, **TINY)
    with_chat_template(folder)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with zoo_server(str(folder), root / "server.log", "--max-batch-size", str(SLOTS), cwd=elsewhere,
                    env={"ZOO_SERVE_TRACE_SLOTS": "1"}) as server:
        yield folder, server


@pytest.fixture(scope="module")
def library(gpt2):
    """The same checkpoint through the Python API (what `zoo run` calls)."""
    import zoo

    folder, _ = gpt2
    return zoo.load(str(folder), device="cpu")


@pytest.fixture(scope="module")
def expected(library):
    """Greedy continuation of every prompt, alone, from the library."""
    return {p: library.generate(p, greedy=True, max_new_tokens=NEW_TOKENS, ignore_eos=True) for p in PROMPTS}


def complete(server, prompt, **fields):
    import httpx

    body = {"model": server.model, "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0,
            "ignore_eos": True, **fields}
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=600)


def stream_text(server, route: str, body: dict) -> str:
    """The concatenated text of a streamed answer (completions or chat deltas)."""
    import httpx

    pieces, done = [], False
    with httpx.stream("POST", f"{server.url}{route}", json={**body, "stream": True}, timeout=600) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            payload = line[len("data: ") :]
            if payload == "[DONE]":
                done = True
                continue
            choice = json.loads(payload)["choices"][0]
            pieces.append(choice["text"] if "text" in choice else choice["delta"].get("content") or "")
    assert done and len(pieces) > 1
    return "".join(pieces)


def slots_in_use(server) -> int | None:
    """Slots in use, from the worker's last slot line (ZOO_SERVE_TRACE_SLOTS)."""
    found = re.findall(r"(\d+) of \d+ in use", server.log_text())
    return int(found[-1]) if found else None


def wait_until_free(server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while slots_in_use(server) != 0:
        assert time.monotonic() < deadline, f"slots still in use: {slots_in_use(server)}"
        time.sleep(0.5)


def test_the_worker_runs_this_checkout_from_another_directory(gpt2):
    _, server = gpt2
    assert f"KV cache pool: {SLOTS} slots x {TINY['n_positions']} tokens" in server.log_text()


def test_completion_equals_zoo_run_greedy(gpt2, expected):
    folder, server = gpt2
    prompt = PROMPTS[0]
    response = complete(server, prompt)
    assert response.status_code == 200, response.text
    text = response.json()["choices"][0]["text"]
    result = zoo("run", str(folder), "-p", prompt, "--greedy", "-n", str(NEW_TOKENS), "--ignore-eos")
    assert result.returncode == 0, result.stderr
    assert result.stdout == prompt + text + "\n"
    assert text == expected[prompt] and len(text) > 10


def test_streamed_events_concatenate_to_the_same_text(gpt2, expected):
    _, server = gpt2
    body = {"model": server.model, "prompt": PROMPTS[1], "max_tokens": NEW_TOKENS, "temperature": 0, "ignore_eos": True}
    assert stream_text(server, "/v1/completions", body) == expected[PROMPTS[1]]


def test_batched_requests_equal_single_requests(gpt2, expected):
    """More requests than slots, at once: each joins and leaves the running batch, and keeps its text."""
    _, server = gpt2
    prompts = PROMPTS * 2
    with ThreadPoolExecutor(len(prompts)) as pool:
        responses = list(pool.map(lambda p: complete(server, p), prompts))
    assert [r.status_code for r in responses] == [200] * len(prompts)
    assert [r.json()["choices"][0]["text"] for r in responses] == [expected[p] for p in prompts]
    # some step ran several of them together (how many depends on how fast they arrive on a busy machine)
    assert max(int(n) for n in re.findall(rf"(\d+) of {SLOTS} in use", server.log_text())) >= 2


def test_sampled_requests_share_the_batch_with_greedy_ones(gpt2, expected):
    """A step with a sampled request goes through MAX's sampler; greedy rows there keep their text."""
    _, server = gpt2
    fields = [{}, {"temperature": 0.9, "top_k": 50, "seed": 3}, {}, {"temperature": 0.9, "top_k": 50, "seed": 3}]
    with ThreadPoolExecutor(len(fields)) as pool:
        responses = list(pool.map(lambda f: complete(server, PROMPTS[0], **f), fields))
    texts = [r.json()["choices"][0]["text"] for r in responses]
    assert texts[0] == texts[2] == expected[PROMPTS[0]]
    assert texts[1] and texts[1] != expected[PROMPTS[0]]


def test_chat_completions_equal_the_api_chat(gpt2, library):
    _, server = gpt2
    import httpx

    want = library.chat(CHAT, temperature=0, max_new_tokens=NEW_TOKENS)
    body = {"model": server.model, "messages": CHAT, "max_tokens": NEW_TOKENS, "temperature": 0}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=600)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == want and want
    assert stream_text(server, "/v1/chat/completions", body) == want


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"model": "no-such-model"}, "Unknown model 'no-such-model'"),
        ({"max_tokens": -3}, "max_new_tokens must be a non-negative integer"),
        ({"prompt": "once more " * 400}, "Prompt is too long"),
        ({"prompt": [464, 50257 + 10, 318]}, "id 50267, outside the model's vocabulary of 50257"),
        ({"prompt": [464, -1]}, "id -1, outside the model's vocabulary"),
        ({"prompt": []}, "empty"),
    ],
)
def test_bad_requests_get_a_clear_400_and_the_others_are_untouched(gpt2, expected, fields, fragment):
    _, server = gpt2
    with ThreadPoolExecutor(3) as pool:
        good = [pool.submit(complete, server, p) for p in PROMPTS[2:4]]
        bad = complete(server, **{"prompt": PROMPTS[2], **fields})
        good = [g.result() for g in good]
    assert bad.status_code == 400, bad.text
    assert fragment in bad.json()["error"]["message"]
    assert [g.json()["choices"][0]["text"] for g in good] == [expected[p] for p in PROMPTS[2:4]]


def test_hostile_load_keeps_valid_answers_exact_and_frees_every_slot(gpt2, expected):
    """Disconnecting clients and invalid requests among valid ones, more clients than slots."""
    from zoo.serving.loadtest import run_load

    _, server = gpt2
    complete(server, PROMPTS[0])  # warm
    before = server_rss(server.pid)
    report, outcomes = run_load(
        server.url, server.model, concurrency=10, requests=48, max_tokens=NEW_TOKENS, prompts=PROMPTS,
        disconnect_fraction=0.25, invalid_fraction=0.15, vocab_size=TINY["vocab_size"], expected=expected,
        time_limit=900,
    )
    assert report.problems == []
    kinds = {kind: sum(o.kind == kind for o in outcomes) for kind in ("valid", "invalid", "disconnect")}
    assert kinds == {"valid": 29, "invalid": 7, "disconnect": 12}
    assert report.succeeded == 29 and report.statuses.get("400", 0) + report.statuses.get("404", 0) == 7
    wait_until_free(server)
    assert complete(server, PROMPTS[4]).json()["choices"][0]["text"] == expected[PROMPTS[4]]
    assert server_rss(server.pid) < 1.1 * before


# --------------------------------------------------------------------------- one slot, IPv6, no template


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-stories")
    folder = stories_checkpoint(root / "stories260K")
    with zoo_server(str(folder), root / "server.log", "--max-batch-size", "1", "--max-queue", "1",
                    host="::1", env={"ZOO_SERVE_TRACE_SLOTS": "1"}) as server:
        yield folder, server


def test_ipv6_server_answers_like_zoo_run(stories):
    folder, server = stories
    assert server.url.startswith("http://[::1]:")
    response = complete(server, STORY_PROMPT, ignore_eos=False)
    assert response.status_code == 200, response.text
    result = zoo("run", str(folder), "-p", STORY_PROMPT, "--greedy", "-n", str(NEW_TOKENS))
    assert result.returncode == 0, result.stderr
    assert result.stdout == STORY_PROMPT + response.json()["choices"][0]["text"] + "\n"


def test_chat_without_a_template_is_a_clear_400(stories):
    import httpx

    _, server = stories
    body = {"model": server.model, "messages": CHAT, "max_tokens": 4}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=600)
    assert response.status_code == 400, response.text
    assert "no chat template" in response.json()["error"]["message"]


def test_a_full_queue_answers_429_and_a_disconnect_frees_the_slot(stories):
    import httpx

    _, server = stories
    # A client that hangs up mid-stream gives its slot back (long before its 400 tokens).
    body = {"model": server.model, "prompt": STORY_PROMPT, "max_tokens": 400, "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=600) as response:
        assert response.status_code == 200
        next(response.iter_lines())
    wait_until_free(server, timeout=30)
    # One slot and a queue of one: of a burst of long requests, two are held and the rest turned away.
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: complete(server, STORY_PROMPT, max_tokens=480), range(12)))
    codes = sorted(a.status_code for a in answers)
    assert set(codes) == {200, 429} and codes.count(200) >= 2, codes
    rejected = next(a for a in answers if a.status_code == 429)
    assert rejected.json()["error"]["message"] == (
        "Server is at capacity: 2 requests in progress (1 decoding, 1 waiting); retry later"
    )
    assert rejected.headers["retry-after"] == "1"
    wait_until_free(server)
    assert complete(server, STORY_PROMPT, max_tokens=4).status_code == 200


# --------------------------------------------------------------------------- a GGUF file

GGUF = STORIES.parent / "gguf" / "stories260K-q8_0.gguf"


@pytest.fixture(scope="module")
def gguf_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-gguf")
    with zoo_server(str(GGUF), root / "server.log", "--max-batch-size", "2") as server:
        yield server


def test_a_gguf_file_answers_like_zoo_run_with_its_weights_encoded(gguf_server):
    from zoo.core.resolve import read_checkpoint, resolve_model

    response = complete(gguf_server, STORY_PROMPT, ignore_eos=False)
    assert response.status_code == 200, response.text
    result = zoo("run", str(GGUF), "-p", STORY_PROMPT, "--greedy", "-n", str(NEW_TOKENS))
    assert result.returncode == 0, result.stderr
    assert result.stdout == STORY_PROMPT + response.json()["choices"][0]["text"] + "\n"
    tokenizer = read_checkpoint(resolve_model(str(GGUF))).tokenizer
    assert response.json()["usage"]["prompt_tokens"] == len(tokenizer.encode(STORY_PROMPT))  # BOS included
    assert re.search(r"weights held as .*\d+ q8_0", gguf_server.log_text())


def test_a_gguf_dry_run_writes_the_folder_max_reads(tmp_path):
    from transformers import AutoTokenizer

    from zoo.core.resolve import read_checkpoint, resolve_model

    result = zoo("serve", str(GGUF), "--dry-run", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    folder = Path(words[words.index("--model-path") + 1])
    assert folder.parent == tmp_path / "zoo" / "serve"
    assert words[words.index("--weight-path") + 1] == str(GGUF.resolve())
    assert words[words.index("--quantization-encoding") + 1] == "float32"
    assert json.loads((folder / "zoo-serve.json").read_text()) == {"weights": str(GGUF.resolve()), "dtype": None}
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    ours = read_checkpoint(resolve_model(str(GGUF))).tokenizer
    saved = AutoTokenizer.from_pretrained(folder)
    for text in (STORY_PROMPT, "Lily and Tom went to the park."):
        assert saved(text)["input_ids"] == ours.encode(text)
        assert saved(text)["input_ids"][0] == ours.bos_token_id


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
    default = zoo("serve", str(folder), "--dry-run")
    assert default.stdout.split()[-2:] == ["--max-batch-size", "8"]
    assert default.stderr == ""


def test_address_options_after_the_separator_are_refused(tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(STORIES / "hf", folder)
    (folder / "tokenizer.json").write_text("{}")
    assert_one_line_error(zoo("serve", str(folder), "--dry-run", "--", "--port", "9"), "--port after -- is not allowed")
    assert_one_line_error(zoo("serve", str(folder), "--dry-run", "--", "--host=0.0.0.0"), "--host after -- is not allowed")
    assert_one_line_error(zoo("serve", str(folder), "--max-batch-size", "2", "--", "--max-batch-size", "3"), "given twice")


def test_listening_beyond_loopback_warns(tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(STORIES / "hf", folder)
    (folder / "tokenizer.json").write_text("{}")
    result = zoo("serve", str(folder), "--host", "0.0.0.0", "--dry-run")
    assert result.returncode == 0
    assert "warning: listening on 0.0.0.0" in result.stderr and "no authentication" in result.stderr
    assert "--host 0.0.0.0" in result.stdout
    quiet = zoo("serve", str(folder), "--host", "::1", "--dry-run")
    assert quiet.returncode == 0 and quiet.stderr == ""


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
    assert_one_line_error(zoo("serve", str(STORIES / "stories260K.bin")), "needs a tokenizer MAX's server can read")
    assert_one_line_error(zoo("serve", str(GGUF), "--dry-run", "--", "--weight-path", "x.gguf"), "--weight-path after --")
    assert_one_line_error(zoo("serve", str(STORIES / "hf")), "no Hugging Face tokenizer files")
    folder = tmp_path / "tiny"
    shutil.copytree(STORIES / "hf", folder)
    (folder / "tokenizer.json").write_text("{}")
    assert_one_line_error(zoo("serve", str(folder), "--port", "70000"), "not a TCP port")
    assert_one_line_error(zoo("serve", str(folder), "--max-length", "513"), "exceeds the model's context length 512")
    assert_one_line_error(zoo("serve", str(folder), "--max-batch-size", "100000000"), "lower --max-batch-size or --max-length")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_one_line_error(zoo("serve", str(folder), "--port", str(port)), f"cannot listen on 127.0.0.1:{port}")


def test_an_unreachable_hub_fails_in_one_line_within_seconds(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    started = time.monotonic()
    assert_one_line_error(zoo("serve", "someone/some-model", "--dry-run", env=env), "cannot reach the Hugging Face Hub")
    assert time.monotonic() - started < 20


def test_the_pool_memory_max_plans_is_what_the_pool_allocates():
    from max.dtype import DType

    from zoo.core.runtime.kvcache import KVCache
    from zoo.serving.sizing import pool_bytes
    from zoo.architectures.gpt2.config import GPT2Config

    config = GPT2Config.from_hf({"architectures": ["GPT2LMHeadModel"], **TINY})
    cache = KVCache(config, DType.float32, 3, 40)
    held = sum(t.nbytes for t in (*cache.keys, *cache.values))
    assert pool_bytes(config, 4, 3, 40) == held == 2 * 2 * 64 * 3 * 40 * 4


def test_the_load_test_stays_on_this_machine():
    from zoo.core.errors import OptionsError
    from zoo.serving.loadtest import check_loopback, percentile

    assert check_loopback("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert check_loopback("http://[::1]:8000") == "http://[::1]:8000"
    with pytest.raises(OptionsError, match="loopback"):
        check_loopback("http://10.1.2.3:8000")
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([], 90) == 0.0


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
        "    pickle.dumps((a.pipeline_model, a.config, a.weight_adapters, a.tokenizer, a.memory_planner))\n"
        "    print(a.name, a.pipeline_model.__name__, a.config.zoo_architecture, a.tokenizer.zoo_architecture)\n"
    )
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    for name in ("GPT2LMHeadModel", "LlamaForCausalLM", "MixtralForCausalLM", "TinyGPTForCausalLM"):
        assert rows[name] == [f"Zoo{name}", name, name]


def test_the_admission_limit_counts_requests_until_their_response_ends():
    import asyncio

    from zoo.serving.admission import AdmissionLimit

    async def scenario() -> tuple[list[int], int]:
        release = asyncio.Event()

        async def app(scope, receive, send):
            await release.wait()  # a response still streaming
            await send({"type": "http.response.start", "status": 200, "headers": []})

        limit = AdmissionLimit(app, 2)

        async def post(method: str = "POST") -> int:
            sent = []

            async def send(message):
                sent.append(message)

            await limit({"type": "http", "method": method}, None, send)
            return sent[0]["status"]

        held = [asyncio.create_task(post()) for _ in range(2)]
        await asyncio.sleep(0.01)
        refused = await post()
        reading = asyncio.create_task(post("GET"))  # not counted
        release.set()
        codes = [*(await asyncio.gather(*held)), refused, await reading, await post()]
        return codes, limit.active

    assert asyncio.run(scenario()) == ([200, 200, 429, 200, 200], 0)
