"""`zoo quantize`: GGUF files as llama.cpp's own tools write them, which llama.cpp loads and runs.

Compared with llama.cpp's converter and llama-quantize on the same checkpoints: the files
in ../shared/data/gguf, and each family's tiny random checkpoint (`gguf_fixtures`). No graph
is compiled here; llama.cpp's binaries run the files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, zoo
from conftest import STORIES
from gguf_fixtures import FAMILIES, GGUF_DATA, TEXT, build_all, llamacpp_bin, llamacpp_perplexity
from zoo.core.architecture import Checkpoint
from zoo.core.checkpoints.gguf_vocab import tokenizer_fields
from zoo.core.checkpoints.gguf_writer import layout_for, write_gguf
from zoo.core.checkpoints.hf import find_weights, read_config, read_tensors
from zoo.core.checkpoints.quantize import quantize_model
from zoo.core.checkpoints.tokenizer import load_tokenizer

# keys that name the file rather than describe the model
NAMING = ("general.name", "general.size_label", "general.basename", "general.version", "general.finetune")


def contents(path: Path) -> tuple[dict, dict]:
    """(metadata by key with its GGUF type, tensors by name as (type, shape, raw bytes))."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in NAMING:
            continue
        value = field.contents()
        meta[key] = (tuple(value) if isinstance(value, list) else value, field.types[0].name)
    tensors = {t.name: (t.tensor_type.name, tuple(int(d) for d in t.shape), np.array(t.data)) for t in reader.tensors}
    return meta, tensors


def assert_same_file(ours: Path, theirs: Path, min_identical_rows: float = 1.0) -> None:
    """Same metadata, tensor names, types and shapes; tensor bytes equal (K-quants: on most rows)."""
    our_meta, our_tensors = contents(ours)
    their_meta, their_tensors = contents(theirs)
    assert our_meta == their_meta
    assert {n: t[:2] for n, t in our_tensors.items()} == {n: t[:2] for n, t in their_tensors.items()}
    same = rows = 0
    for name, (_, _, data) in our_tensors.items():
        other = their_tensors[name][2]
        flat, other_flat = data.reshape(-1, data.shape[-1]), other.reshape(-1, other.shape[-1])
        same += int((flat == other_flat).all(axis=1).sum())
        rows += len(flat)
    assert same / rows >= min_identical_rows, (same, rows)


@pytest.mark.parametrize("target, theirs", [("f32", "f32"), ("bf16", "bf16"), ("q8_0", "q8_0"), ("q4_0", "Q4_0")])
def test_stories260k_files_equal_llama_cpps(registry, tmp_path, target, theirs):
    """From the HF folder and its sentencepiece model: byte for byte what the converter
    (f32, bf16, q8_0) and llama-quantize (Q4_0: Q6_K output falling back to Q8_0) wrote."""
    out = tmp_path / f"stories-{target}.gguf"
    quantize_model(str(STORIES / "hf"), target, out, registry, tokenizer=STORIES / "tok512.model")
    assert_same_file(out, GGUF_DATA / f"stories260K-{theirs}.gguf")


@pytest.mark.parametrize("target, theirs", [("q4_k", "Q4_K_M"), ("q5_k", "Q5_K_M"), ("q6_k", "Q6_K")])
def test_k_quant_files_have_llama_quantizes_type_mix(registry, tmp_path, target, theirs):
    """Q4_K is llama.cpp's Q4_K_M mix (Q6_K output and favoured attn_v / ffn_down layers)."""
    out = tmp_path / f"llama-256-{target}.gguf"
    written = quantize_model(str(GGUF_DATA / "llama-256-hf"), target, out, registry)
    assert_same_file(out, GGUF_DATA / f"llama-256-{theirs}.gguf", min_identical_rows=0.95)
    if target == "q4_k":
        assert written.types["output.weight"] == "Q6_K" and written.types["blk.1.attn_v.weight"] == "Q6_K"
        assert written.types["blk.0.attn_q.weight"] == "Q4_K"


@pytest.mark.parametrize("target, theirs, main_type", [
    ("q4_k", "Q4_K_M", "Q5_0"), ("q5_k", "Q5_K_M", "Q5_1"), ("q4_1", "Q4_1", "Q4_1"), ("q5_0", "Q5_0", "Q5_0"),
    ("q5_1", "Q5_1", "Q5_1"),
])
def test_stories260k_files_equal_the_ones_llama_quantize_writes_here(registry, tmp_path, target, theirs, main_type):
    """Byte for byte what llama-quantize writes from the F32 file. stories260K's rows of 64
    values fit no K-quant block: Q4_K falls back to Q5_0, Q5_K to Q5_1 and the Q6_K output to
    Q8_0; rows of 172 fit no 32-value block either and take F16. Q4_1, Q5_0 and Q5_1 come from
    the `gguf` package's encoders."""
    from gguf_fixtures import quantize

    reference = quantize(GGUF_DATA / "stories260K-f32.gguf", tmp_path / f"stories-{theirs}.gguf", theirs)
    out = tmp_path / f"stories-{target}.gguf"
    written = quantize_model(str(STORIES / "hf"), target, out, registry, tokenizer=STORIES / "tok512.model")
    assert_same_file(out, reference)
    assert set(written.type_counts()) == {main_type, "Q8_0", "F16", "F32"}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_is_written_as_the_converter_writes_it(registry, tmp_path, family):
    """Metadata, tensor names, shapes and float32 bytes equal the converter's file, for the
    families zoo runs and the ones it is getting (written from the HF folder directly)."""
    folder, theirs = build_all([family])[family]
    hf = read_config(folder)
    tensors = read_tensors(find_weights(folder))
    checkpoint = Checkpoint(hf, tensors, load_tokenizer(folder), source=str(folder))
    layout = layout_for(registry.architecture(hf["architectures"][0]), registry)
    fields = tokenizer_fields(checkpoint, folder, hf, layout)
    out = write_gguf(layout, hf, tensors, tmp_path / "ours.gguf", "f32", fields, family).path
    assert_same_file(out, theirs)


def test_a_gguf_file_and_a_llama2c_file_give_the_same_file(registry, tmp_path):
    """Any checkpoint zoo reads: the F32 GGUF (its tokenizer copied) and llama2.c's .bin (with the
    sentencepiece model) give what the converter made of the HF folder."""
    from_gguf, from_llama2c = tmp_path / "from-gguf.gguf", tmp_path / "from-llama2c.gguf"
    quantize_model(str(GGUF_DATA / "stories260K-f32.gguf"), "q8_0", from_gguf, registry)
    quantize_model(str(STORIES / "stories260K.bin"), "q8_0", from_llama2c, registry, tokenizer=STORIES / "tok512.model")
    assert_same_file(from_gguf, GGUF_DATA / "stories260K-q8_0.gguf")
    assert_same_file(from_llama2c, GGUF_DATA / "stories260K-q8_0.gguf")


def run_llama_simple(path: Path, prompt: str, tokens: int = 24) -> str:
    done = subprocess.run([str(llamacpp_bin() / "llama-simple"), "-m", str(path), "-n", str(tokens), prompt],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_llama_cpp_runs_zoos_files(registry, tmp_path):
    """llama-simple generates from zoo's Q4_0 stories260K what it generates from llama-quantize's;
    llama-perplexity scores zoo's Q4_K llama-256 within 1% of llama.cpp's own Q4_K_M file."""
    stories = tmp_path / "stories-q4_0.gguf"
    quantize_model(str(STORIES / "hf"), "q4_0", stories, registry, tokenizer=STORIES / "tok512.model")
    text = run_llama_simple(stories, "Once upon a time")
    assert "Once upon a time, there was a little girl named Lily" in text
    assert text == run_llama_simple(GGUF_DATA / "stories260K-Q4_0.gguf", "Once upon a time")
    llama = tmp_path / "llama-256-q4_k.gguf"
    quantize_model(str(GGUF_DATA / "llama-256-hf"), "q4_k", llama, registry)
    ours, theirs = llamacpp_perplexity(llama, 128), llamacpp_perplexity(GGUF_DATA / "llama-256-Q4_K_M.gguf", 128)
    assert abs(ours - theirs) / theirs < 0.01


def test_cli(tmp_path):
    out = tmp_path / "stories.gguf"
    done = zoo("quantize", str(GGUF_DATA / "stories260K-f32.gguf"), "--to", "q8_0", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "MOSTLY_Q8_0" in done.stderr and "31 Q8_0" in done.stderr
    assert_same_file(out, GGUF_DATA / "stories260K-q8_0.gguf")
    assert_one_line_error(zoo("quantize", str(STORIES / "stories260K.bin"), "--to", "q8_0", "-o", str(tmp_path / "x.gguf")),
                          "cannot store this tokenizer", "--tokenizer")
    assert_one_line_error(zoo("quantize", str(STORIES / "hf"), "--to", "q3_k", "-o", str(tmp_path / "x.gguf")), "q3_k")

