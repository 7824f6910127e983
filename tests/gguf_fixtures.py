"""GGUF test fixtures: tiny random transformers checkpoints of each family, written to GGUF by
llama.cpp's own converter (`convert_hf_to_gguf.py`, in the llama.cpp checkout that
`../shared/tools/llamacpp-bench.sh` builds), and llama.cpp's tools for reference figures.

Families whose llama.cpp converter reads a sentencepiece model get the real stories260K
vocabulary (512 tokens); the byte-level BPE ones (GPT-2, GPT-NeoX, OLMo 2) get GPT-2's,
so their vocabulary is 50257.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conftest import SHARED_DATA, STORIES, save_gpt2_tokenizer

LLAMACPP_HOME = Path(os.environ.get("LLAMACPP_HOME", Path.home() / ".cache" / "zoo-llamacpp-noamx"))
# llama.cpp built for the host CPU uses its AMX tiles where the CPU lists them, and on some such
# virtual machines those kernels die (SIGILL or SIGSEGV in ggml_backend_amx_mul_mat) on any
# quantized prompt: its reference tools are built without AMX (the AVX-512 kernels remain).
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
LLAMACPP_BUILD = SHARED_DATA.parent / "tools" / "llamacpp-bench.sh"
GGUF_DATA = SHARED_DATA / "gguf"
TEXT = SHARED_DATA / "texts" / "little-stories.txt"
SPM = "spm"
BPE = "bpe"

_SMALL = {"hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 64}


def variant(module: str, index: int = 0) -> dict[str, Any]:
    """The config fields of an architecture's `zoo verify` variant (its shapes are compiled by verify and
    the family's tests, so zoo compiles no new graph for a fixture made from it)."""
    import importlib

    fields = dict(importlib.import_module(f"zoo.architectures.{module}").ARCHITECTURE.variants[index].hf_config)
    return {k: v for k, v in fields.items() if k not in ("architectures", "model_type")}


# name -> (transformers config class, tokenizer kind, config fields). Verify variants where llama.cpp's
# GGUF carries everything the variant sets; own configs where it does not (Qwen 2's and Mistral's
# sliding windows, GPT-2's exact GELU and n_inner) or where the plugin has none (Gemma, OLMo 2).
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", SPM, variant("llama", 0)),
    "llama-mqa": ("LlamaConfig", BPE, variant("llama", 1)),
    "mixtral": ("MixtralConfig", BPE, variant("mixtral")),
    "qwen2": ("Qwen2Config", SPM, {**_SMALL, "vocab_size": 512}),
    "qwen3": ("Qwen3Config", BPE, variant("qwen3")),
    "gemma2": ("Gemma2Config", SPM, {**_SMALL, "vocab_size": 512, "head_dim": 16, "query_pre_attn_scalar": 16,
                                     "sliding_window": 8, "attn_logit_softcapping": 30.0, "final_logit_softcapping": 20.0}),
    "gemma3": ("Gemma3TextConfig", SPM, {**_SMALL, "vocab_size": 512, "head_dim": 16, "query_pre_attn_scalar": 16,
                                         "sliding_window": 8, "num_hidden_layers": 7}),
    "phi3": ("Phi3Config", BPE, variant("phi3")),
    "olmo2": ("Olmo2Config", BPE, {**_SMALL, "vocab_size": 50257, "pad_token_id": 0}),
    "granite": ("GraniteConfig", BPE, variant("granite")),
    "gpt2": ("GPT2Config", BPE, {"vocab_size": 50257, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128}),
    "gptneox": ("GPTNeoXConfig", BPE, variant("gpt_neox")),
}


def random_model(family: str, seed: int = 0) -> Any:
    """A transformers model of `family` whose every weight, bias and norm scale is random."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    class_name, _, fields = FAMILIES[family]
    torch.manual_seed(seed)
    config = getattr(transformers, class_name)(**fields, initializer_range=0.2, bos_token_id=1, eos_token_id=2)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.2)
            elif "norm" in name or "ln_" in name:
                p.normal_(1.0, 0.2)
    return model


# config.json fields hub checkpoints of these families carry (llama.cpp's converter reads them)
# and transformers 5 no longer writes.
HUB_FIELDS = {
    "gpt2": lambda c: {"n_ctx": c["n_positions"]},
    "gptneox": lambda c: {"rotary_pct": c["rope_parameters"]["partial_rotary_factor"]},
}


def save_checkpoint(model: Any, family: str, folder: Path) -> Path:
    """Saves `model` and its family's tokenizer as a HF checkpoint folder."""
    model.save_pretrained(str(folder))
    if family in HUB_FIELDS:
        path = folder / "config.json"
        config = json.loads(path.read_text())
        path.write_text(json.dumps({**config, **HUB_FIELDS[family](config)}, indent=2))
    if FAMILIES[family][1] == SPM:
        shutil.copy(STORIES / "tok512.model", folder / "tokenizer.model")
    else:
        save_gpt2_tokenizer(folder)
    return folder


# The converter reads config.json through transformers' AutoConfig, which in transformers 5
# drops fields it still needs (GPT-NeoX's rotary_pct); for those families it is run with
# AutoConfig failing, so that it falls back to the raw config.json (its own fallback path).
RAW_CONFIG = ("gptneox",)
_RAW_CONFIG_RUNNER = (
    "import runpy, sys, transformers\n"
    "def refuse(*args, **kwargs):\n"
    "    raise ValueError('read config.json as it is')\n"
    "transformers.AutoConfig.from_pretrained = refuse\n"
    "sys.argv = sys.argv[1:]\n"
    "sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0])\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def llamacpp() -> Path:
    """llama.cpp's source folder (converter, gguf-py) with its tools built in build/bin: built
    once per machine by ../shared/tools/llamacpp-bench.sh (from the llama-cpp-python sdist on
    PyPI, about 15 minutes on 2 cores; without AMX, `NO_AMX`), one test process at a time."""
    import fcntl

    src = LLAMACPP_HOME / "src"
    tools = [src / "build" / "bin" / name for name in ("llama-quantize", "llama-perplexity", "llama-simple")]
    if all(tool.exists() for tool in tools):
        return src
    LLAMACPP_HOME.mkdir(parents=True, exist_ok=True)
    with open(LLAMACPP_HOME / ".build-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(tool.exists() for tool in tools):
            done = subprocess.run(["bash", str(LLAMACPP_BUILD), "build"], capture_output=True, text=True,
                                  env={**os.environ, "LLAMACPP_HOME": str(LLAMACPP_HOME), "PYTHON": sys.executable,
                                       **{flags: f"{os.environ.get(flags, '')} {NO_AMX}".strip() for flags in ("CFLAGS", "CXXFLAGS")}})
            if done.returncode != 0 or not all(tool.exists() for tool in tools):
                raise RuntimeError(f"building llama.cpp's tools failed:\n{done.stderr[-3000:]}")
    return src


def llamacpp_bin() -> Path:
    return llamacpp() / "build" / "bin"


def convert(folder: Path, out: Path, outtype: str = "f32", raw_config: bool = False) -> Path:
    """llama.cpp's converter: HF folder -> GGUF file."""
    env = {**os.environ, "PYTHONPATH": str(llamacpp() / "gguf-py")}
    script = [str(llamacpp() / "convert_hf_to_gguf.py")]
    if raw_config:
        script = ["-c", _RAW_CONFIG_RUNNER, *script]
    command = [sys.executable, *script, str(folder), "--outfile", str(out), "--outtype", outtype]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"llama.cpp's converter failed on {folder}:\n{done.stderr[-3000:]}")
    return out


def quantize(source: Path, out: Path, kind: str, *options: str) -> Path:
    """llama.cpp's quantizer (llama-quantize): GGUF -> GGUF of `kind` (Q4_0, Q4_K_M, ...), with
    its `options` (`--tensor-type attn_v=q4_1`, ...)."""
    command = [str(llamacpp_bin() / "llama-quantize"), *options, str(source), str(out), kind]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"llama-quantize failed:\n{done.stderr[-3000:]}")
    return out


def fixture_root() -> Path:
    """Where converted fixtures are kept between runs (ZOO_TEST_CACHE, default ~/.cache/zoo-tests)."""
    return Path(os.environ.get("ZOO_TEST_CACHE", Path.home() / ".cache" / "zoo-tests")) / "gguf"


def fixture_key(family: str) -> str:
    """A name for one family's fixture from everything that shapes it (its table entry, the
    transformers version, the converter), so that a change rebuilds it and only it."""
    import hashlib

    import transformers

    converter = llamacpp() / "convert_hf_to_gguf.py"
    key = repr((FAMILIES[family], transformers.__version__, converter.stat().st_mtime_ns, _RAW_CONFIG_RUNNER))
    return f"{family}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def build_all(families: list[str]) -> dict[str, tuple[Path, Path]]:
    """family -> (HF folder, F32 GGUF), built once (two conversions at a time) and then reused."""
    root = fixture_root()
    paths = {f: (root / fixture_key(f), root / f"{fixture_key(f)}-f32.gguf") for f in families}
    todo = [f for f in families if not paths[f][1].is_file()]
    if todo:
        root.mkdir(parents=True, exist_ok=True)
        for f in todo:
            shutil.rmtree(paths[f][0], ignore_errors=True)
            save_checkpoint(random_model(f, seed=sorted(FAMILIES).index(f)), f, paths[f][0])

        def one(f: str) -> None:
            partial = paths[f][1].with_suffix(".partial")
            convert(paths[f][0], partial, raw_config=f.split("-")[0] in RAW_CONFIG)
            partial.rename(paths[f][1])

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(one, todo))
    return paths


def hf_model(folder: Path) -> Any:
    """The transformers model saved in `folder`, in eval mode."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder)).eval()


def llamacpp_perplexity(path: Path, context: int, text: Path = TEXT) -> float:
    """llama-perplexity's final estimate for `path` on `text` (2 threads). Its log thread can
    exit before printing the last lines (1 run in 3 here even on a quiet machine, several in a
    row on a busy one); then it runs again (each run of these small files takes under a second)."""
    for _ in range(16):
        done = subprocess.run(
            [str(llamacpp_bin() / "llama-perplexity"), "-m", str(path), "-f", str(text), "-c", str(context), "-t", "2"],
            capture_output=True, text=True,
        )
        output = done.stdout + done.stderr
        final = re.search(r"Final estimate: PPL = (\d+\.\d+)", output)
        if final:
            return float(final.group(1))
        chunks = re.search(r"perplexity over (\d+) chunks", output)
        last = chunks and re.search(rf"\[{chunks.group(1)}\](\d+\.\d+),", output)
        if last:
            return float(last.group(1))
    raise RuntimeError(f"llama-perplexity gave no estimate for {path}:\n{done.stderr[-2000:]}")


def llamacpp_tokens(path: Path, context: int, folder: Path, text: Path = TEXT) -> list[int]:
    """The tokens llama-perplexity scores (its first `n_chunks * context` tokens of `text`),
    read back from the file its `--kl-divergence-base` writes."""
    import numpy as np

    out = folder / f"{path.stem}-{context}.kld"
    done = subprocess.run(
        [str(llamacpp_bin() / "llama-perplexity"), "-m", str(path), "-f", str(text), "-c", str(context), "-t", "2",
         "--kl-divergence-base", str(out)],
        capture_output=True, text=True,
    )
    raw = out.read_bytes() if out.is_file() else b""
    if not raw.startswith(b"_logits_"):
        raise RuntimeError(f"llama-perplexity wrote no tokens for {path}:\n{done.stderr[-2000:]}")
    n_ctx, _, n_chunk = np.frombuffer(raw[8:20], dtype=np.int32)
    return np.frombuffer(raw[20 : 20 + 4 * int(n_ctx) * int(n_chunk)], dtype=np.int32).tolist()
