"""The CLI end to end: list, info, run (streamed stdout, HF cache offline) and fast start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from cli_helpers import zoo
from conftest import SHARED_DATA, STORIES
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


# A run's arguments per source: a llama2.c file, safetensors with a sentencepiece model or a
# tokenizer.json folder (written into TOKENIZER_FOLDER by the test), a GGUF file.
TOKENIZER_FOLDER = "{tokenizer folder}"
TORCH_FREE_RUNS = {
    "llama2c": [str(STORIES / "stories260K.bin")],
    "safetensors": [str(STORIES / "hf"), "--tokenizer", str(STORIES / "tok512.model")],
    "safetensors, tokenizer.json": [str(STORIES / "hf"), "--tokenizer", TOKENIZER_FOLDER],
    "gguf": [str(SHARED_DATA / "gguf" / "stories260K-q8_0.gguf")],
}


@pytest.mark.parametrize("source", list(TORCH_FREE_RUNS))
def test_a_run_in_float32_or_quantized_imports_neither_torch_nor_transformers(source, tmp_path):
    """The same text with torch and transformers made unimportable as without: float32 and
    quantized weights load as NumPy arrays, and a GGUF file's or a `tokenizer.json`'s
    tokenizer, once converted or loaded through transformers (the first run), is read back
    from zoo's tokenizer cache."""
    from sentencepiece_json import save_hf_tokenizer

    env = {"ZOO_TOKENIZER_CACHE": str(tmp_path / "cache")}
    save_hf_tokenizer(STORIES / "tok512.model", tmp_path / "tokenizer")
    sources = [str(tmp_path / "tokenizer") if arg == TOKENIZER_FOLDER else arg for arg in TORCH_FREE_RUNS[source]]
    args = ["run", *sources, "-p", "Once upon a time", "-n", "12", "--greedy"]
    expected = zoo(*args, env=env)
    assert expected.returncode == 0, expected.stderr
    code = (
        "import sys\n"
        "sys.modules['torch'] = sys.modules['transformers'] = None\n"
        "from zoo.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    blocked = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                             env={**os.environ, **env}, stdin=subprocess.DEVNULL, timeout=900)
    assert blocked.returncode == 0, blocked.stderr
    assert blocked.stdout == expected.stdout and "a time" in blocked.stdout


def test_a_bfloat16_checkpoint_runs_without_torch_as_transformers_does(tmp_path):
    """A bfloat16 safetensors checkpoint (the form most HF checkpoints take) is read as
    NumPy bfloat16 and runs with torch and transformers unimportable; its greedy text is
    transformers' on the same weights in float32."""
    import sentencepiece
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import LlamaForCausalLM

    folder = tmp_path / "bf16"
    folder.mkdir()
    weights = load_file(str(STORIES / "hf" / "model.safetensors"))
    save_file({name: t.to(torch.bfloat16) for name, t in weights.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((STORIES / "hf" / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "torch_dtype": "bfloat16"}))
    prompt = "Once upon a time"
    code = "import sys\nsys.modules['torch'] = sys.modules['transformers'] = None\nfrom zoo.cli import main\nmain(sys.argv[1:])\n"
    args = ["run", str(folder), "--tokenizer", str(STORIES / "tok512.model"), "-p", prompt, "-n", "12", "--greedy", "--ignore-eos"]
    blocked = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    assert blocked.returncode == 0, blocked.stderr
    processor = sentencepiece.SentencePieceProcessor(model_file=str(STORIES / "tok512.model"))
    ids = [processor.bos_id(), *processor.encode(prompt)]
    hf = LlamaForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    assert blocked.stdout == processor.decode(ids[1:] + reference_greedy(hf, ids, 12)) + "\n"


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


@pytest.mark.parametrize("alias", ["gpt2", "stories260K", "mixtral-8x7b"])
def test_info_on_an_alias_downloads_nothing(alias, tmp_path):
    env = {"HF_HOME": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    result = zoo("info", alias, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parameters"] > 0
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").rglob("*.bin"))


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


@pytest.mark.parametrize("network", ["offline", "hub-down"])
def test_run_offline_from_a_filled_hf_cache(tiny_checkpoint, tmp_path, network):
    """A user who downloaded openai-community/gpt2 earlier runs `zoo run gpt2` with no network."""
    from transformers import GPT2TokenizerFast

    folder, hf = tiny_checkpoint
    repo = tmp_path / "hf" / "hub" / "models--openai-community--gpt2"
    snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    env = {"HF_HOME": str(tmp_path / "hf")}
    env.update({"HF_HUB_OFFLINE": "1"} if network == "offline" else {"HF_ENDPOINT": "http://127.0.0.1:9"})
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


# --- paths the README promises: --stop, chat, the prompt loop, --seed, --weights, --dtype, ZOO_PLUGINS


def greedy_text(hf, folder, prompt: str, steps: int) -> str:
    """transformers' greedy continuation of `prompt`, decoded as zoo decodes it."""
    from transformers import GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast.from_pretrained(str(folder))
    ids = tokenizer(prompt).input_ids
    return tokenizer.decode(ids + reference_greedy(hf, ids, steps), skip_special_tokens=True)[len(tokenizer.decode(ids)) :]


def test_stop_string_split_across_tokens_is_cut_while_streaming(tiny_checkpoint):
    from transformers import GPT2TokenizerFast

    folder, hf = tiny_checkpoint
    prompt = "Hello world, this is"
    tokenizer = GPT2TokenizerFast.from_pretrained(str(folder))
    ids = tokenizer(prompt).input_ids
    new = reference_greedy(hf, ids, 12)
    pieces = [tokenizer.decode([t]) for t in new]
    text = "".join(pieces)
    k = next(i for i in range(3, len(pieces) - 1) if len(pieces[i].strip()) >= 2 and len(pieces[i + 1].strip()) >= 2)
    stop = pieces[k][-2:] + pieces[k + 1][:2]  # ends one token and starts the next
    assert stop not in "".join(pieces[:k]) + pieces[k][:-2]
    result = zoo("run", str(folder), "-p", prompt, "--greedy", "-n", "12", "--ignore-eos", "--stop", stop, "--stop", "never seen")
    assert result.returncode == 0, result.stderr
    assert result.stdout == prompt + text[: text.find(stop)] + "\n"


def test_prompt_loop_generates_each_prompt(tiny_checkpoint):
    folder, hf = tiny_checkpoint
    result = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "run", str(folder), "--greedy", "-n", "6", "--ignore-eos"],
        input="Hello\n\nOnce upon a time\nquit\n", capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    for prompt in ("Hello", "Once upon a time"):
        assert f"prompt> {prompt}{greedy_text(hf, folder, prompt, 6)}\n" in result.stdout


def test_chat_without_a_template_is_a_plain_transcript(tiny_checkpoint):
    folder, hf = tiny_checkpoint
    result = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "run", str(folder), "--chat", "--greedy", "-n", "6", "--ignore-eos"],
        input="Hello\nquit\n", capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    reply = greedy_text(hf, folder, "User: Hello\nAssistant:", 6)
    for stop in ("\nUser:", "\nHuman:"):
        reply = reply.split(stop)[0]
    assert f"Model: {reply}\n" in result.stdout


def test_chat_uses_the_tokenizer_chat_template(tiny_checkpoint, tmp_path):
    folder, hf = tiny_checkpoint
    for item in folder.iterdir():
        shutil.copy(item, tmp_path / item.name)
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text())
    settings["chat_template"] = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    result = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "run", str(tmp_path), "--chat", "--greedy", "-n", "6", "--ignore-eos"],
        input="Hello\nquit\n", capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert f"Model: {greedy_text(hf, folder, '<user>Hello' + chr(10) + '<assistant>', 6)}\n" in result.stdout


def test_seed_makes_sampling_reproducible_across_runs(tiny_checkpoint):
    folder, _ = tiny_checkpoint

    def sample(seed: int) -> str:
        result = zoo("run", str(folder), "-p", "Hello", "--temperature", "3", "--seed", str(seed), "-n", "12", "--ignore-eos")
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = sample(1)
    assert sample(1) == first
    assert sample(2) != first


def test_weights_flag_replaces_the_folders_weights(tiny_checkpoint, tmp_path):
    folder, hf = tiny_checkpoint
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(folder / name, tmp_path / name)
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    shutil.copy(folder / "model.safetensors", elsewhere / "tiny.safetensors")
    result = zoo("run", str(tmp_path), "-p", "Hello", "--greedy", "-n", "6", "--ignore-eos",
                 "--weights", str(elsewhere / "tiny.safetensors"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello" + greedy_text(hf, folder, "Hello", 6) + "\n"


def test_dtype_flag_runs_bfloat16(tiny_checkpoint):
    folder, _ = tiny_checkpoint
    result = zoo("run", str(folder), "-p", "Hello", "--greedy", "-n", "4", "--ignore-eos", "--dtype", "bfloat16")
    assert result.returncode == 0, result.stderr
    assert "bfloat16" in result.stderr and result.stdout.startswith("Hello") and len(result.stdout) > len("Hello\n")


def test_zoo_plugins_selects_third_party_plugins(tmp_path):
    import os

    from cli_helpers import make_plugin

    make_plugin(tmp_path, "zoo-extra", "zoo_extra", (
        "from zoo.core.architecture import ModelAlias\nfrom zoo.plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef register_models(register):\n"
        "    register(ModelAlias('extra-gpt2', 'someone/extra', 'GPT2LMHeadModel'))\n"
    ))
    path = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    def names(**env: str) -> set[str]:
        result = zoo("list", "--json", env={**path, **env})
        assert result.returncode == 0, result.stderr
        return {row["name"] for row in json.loads(result.stdout)}

    assert "extra-gpt2" in names()
    assert "extra-gpt2" in names(ZOO_PLUGINS="zoo-extra")
    assert "extra-gpt2" not in names(ZOO_PLUGINS="")
    assert "extra-gpt2" not in names(ZOO_PLUGINS="someone-else")
    assert "gpt2" in names(ZOO_PLUGINS="")  # built-in plugins always load
