"""The Python API as a new user would use it from the README, and the one resolution path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import zoo
from cli_helpers import assert_one_line_error, zoo as zoo_cli
from gpt2_fixtures import TINY, make_checkpoint
from reference import reference_greedy

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TEXT = (
    "Once upon a time, there was a little boy named Tom. Tom liked to play with his red ball in the garden. "
    "One day, the ball rolled under a big bush. Tom looked and looked, but he could not find it. "
) * 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The shared tiny GPT-2 shapes (one compiled graph), with a chat template in its tokenizer config."""
    folder = tmp_path_factory.mktemp("api-tiny")
    hf = make_checkpoint(folder, seed=8, **TINY)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = CHAT_TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder, hf


@pytest.fixture(scope="module")
def model(checkpoint):
    folder, _ = checkpoint
    return zoo.load(str(folder), device="cpu")


def test_import_zoo_is_cheap():
    code = "import sys, time; t = time.perf_counter(); import zoo; dt = time.perf_counter() - t\n" \
           "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('max', 'torch', 'transformers'))\n" \
           "print(heavy, dt)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]"
    assert float(seconds) < 0.5


def test_generate_greedy_equals_zoo_run(checkpoint, model):
    folder, hf = checkpoint
    prompt = "Hello world, this is"
    text = model.generate(prompt, max_new_tokens=10, greedy=True, ignore_eos=True)
    expected = model.decode(reference_greedy(hf, model.encode(prompt), 10))
    assert text == expected
    cli = zoo_cli("run", str(folder), "-p", prompt, "--greedy", "-n", "10", "--ignore-eos")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == prompt + text + "\n"


def test_stream_batch_and_sampling_defaults(model):
    pieces = list(model.stream("The quick brown fox", max_new_tokens=8, greedy=True, ignore_eos=True))
    assert len(pieces) > 1
    assert "".join(pieces) == model.generate("The quick brown fox", max_new_tokens=8, greedy=True, ignore_eos=True)
    batch = model.generate(["One", "Two words here"], max_new_tokens=6, greedy=True, ignore_eos=True)
    assert batch == [model.generate(p, max_new_tokens=6, greedy=True, ignore_eos=True) for p in ("One", "Two words here")]
    seeded = [model.generate("Hi", max_new_tokens=6, seed=3, ignore_eos=True) for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_chat_uses_the_template(model):
    messages = [{"role": "user", "content": "Hi there"}]
    prompt = model.chat_prompt(messages)
    assert prompt == "<|user|>Hi there\n<|assistant|>"
    assert model.chat(messages, max_new_tokens=6, temperature=0, ignore_eos=True) == model.generate(
        prompt, max_new_tokens=6, greedy=True, ignore_eos=True
    )


def test_logits_and_perplexity_equal_transformers(checkpoint, model):
    import torch

    _, hf = checkpoint
    ids = model.encode(TEXT)
    with torch.no_grad():
        expected = hf(torch.tensor([ids[:40]])).logits[0].numpy()
    np.testing.assert_allclose(model.logits(ids[:40]), expected, atol=1e-4, rtol=0)

    window = 32
    result = model.perplexity(TEXT, context=window)
    nll, count = 0.0, 0
    for start in range(0, len(ids) // window * window, window):
        chunk = ids[start : start + window]  # GPT-2 has no BOS to put first
        with torch.no_grad():
            logprobs = torch.log_softmax(hf(torch.tensor([chunk])).logits[0].double(), dim=-1)
        for position in range(window // 2, window - 1):
            nll -= float(logprobs[position, chunk[position + 1]])
            count += 1
    assert result.scored_tokens == count and result.windows == len(ids) // window
    assert abs(result.perplexity - np.exp(nll / count)) / np.exp(nll / count) < 1e-4


def test_models_registry_and_info(model):
    names = {row["name"] for row in zoo.models()}
    assert {"gpt2", "stories260K", "LlamaForCausalLM"} <= names
    assert "GPT2LMHeadModel" in zoo.registry().architectures
    info = model.info()
    assert info["architecture"] == "GPT2LMHeadModel" and info["config"]["n_layers"] == TINY["n_layer"]
    assert zoo.info("gpt2")["config"]["hidden_size"] == 768


def test_bad_references_are_zoo_errors_with_the_cli_message(model):
    with pytest.raises(zoo.ModelNotFoundError) as caught:
        zoo.load("gtp2")
    line = f"zoo: error: {caught.value}"
    for command in (["run", "gtp2", "-p", "hi"], ["info", "gtp2"], ["bench", "gtp2", "--random-weights"],
                    ["serve", "gtp2", "--dry-run"]):
        result = zoo_cli(*command)
        assert result.returncode == 1
        assert assert_one_line_error(result) == line, command
    with pytest.raises(zoo.OptionsError, match="--top-p"):
        model.generate("x", top_p=2.0)
    with pytest.raises(zoo.OptionsError, match="unknown sampling option 'temprature'"):
        model.generate("x", temprature=2.0)
    with pytest.raises(zoo.PromptError, match="empty"):
        model.generate("   ")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2, "n_head": 0, "vocab_size": 10}, "n_head must be between 1"),
        ({"architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": -1, "n_head": 4, "vocab_size": 10}, "n_layer must be between 1"),
        ([1, 2, 3], "must hold a JSON object"),
        ({"architectures": ["BertModel"]}, "no plugin supports architecture BertModel"),
    ],
)
def test_every_command_gives_the_same_verdict_on_a_bad_config(tmp_path, config, message):
    (tmp_path / "config.json").write_text(json.dumps(config))
    lines = set()
    for command in (["run", str(tmp_path), "-p", "hi"], ["info", str(tmp_path)], ["bench", str(tmp_path)],
                    ["serve", str(tmp_path), "--dry-run"]):
        lines.add(assert_one_line_error(zoo_cli(*command), message))
    assert len(lines) == 1
