"""GGUF files read back as HF checkpoints: config, tokenizer, tensors, and the model they run.

Files come from llama.cpp's own tools: the ones in ../shared/data/gguf (stories260K's real
weights, a random Llama quantized to every type), and tiny random checkpoints of every
family its converter writes (`gguf_fixtures`). Most checks need no compile: a GGUF file's
config, tensors (by HF name) and tokenizer equal the HF checkpoint's, so zoo runs it as it
runs that checkpoint (which its family's own tests hold to transformers). The compiled
checks reuse graphs other tests compile: stories260K, the families' verify variants and
gpt2_fixtures.TINY; llama-256 adds one shape.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import STORIES
from gguf_fixtures import FAMILIES, GGUF_DATA, TEXT, build_all, hf_model, llamacpp_perplexity, llamacpp_tokens
from quant_fixtures import INTEGER_DOT_ENCODINGS
from tokenizer_checks import assert_tokenizes_as
from zoo.core.checkpoints import gguf as reader
from zoo.core.checkpoints.gguf_tokenizer import gguf_tokenizer
from zoo.core.checkpoints.quantized import QuantizedWeight, as_float32
from zoo.core.errors import OptionsError, UnsupportedModelError, WeightsError
from zoo.core.resolve import make_config

STORIES_GGUF = {kind: GGUF_DATA / f"stories260K-{kind}.gguf" for kind in ("f32", "f16", "bf16", "q8_0", "Q4_0")}
LLAMA_256 = {kind: GGUF_DATA / f"llama-256-{kind}.gguf" for kind in ("f32", "f16", "bf16", "q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K")}
# Families zoo runs today, by fixture name; the others are checked against transformers alone.
ZOO_FAMILIES = ("llama", "llama-mqa", "mixtral", "qwen2", "qwen3", "phi3", "granite", "gpt2", "gptneox")


@pytest.fixture(scope="module")
def families():
    return build_all(list(FAMILIES))


def open_file(path: Path) -> reader.GGUFFile:
    return reader.GGUFFile(path)


def hf_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def as_float(value) -> np.ndarray:
    return as_float32(value)


# --- config, tensors and tokenizer of llama.cpp's files ----------------------------------


@pytest.mark.parametrize("path, folder", [(STORIES_GGUF["f32"], STORIES / "hf"), (LLAMA_256["f32"], GGUF_DATA / "llama-256-hf")])
def test_config_equals_the_hf_checkpoints(registry, path, folder):
    config = reader.read_config(path)
    original = json.loads((folder / "config.json").read_text())
    architecture = registry.architecture("LlamaForCausalLM")
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["rms_norm_eps"] == original["rms_norm_eps"]  # stored as float32, read back as written
    assert make_config(architecture, config) == make_config(architecture, original)


@pytest.mark.parametrize("path, folder", [(STORIES_GGUF["f32"], STORIES / "hf"), (LLAMA_256["f32"], GGUF_DATA / "llama-256-hf")])
def test_f32_tensors_equal_the_hf_checkpoints_exactly(path, folder):
    """Names come back as HF's and llama.cpp's q/k row permutation is undone."""
    file = open_file(path)
    tensors = reader.read_tensors(file, reader.hf_config(file))
    expected = hf_tensors(folder)
    assert sorted(tensors) == sorted(expected)
    for name, value in tensors.items():
        np.testing.assert_array_equal(value, expected[name].numpy(), err_msg=name)


@pytest.mark.parametrize("kind, encodings, tolerance", [
    ("f16", {"f16"}, 1e-3), ("bf16", {"bf16"}, 4e-3), ("q8_0", {"q8_0"}, 5e-3), ("Q4_0", {"q4_0", "q6_k"}, 0.15),
    ("Q4_K_M", {"q4_k", "q6_k"}, 0.1), ("Q5_K_M", {"q5_k", "q6_k"}, 0.05), ("Q6_K", {"q6_k"}, 0.03),
])
def test_low_precision_tensors_keep_their_encoding(kind, encodings, tolerance):
    """F16/BF16 come back as float tensors of that dtype, quantized weights as QuantizedWeight,
    each close to the float32 original (relative to the tensor's largest value)."""
    file = open_file(LLAMA_256[kind])
    tensors = reader.read_tensors(file, reader.hf_config(file))
    expected = hf_tensors(GGUF_DATA / "llama-256-hf")
    found = set()
    for name, value in tensors.items():
        if isinstance(value, QuantizedWeight):
            found.add(value.encoding)
            assert value.shape == tuple(expected[name].shape)
        elif value.ndim == 2:
            found.add({"float16": "f16", "bfloat16": "bf16"}[str(value.dtype)])
        reference = expected[name].numpy()
        assert np.abs(as_float(value) - reference).max() <= tolerance * np.abs(reference).max(), name
    assert found == encodings


def test_the_file_tokenizer_is_built_on_first_use():
    """Loading a GGUF file leaves its tokenizer unbuilt (a served model's worker never
    tokenizes); the first use builds it, and it encodes as the file's tokenizer does."""
    from zoo.core.checkpoints.gguf import load

    checkpoint = load(STORIES_GGUF["f32"])
    assert checkpoint.tokenizer._built is None
    text = "Once upon a time"
    assert checkpoint.tokenizer.encode(text) == gguf_tokenizer(open_file(STORIES_GGUF["f32"])).encode(text)
    assert checkpoint.tokenizer._built is not None


def test_the_tokenizer_is_the_sentencepiece_vocabulary_with_bos():
    import sentencepiece

    tokenizer = gguf_tokenizer(open_file(STORIES_GGUF["f32"]))
    processor = sentencepiece.SentencePieceProcessor(model_file=str(STORIES / "tok512.model"))
    text = TEXT.read_text()
    assert tokenizer.encode(text) == [1, *processor.encode(text)]
    assert tokenizer.encode("Once upon a time") == [1, 403, 407, 261, 378]
    assert tokenizer.decode(tokenizer.encode("Once upon a time, there was")) == "Once upon a time, there was"
    assert (tokenizer.bos_token_id, tokenizer.eos_token_ids, tokenizer.vocab_size) == (1, (2,), 512)


@pytest.mark.parametrize("name", ["stories", "gpt2"])
def test_tokens_equal_llama_cpps(families, tmp_path, name):
    """What llama-perplexity tokenizes the text into, zoo does too (sentencepiece with BOS; GPT-2's BPE without)."""
    path = STORIES_GGUF["f32"] if name == "stories" else families[name][1]
    text = TEXT.read_text().removesuffix("\n")
    theirs = llamacpp_tokens(path, 64, tmp_path)
    ours = gguf_tokenizer(open_file(path)).encode(text)
    assert len(theirs) >= 64 * 8
    assert ours[: len(theirs)] == theirs


@pytest.mark.parametrize("name", ["stories", "gemma2", "gpt2", "qwen3"])
def test_a_cached_tokenizer_encodes_and_decodes_as_the_converted_one(families, tmp_path, monkeypatch, name):
    """The first build converts the vocabulary through transformers and stores it; the next
    reads it back with `tokenizers` alone. Both encode and decode as transformers' wrapper
    does, on text with special tokens, odd spacing and characters outside the vocabulary.
    A damaged entry is converted again."""
    from zoo.core.checkpoints import gguf_tokenizer as module

    monkeypatch.setenv("ZOO_TOKENIZER_CACHE", str(tmp_path))
    path = STORIES_GGUF["f32"] if name == "stories" else families[name][1]
    converted = gguf_tokenizer(open_file(path))
    [entry] = tmp_path.glob("*.json")
    convert = module._convert

    def refuse(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(module, "_convert", refuse)
    cached = gguf_tokenizer(open_file(path))
    hf = converted.hf
    ids = assert_tokenizes_as(hf, converted, cached)
    assert cached.hf.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)
    entry.write_text("{damaged")
    monkeypatch.setattr(module, "_convert", convert)
    story = TEXT.read_text()[:3000]
    assert gguf_tokenizer(open_file(path)).encode(story) == converted.encode(story)
    assert entry.read_text().startswith("{") and entry.read_text() != "{damaged"


@pytest.mark.parametrize("name", ["gemma2", "qwen3"])
def test_a_tokenizer_saved_from_a_gguf_file_is_read_back_from_the_cache(families, tmp_path, monkeypatch, name):
    """A GGUF tokenizer saved as a HF folder (as `zoo serve` does) loads through transformers
    once; the next load is the cached backend, and both tokenize as the GGUF tokenizer."""
    from zoo.core.checkpoints.tokenizer import BackendTokenizer, HFTokenizer, load_tokenizer

    monkeypatch.setenv("ZOO_TOKENIZER_CACHE", str(tmp_path / "cache"))
    original = gguf_tokenizer(open_file(families[name][1]))
    original.hf.save_pretrained(str(tmp_path / "saved"))
    first, cached = load_tokenizer(tmp_path / "saved"), load_tokenizer(tmp_path / "saved")
    assert type(first) is HFTokenizer and isinstance(cached, BackendTokenizer)
    assert_tokenizes_as(original.hf, first, cached)


def test_the_tokenizer_cache_keeps_entries_where_told_and_can_be_turned_off(monkeypatch, tmp_path):
    from zoo.core.checkpoints import tokenizer_cache

    monkeypatch.setenv("ZOO_TOKENIZER_CACHE", str(tmp_path / "here"))
    key = tokenizer_cache.cache_key(["some", "metadata"], Path(tokenizer_cache.__file__))
    assert key != tokenizer_cache.cache_key(["other", "metadata"], Path(tokenizer_cache.__file__))
    assert tokenizer_cache.read(key) is None
    tokenizer_cache.store(key, '{"model": 1}')
    assert tokenizer_cache.read(key) == '{"model": 1}'
    assert [p.name for p in (tmp_path / "here").iterdir()] == [f"{key}.json"]
    monkeypatch.setenv("ZOO_TOKENIZER_CACHE", "0")
    assert tokenizer_cache.cache_dir() is None and tokenizer_cache.read(key) is None
    tokenizer_cache.store("other", "{}")
    assert len(list((tmp_path / "here").iterdir())) == 1


# --- every family llama.cpp's converter writes ---------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_reads_back_into_the_same_transformers_model(families, tmp_path, family):
    """The config and tensors read from the F32 GGUF, saved as a HF folder, load into
    transformers as the model the GGUF was converted from (exactly, but for the Llama 3 rope
    parameters recovered from llama.cpp's per-dimension factors: an equivalent set, which
    transformers computes to within float32 rounding)."""
    import torch
    from safetensors.numpy import save_file
    from transformers import AutoModelForCausalLM

    folder, path = families[family]
    file = open_file(path)
    config = reader.hf_config(file)
    tensors = reader.read_tensors(file, config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp_path / "model.safetensors"))
    back, info = AutoModelForCausalLM.from_pretrained(str(tmp_path), output_loading_info=True)
    assert not any(info.values()), info
    original = hf_model(folder)
    ids = torch.tensor([[1, 5, 9, 100, 200, 7, 3, 44, 12, 9, 8, 30, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    with torch.no_grad():
        tolerance = 1e-4 if "llama3" in str(config.get("rope_scaling")) else 1e-6
        np.testing.assert_allclose(back.eval()(ids).logits.numpy(), original(ids).logits.numpy(), rtol=0, atol=tolerance)


@pytest.mark.parametrize("family", ZOO_FAMILIES)
def test_zoo_reads_the_same_config_from_gguf_and_from_the_folder(families, registry, family):
    folder, path = families[family]
    config, original = reader.read_config(path), json.loads((folder / "config.json").read_text())
    architecture = registry.architecture(original["architectures"][0])
    assert config["architectures"] == original["architectures"]
    ours_config, theirs_config = make_config(architecture, config), make_config(architecture, original)
    # Llama 3 rope parameters come back as an equivalent set: the same frequencies
    np.testing.assert_array_equal(ours_config.inv_freq(), theirs_config.inv_freq())
    ours = ours_config.model_dump(exclude={"rope_scaling"})
    theirs = theirs_config.model_dump(exclude={"rope_scaling"})
    # llama.cpp's converter takes BOS/EOS from the tokenizer (GPT-2's: 50256), not from config.json
    special = (1, (2,)) if FAMILIES[family][1] == "spm" else (50256, (50256,))
    assert (ours.pop("bos_token_id"), ours.pop("eos_token_ids")) == special
    assert {k: v for k, v in ours.items()} == {k: v for k, v in theirs.items() if k not in ("bos_token_id", "eos_token_ids")}


def test_mixtral_experts_are_split_per_expert(families):
    folder, path = families["mixtral"]
    config = reader.read_config(path)
    tensors = reader.read_tensors(open_file(path), config)
    hidden, inner, experts = config["hidden_size"], config["intermediate_size"], config["num_local_experts"]
    assert experts == 4 and inner != hidden
    assert tuple(tensors["model.layers.1.block_sparse_moe.experts.3.w2.weight"].shape) == (hidden, inner)
    assert tuple(tensors["model.layers.1.block_sparse_moe.experts.3.w1.weight"].shape) == (inner, hidden)
    assert tuple(tensors["model.layers.0.block_sparse_moe.gate.weight"].shape) == (experts, hidden)


def test_quantized_gpt2_weights_stay_out_by_in_through_the_mapper(families, registry, tmp_path):
    """GPT-2's HF Conv1D weights are (in, out); a quantized GGUF weight is (out, in) rows,
    which the mapper passes on as they are (floats are handed over HF's way and transposed)."""
    from gguf_fixtures import quantize

    folder, path = families["gpt2"]
    q8 = quantize(path, tmp_path / "gpt2-q8_0.gguf", "Q8_0")
    config = reader.read_config(q8)
    checkpoint = reader.read_tensors(open_file(q8), config)
    architecture = registry.architecture("GPT2LMHeadModel")
    mapped = architecture.mapper()(checkpoint, make_config(architecture, config))
    weight = mapped["layers.0.attention.qkv_proj.weight"]
    assert isinstance(weight, QuantizedWeight) and weight.encoding == "q8_0" and weight.shape == (192, 64)
    expected = hf_tensors(folder)["transformer.h.0.attn.c_attn.weight"].numpy().T
    assert np.abs(weight.dequantize() - expected).max() < 0.01 * np.abs(expected).max()


# --- errors --------------------------------------------------------------------------------


def test_a_tensor_type_zoo_cannot_run_is_named(tmp_path):
    from gguf_fixtures import quantize

    iq3_s = quantize(LLAMA_256["f32"], tmp_path / "llama-256-iq3_s.gguf", "IQ3_S")
    file = open_file(iq3_s)
    with pytest.raises(WeightsError, match=r"tensor token_embd\.weight has type IQ3_S, which zoo cannot run"):
        reader.read_tensors(file, reader.hf_config(file))


def test_unsupported_architectures_and_broken_files_are_one_line_errors(tmp_path):
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "bert.gguf"), "bert")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModelError, match="GGUF architecture 'bert' is not supported"):
        reader.read_config(tmp_path / "bert.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(STORIES_GGUF["f32"].read_bytes()[:5000])
    assert reader.matches(truncated)
    with pytest.raises(WeightsError, match="cannot read GGUF file"):
        reader.read_config(truncated)
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(struct.pack("<4i", 1, 2, 3, 4))
    assert not reader.matches(not_gguf)


@pytest.mark.parametrize("kind", ["q8_0", "bf16", "f16"])
def test_quantized_files_run_encoded_and_match_their_weights_decoded_at_load(registry, kind):
    """llama.cpp's Q8_0, BF16 and F16 stories260K: without --dtype the weights stay in their
    encoding (zoo's kernels), with --dtype float32 they are decoded at load; the two give
    the same greedy text, and the same logits up to the 8-bit rounding of activations the
    Q8_0 kernel does (about 1% of the logits' range here; tests/test_quantized.py bounds it
    against a reference that rounds the same way)."""
    encoded = zoo_model(STORIES_GGUF[kind], registry, dtype=None)
    decoded = zoo_model(STORIES_GGUF[kind], registry)
    assert encoded.info()["weight_encodings"].get(kind, 0) > 0
    assert kind not in decoded.info()["weight_encodings"]
    assert encoded.info()["weight_bytes_per_token"] < 0.55 * decoded.info()["weight_bytes_per_token"]
    tokens = encoded.encode("Once upon a time there was a little")
    atol = 0.3 if kind in INTEGER_DOT_ENCODINGS else 1e-3
    np.testing.assert_allclose(encoded.logits(tokens), decoded.logits(tokens), atol=atol, rtol=0)
    prompt = "Once upon a time"
    assert encoded.generate(prompt, greedy=True, max_new_tokens=30) == decoded.generate(prompt, greedy=True, max_new_tokens=30)


# --- running them ---------------------------------------------------------------------------


def zoo_model(path: Path, registry, dtype: str | None = "float32"):
    from zoo.api import Model
    from zoo.core.loader import load_model

    return Model(load_model(str(path), registry, device="cpu", dtype=dtype, verbose=False))


def test_stories260k_gguf_generates_what_the_hf_folder_does(registry):
    from zoo.api import Model
    from zoo.core.loader import load_model

    from_hf = Model(load_model(str(STORIES / "hf"), registry, tokenizer=STORIES / "tok512.model", device="cpu", verbose=False))
    from_gguf = zoo_model(STORIES_GGUF["f32"], registry)
    prompt = "Once upon a time"
    text = from_gguf.generate(prompt, greedy=True, max_new_tokens=40)
    assert text == from_hf.generate(prompt, greedy=True, max_new_tokens=40)
    assert text.startswith(", there was a little girl named Lily.")
    ids = from_hf.encode(prompt + text)
    np.testing.assert_array_equal(from_gguf.logits(ids), from_hf.logits(ids))


def reference_perplexity(hf, tokens: list[int], window: int, bos: int | None) -> float:
    """transformers' perplexity with llama-perplexity's windows (written apart from zoo's)."""
    import torch

    total, count = 0.0, 0
    for start in range(0, len(tokens) - window + 1, window):
        chunk = list(tokens[start : start + window])
        if bos is not None:
            chunk[0] = bos
        with torch.no_grad():
            logits = hf(torch.tensor([chunk])).logits[0].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        for position in range(window // 2, window - 1):
            total -= float(logprobs[position, chunk[position + 1]])
            count += 1
    return float(np.exp(total / count))


def test_f32_perplexity_equals_transformers(registry):
    model = zoo_model(STORIES_GGUF["f32"], registry)
    text = TEXT.read_text().removesuffix("\n")
    ours = model.perplexity(text, context=128)
    expected = reference_perplexity(hf_model(STORIES / "hf"), model.encode(text), 128, bos=1)
    assert ours.windows == 9 and ours.scored_tokens == 9 * 63
    assert abs(ours.perplexity - expected) / expected < 1e-4


@pytest.mark.parametrize("kind", ["q8_0", "Q4_0"])
def test_dequantized_perplexity_is_llama_cpps(registry, kind):
    """The quantized stories260K files, dequantized, score within 0.1% of llama-perplexity."""
    text = TEXT.read_text().removesuffix("\n")
    ours = zoo_model(STORIES_GGUF[kind], registry).perplexity(text, context=128).perplexity
    theirs = llamacpp_perplexity(STORIES_GGUF[kind], 128)
    assert abs(ours - theirs) / theirs < 1e-3


def test_llama_256_scores_as_llama_cpp_in_every_k_quant(registry):
    """One compiled shape, the K-quant mixes llama.cpp wrote (dequantized): within 1% of
    llama-perplexity (the f32 one within 0.1%)."""
    text = TEXT.read_text().removesuffix("\n")
    for kind in ("f32", "bf16", "Q4_K_M", "Q5_K_M", "Q6_K"):
        path = LLAMA_256[kind]
        ours = zoo_model(path, registry).perplexity(text, context=128).perplexity
        theirs = llamacpp_perplexity(path, 128)
        assert abs(ours - theirs) / theirs < (1e-3 if kind == "f32" else 1e-2), (kind, ours, theirs)


def test_legacy_32_value_types_run_encoded_and_score_as_llama_cpp(registry, tmp_path):
    """Q5_0, Q5_1 and Q4_1, which llama.cpp's Q4_K_M and Q5_K_M recipes fall back to for rows that
    are not a multiple of 256 (models of width 576, 640, 896, ...), and IQ4_NL: stories260K
    quantized by llama.cpp to Q5_0 with v in Q4_1, up in Q5_1 (so the fused q/k/v and gate/up
    rows mix encodings) and the attention output in IQ4_NL, and a Q5_1 embedding (tied: it is
    the output projection too). Kept encoded on zoo's kernels, it scores within 1% of
    llama-perplexity on the same file and gives the greedy text of its weights decoded at load."""
    from gguf_fixtures import quantize

    path = tmp_path / "stories-q5_0-mix.gguf"
    quantize(STORIES_GGUF["f32"], path, "Q5_0", "--tensor-type", "attn_v=q4_1", "--tensor-type", "ffn_up=q5_1",
             "--tensor-type", "attn_output=iq4_nl", "--token-embedding-type", "q5_1")
    encoded = zoo_model(path, registry, dtype=None)
    assert {"q5_0", "q5_1", "q4_1", "iq4_nl"} <= set(encoded.loaded.graph.encodings)
    text = TEXT.read_text().removesuffix("\n")
    ours = encoded.perplexity(text, context=128).perplexity
    theirs = llamacpp_perplexity(path, 128)
    assert abs(ours - theirs) / theirs < 1e-2, (ours, theirs)
    prompt = "Once upon a time"
    decoded = zoo_model(path, registry)
    assert encoded.generate(prompt, greedy=True, max_new_tokens=30) == decoded.generate(prompt, greedy=True, max_new_tokens=30)


def test_2_and_3_bit_k_quants_and_iq4_xs_run_encoded_and_score_as_llama_cpp(registry, tmp_path):
    """llama.cpp's Q2_K recipe of llama-256 (Q2_K with Q3_K attn_v / ffn_down, Q6_K output), with
    up in IQ4_XS: kept encoded on zoo's kernels (q/k/v fused from Q2_K and Q3_K rows), it scores
    within 1% of llama-perplexity on the same file (llama.cpp rounds x to 8 bits per 256 values
    for these types, zoo per 32: about 0.5% apart here). Q3_K_M and Q3_K_L files hold the same
    Q3_K rows beside Q4_K/Q5_K ones."""
    from gguf_fixtures import quantize

    path = quantize(LLAMA_256["f32"], tmp_path / "llama-256-q2_k-mix.gguf", "Q2_K", "--tensor-type", "ffn_up=iq4_xs")
    model = zoo_model(path, registry, dtype=None)
    assert set(model.loaded.graph.encodings) == {"float", "q2_k", "q3_k", "iq4_xs", "q6_k"}
    text = TEXT.read_text().removesuffix("\n")
    ours = model.perplexity(text, context=128).perplexity
    theirs = llamacpp_perplexity(path, 128)
    assert abs(ours - theirs) / theirs < 1e-2, (ours, theirs)


def test_llama_256_q4_k_m_kept_encoded_scores_as_llama_cpp(registry):
    """The Q4_K_M file run as zoo runs it by default (weights encoded, Q4_K/Q6_K projections on
    MAX's quantized matmul with 8-bit activations, like llama.cpp's): within 1% of llama-perplexity."""
    text = TEXT.read_text().removesuffix("\n")
    path = LLAMA_256["Q4_K_M"]
    model = zoo_model(path, registry, dtype=None)
    assert set(model.loaded.graph.encodings) == {"float", "q4_k", "q6_k"}
    ours = model.perplexity(text, context=128).perplexity
    theirs = llamacpp_perplexity(path, 128)
    assert abs(ours - theirs) / theirs < 1e-2, (ours, theirs)


@pytest.mark.parametrize("family", ["llama", "llama-mqa", "mixtral", "qwen3", "phi3", "granite", "gpt2", "gptneox"])
def test_family_gguf_logits_equal_transformers(families, registry, family):
    """zoo on the F32 GGUF file against transformers on the checkpoint it came from, at every cached
    step (fixtures with the shapes of the families' verify variants: no new compile)."""
    from reference import assert_matches_transformers

    folder, path = families[family]
    model = zoo_model(path, registry)
    rng = np.random.default_rng(0)
    prompt = rng.integers(3, model.config.vocab_size, size=9).tolist()
    assert_matches_transformers(hf_model(folder), model.loaded, [prompt])
