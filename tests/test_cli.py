"""The CLI end to end: list, info, run (streamed stdout, HF cache offline) and fast start."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from cli_helpers import zoo
from gpt2_fixtures import TINY, make_checkpoint
from reference import reference_greedy


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-tiny")
    return folder, make_checkpoint(folder, seed=3, **TINY)


def test_help_and_list_do_not_import_max_or_torch():
    code = (
        "import sys, io, contextlib\n"
        "from zoo.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['list'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('max', 'torch', 'transformers'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list_shows_aliases_and_architectures():
    result = zoo("list")
    assert result.returncode == 0, result.stderr
    assert "gpt2" in result.stdout and "GPT2LMHeadModel" in result.stdout
    rows = json.loads(zoo("list", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["gpt2"]["source"] == "hf://openai-community/gpt2"
    assert by_name["gpt2"]["plugin"] == "builtin:gpt2"
    assert by_name["gpt2"]["parameters"] == 124_439_808
    assert by_name["GPT2LMHeadModel"]["kind"] == "architecture"
    assert all({"name", "architecture", "source", "plugin"} <= set(r) for r in rows)


def test_info_resolves_alias_and_directory(tiny_checkpoint):
    folder, _ = tiny_checkpoint
    alias = json.loads(zoo("info", "gpt2", "--json").stdout)
    assert alias["config"]["hidden_size"] == 768 and alias["weights"].startswith("hf://openai-community/gpt2")
    local = json.loads(zoo("info", str(folder), "--json").stdout)
    assert local["config"]["n_layers"] == TINY["n_layer"]
    assert local["weights"].endswith("model.safetensors")


def test_run_prompt_streams_prompt_plus_greedy_text_to_stdout(tiny_checkpoint):
    from transformers import GPT2TokenizerFast

    folder, hf = tiny_checkpoint
    prompt = "Hello world, this is"
    result = zoo("run", str(folder), "--prompt", prompt, "--greedy", "--max-new-tokens", "12", "--ignore-eos")
    assert result.returncode == 0, result.stderr
    tokenizer = GPT2TokenizerFast.from_pretrained(str(folder))
    expected = tokenizer.decode(reference_greedy(hf, tokenizer(prompt).input_ids, 12))
    assert result.stdout == prompt + expected + "\n"
    assert "compiled" in result.stderr  # diagnostics go to stderr only


def test_run_offline_from_a_filled_hf_cache(tiny_checkpoint, tmp_path):
    """A user who downloaded openai-community/gpt2 earlier runs `zoo run gpt2` with no network."""
    from transformers import GPT2TokenizerFast

    folder, hf = tiny_checkpoint
    repo = tmp_path / "hf" / "hub" / "models--openai-community--gpt2"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    prompt = "The cache says"
    result = zoo("run", "gpt2", "--prompt", prompt, "--greedy", "-n", "8", "--ignore-eos", env=env)
    assert result.returncode == 0, result.stderr
    tokenizer = GPT2TokenizerFast.from_pretrained(str(folder))
    assert result.stdout == prompt + tokenizer.decode(reference_greedy(hf, tokenizer(prompt).input_ids, 8)) + "\n"


def test_run_batch_of_prompts_matches_single_runs(tiny_checkpoint, tmp_path):
    folder, _ = tiny_checkpoint
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("One\nTwo words here\n")
    batch = zoo("run", str(folder), "--prompts-file", str(prompts_file), "--greedy", "-n", "6", "--ignore-eos")
    assert batch.returncode == 0, batch.stderr
    singles = [zoo("run", str(folder), "-p", p, "--greedy", "-n", "6", "--ignore-eos").stdout.rstrip("\n") for p in ("One", "Two words here")]
    assert batch.stdout.rstrip("\n") == "\n\n".join(singles)


def test_interactive_loop_reads_prompts_until_quit(tiny_checkpoint):
    folder, _ = tiny_checkpoint
    result = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "run", str(folder), "--greedy", "-n", "4"],
        input="Hello\nquit\n", capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "prompt>" in result.stdout and "Hello" in result.stdout
