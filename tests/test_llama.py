"""Llama on MAX against transformers, and the llama2.c checkpoint and tokenizer readers.

The plugin's two verify variants cover the attention variants between them
(each compiled once per session): grouped-query with biases, untied output, a
head_dim that is not hidden/heads and llama3 rope scaling; multi-query with
tied embeddings, linear rope scaling and the real GPT-2 tokenizer. The real stories260K weights run both from the HF folder and
from the llama2.c files, which share one compiled graph.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import STORIES, save_gpt2_tokenizer
from zoo.architectures.llama import ALIASES, ARCHITECTURE
from zoo.architectures.llama import llama2c
from zoo.architectures.llama.config import LlamaConfig
from zoo.core.checkpoints.mapping import map_llama_style as map_weights
from zoo.core.errors import ZooError
from zoo.core.runtime.generation import TextGenerator
from zoo.core.loader import load_model
from zoo.core.runtime.sampling import SamplingOptions
from reference import assert_matches_transformers, cached_decode, random_hf, reference_greedy

# The two configs the Llama plugin declares for `zoo verify` (same shapes: the graphs are shared),
# and a multi-head one for the tests that compile nothing.
_VARIANTS = {v.name.split("-")[0]: dict(v.hf_config) for v in ARCHITECTURE.variants}
CONFIGS = {
    name: {k: v for k, v in config.items() if k not in ("architectures", "model_type", "max_position_embeddings")}
    for name, config in _VARIANTS.items()
}
MHA = dict(
    vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False, rms_norm_eps=1e-6,
)
STEPS = 10
ONCE_UPON_A_TIME = "Once upon a time, there was a little girl named Lily"


def random_llama(seed: int, **shape):
    """A transformers Llama whose every weight, bias and norm scale is random."""
    return random_hf("Llama", {"max_position_embeddings": 128, **shape}, seed)


def token_prompts(vocab_size: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab_size, size=n).tolist() for n in lengths]


# --- random configs, compiled once each --------------------------------------------


@pytest.fixture(scope="module")
def llama_pairs(tmp_path_factory, registry):
    """Gets (transformers model, zoo LoadedModel) on the same random weights, by config name."""
    pairs = {}

    def get(name: str):
        if name not in pairs:
            folder = tmp_path_factory.mktemp(f"llama-{name}")
            hf = random_llama(seed=len(name), **CONFIGS[name])
            hf.save_pretrained(str(folder))
            if CONFIGS[name]["vocab_size"] >= 50257:  # the real GPT-2 tokenizer fits this vocabulary
                save_gpt2_tokenizer(folder)
            pairs[name] = hf, load_model(str(folder), registry, verbose=False, need_tokenizer=False)
        return pairs[name]

    return get


@pytest.mark.parametrize("name", CONFIGS)
def test_config_and_parameter_count_follow_the_checkpoint(llama_pairs, name):
    hf, model = llama_pairs(name)
    shape = CONFIGS[name]
    config = model.config
    assert isinstance(config, LlamaConfig)
    assert (config.n_heads, config.n_kv_heads) == (shape["num_attention_heads"], shape["num_key_value_heads"])
    assert config.head_dim == shape.get("head_dim", shape["hidden_size"] // shape["num_attention_heads"])
    assert config.tie_word_embeddings == shape["tie_word_embeddings"]
    assert config.qkv_bias == config.o_bias == shape.get("attention_bias", False)
    assert config.parameter_count() == sum(p.numel() for p in hf.parameters())
    np.testing.assert_allclose(config.inv_freq(), hf.model.rotary_emb.inv_freq.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_match_transformers_at_every_cached_step(llama_pairs, name):
    hf, model = llama_pairs(name)
    prompt = token_prompts(CONFIGS[name]["vocab_size"], [9], seed=1)
    assert_matches_transformers(hf, model, prompt)


@pytest.mark.parametrize("name", CONFIGS)
def test_greedy_tokens_equal_transformers_generate(llama_pairs, name):
    hf, model = llama_pairs(name)
    for prompt in token_prompts(CONFIGS[name]["vocab_size"], [4, 11], seed=2):
        tokens, _ = cached_decode(model, [prompt], steps=16)
        ours = tokens[:, 0].tolist()
        assert ours == reference_greedy(hf, prompt, 16)
        assert len(set(ours)) > 1, "degenerate test model: pick weights whose greedy output varies"


@pytest.mark.parametrize("name", CONFIGS)
def test_batch_of_different_lengths_equals_one_at_a_time(llama_pairs, name):
    """Left-padded rows give the tokens they give alone, and transformers' logits."""
    hf, model = llama_pairs(name)
    prompts = token_prompts(CONFIGS[name]["vocab_size"], [3, 10, 6], seed=3)
    batched, _ = cached_decode(model, prompts, STEPS)
    for row, prompt in enumerate(prompts):
        alone, _ = cached_decode(model, [prompt], STEPS)
        assert batched[:, row].tolist() == alone[:, 0].tolist()
    assert_matches_transformers(hf, model, prompts)


def test_text_generation_with_a_real_tokenizer(llama_pairs):
    hf, model = llama_pairs("mqa")  # the config with GPT-2's vocabulary
    generator = TextGenerator(model)
    options = SamplingOptions(greedy=True, max_new_tokens=12, ignore_eos=True)
    for prompt in ["Hello world, this is Llama.", "The quick brown fox"]:
        ids = generator.encode(prompt)
        completion = generator.generate([prompt], options)[0]
        expected = reference_greedy(hf, ids, 12)
        assert completion.token_ids == expected
        assert completion.text == generator.tokenizer.decode(expected)


# --- config, rope and weight mapping (no compile) ----------------------------------


def test_config_reads_both_rope_layouts():
    base = dict(MHA, architectures=["LlamaForCausalLM"], max_position_embeddings=64)
    base.pop("tie_word_embeddings")
    old = LlamaConfig.from_hf({**base, "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}})
    new = LlamaConfig.from_hf({**base, "rope_parameters": {"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0}})
    both_keys = {"type": "linear", "rope_type": "linear", "factor": 2.0}
    both = LlamaConfig.from_hf({**base, "rope_theta": 500.0, "rope_scaling": both_keys})
    assert old == new == both
    plain = LlamaConfig.from_hf({**base, "rope_theta": 500.0})
    np.testing.assert_allclose(old.inv_freq(), np.asarray(plain.inv_freq()) / 2.0, rtol=1e-6)
    assert plain.rope_scaling == {} and plain.head_dim == 8 and plain.n_kv_heads == 4


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "yarn"),
        ({"num_key_value_heads": 3}, "multiple"),
        ({"hidden_size": None}, "hidden_size"),
        ({"num_attention_heads": 0}, "num_attention_heads must be between 1"),
        ({"num_hidden_layers": 10_000_000}, "num_hidden_layers must be between 1 and 1024"),
        ({"hidden_size": "64"}, "hidden_size must be an integer"),
        ({"vocab_size": -5}, "vocab_size must be between 1"),
        ({"rms_norm_eps": "tiny"}, "rms_norm_eps must be a finite number"),
    ],
)
def test_unsupported_variants_are_refused(change, message):
    hf = {**MHA, **change}
    hf = {k: v for k, v in hf.items() if v is not None}
    with pytest.raises(ZooError, match=message):
        LlamaConfig.from_hf(hf)


def test_mapper_fuses_qkv_and_gate_up_in_order():
    import torch

    hf = random_llama(seed=5, **CONFIGS["gqa"])
    state = dict(hf.state_dict())
    state["model.rotary_emb.inv_freq"] = torch.ones(8)
    state["model.layers.0.self_attn.extra.weight"] = torch.ones(2)
    mapped = map_weights(state, LlamaConfig.from_hf(hf.config.to_dict()))
    attn = hf.model.layers[1].self_attn
    for kind in ("weight", "bias"):
        parts = [getattr(getattr(attn, f"{p}_proj"), kind) for p in "qkv"]
        assert torch.equal(mapped[f"layers.1.attention.qkv_proj.{kind}"], torch.cat(parts))
    mlp = hf.model.layers[2].mlp
    gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
    assert torch.equal(mapped["layers.2.mlp.gate_up_proj.weight"], gate_up)
    assert torch.equal(mapped["layers.2.mlp.down_proj.bias"], mlp.down_proj.bias)
    assert torch.equal(mapped["final_norm.weight"], hf.model.norm.weight)
    assert "lm_head.weight" in mapped and "embed_tokens.weight" in mapped
    assert not any("inv_freq" in name for name in mapped)
    # Unknown names pass through, for the loader to report.
    assert [name for name in mapped if "self_attn" in name] == ["layers.0.self_attn.extra.weight"]


def test_tied_lm_head_is_dropped_and_unknown_names_are_reported():
    from max.experimental import functional as F

    from zoo.core.blocks.decoder import build_decoder as build_model
    from zoo.core.loader import check_weights

    hf = random_llama(seed=6, **MHA)
    config = LlamaConfig.from_hf({**hf.config.to_dict(), "tie_word_embeddings": True})
    state = {**hf.state_dict(), "model.layers.0.mlp.surprise.weight": hf.model.norm.weight}
    mapped = map_weights(state, config)
    assert "lm_head.weight" not in mapped
    with F.lazy():
        expected = {name: tuple(int(d) for d in p.shape) for name, p in build_model(config).parameters}
    with pytest.raises(ZooError, match=r"unexpected: layers\.0\.mlp\.surprise\.weight"):
        check_weights(expected, mapped)
    del mapped["layers.0.mlp.surprise.weight"]
    check_weights(expected, mapped)


def test_alias_parameter_counts_match_their_configs(registry):
    names = {a.name for a in ALIASES}
    assert {"SmolLM-135M", "TinyLlama-1.1B", "stories260K", "stories15M"} <= names
    for alias in ALIASES:
        assert registry.aliases[alias.name].architecture == "LlamaForCausalLM"
        assert LlamaConfig.from_hf(dict(alias.hf_config)).parameter_count() == alias.parameters, alias.name
    assert "llama2c" in registry.weight_formats


# --- llama2.c files --------------------------------------------------------------


def test_llama2c_tensors_equal_the_hf_conversion():
    from safetensors.torch import load_file

    from zoo.core.checkpoints.hf import read_config

    checkpoint = llama2c.load(STORIES / "stories260K.bin", STORIES / "tok512.bin")
    reference = load_file(str(STORIES / "hf" / "model.safetensors"))
    assert set(checkpoint.tensors) == set(reference)
    for name, tensor in reference.items():
        np.testing.assert_array_equal(checkpoint.tensors[name], tensor.numpy(), err_msg=name)
    assert LlamaConfig.from_hf(checkpoint.hf_config) == LlamaConfig.from_hf(read_config(STORIES / "hf"))


def write_llama2c(path: Path, hf, shared: bool) -> None:
    """Writes `hf` as llama2.c's legacy exporter does: interleaved-rope q/k rows, rope tables."""
    c = hf.config
    head = c.hidden_size // c.num_attention_heads
    state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    layers = range(c.num_hidden_layers)

    def interleave(w: np.ndarray, heads: int) -> np.ndarray:
        return w.reshape(heads, 2, w.shape[0] // heads // 2, w.shape[1]).transpose(0, 2, 1, 3).reshape(w.shape)

    def stacked(part: str, heads: int | None = None) -> list[np.ndarray]:
        ws = [state[f"model.layers.{i}.{part}"] for i in layers]
        return [interleave(w, heads) for w in ws] if heads else ws

    vocab = c.vocab_size if shared else -c.vocab_size
    header = struct.pack("<7i", c.hidden_size, c.intermediate_size, c.num_hidden_layers,
                         c.num_attention_heads, c.num_key_value_heads, vocab, c.max_position_embeddings)
    arrays = [state["model.embed_tokens.weight"], *stacked("input_layernorm.weight"),
              *stacked("self_attn.q_proj.weight", c.num_attention_heads),
              *stacked("self_attn.k_proj.weight", c.num_key_value_heads),
              *stacked("self_attn.v_proj.weight"), *stacked("self_attn.o_proj.weight"),
              *stacked("post_attention_layernorm.weight"), *stacked("mlp.gate_proj.weight"),
              *stacked("mlp.down_proj.weight"), *stacked("mlp.up_proj.weight"), state["model.norm.weight"],
              np.zeros(2 * c.max_position_embeddings * head // 2)]
    if not shared:
        arrays.append(state["lm_head.weight"])
    path.write_bytes(header + b"".join(np.asarray(a, dtype="<f4").tobytes() for a in arrays))


def test_llama2c_untied_grouped_query_round_trip(tmp_path):
    """An untied GQA model written as llama2.c reads back as the same HF tensors."""
    hf = random_llama(seed=7, **{**MHA, "num_key_value_heads": 2, "max_position_embeddings": 16})
    write_llama2c(tmp_path / "model.bin", hf, shared=False)
    (tmp_path / "tokenizer.bin").write_bytes(
        struct.pack("<i", 1) + b"".join(struct.pack("<fi", 0.0, 1) + bytes([i % 256]) for i in range(320))
    )
    assert llama2c.matches(tmp_path / "model.bin")
    checkpoint = llama2c.load(tmp_path / "model.bin", None)
    assert isinstance(checkpoint.tokenizer, llama2c.Llama2cTokenizer)
    assert checkpoint.hf_config["tie_word_embeddings"] is False
    assert checkpoint.hf_config["num_key_value_heads"] == 2
    state = hf.state_dict()
    assert set(checkpoint.tensors) == set(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(checkpoint.tensors[name], tensor.numpy(), err_msg=name)


def test_llama2c_format_accepts_only_llama2c_checkpoints(tmp_path):
    assert llama2c.matches(STORIES / "stories260K.bin")
    for other in ["tok512.bin", "tok512.model", "hf/model.safetensors", "hf/config.json", "hf"]:
        assert not llama2c.matches(STORIES / other), other
    data = (STORIES / "stories260K.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-4])
    (tmp_path / "long.bin").write_bytes(data + b"\0\0\0\0")
    assert not llama2c.matches(tmp_path / "short.bin")
    assert not llama2c.matches(tmp_path / "long.bin")
    with pytest.raises(ZooError, match="not a llama2.c checkpoint"):
        llama2c.load(tmp_path / "short.bin", None)


def test_llama2c_tokenizer_lookup(tmp_path):
    from zoo.core.checkpoints.tokenizer import SentencePieceTokenizer

    found = llama2c.load(STORIES / "stories260K.bin", None)  # tok512.bin lies next to it
    assert isinstance(found.tokenizer, llama2c.Llama2cTokenizer)
    sentencepiece = llama2c.load(STORIES / "stories260K.bin", STORIES / "tok512.model")
    assert isinstance(sentencepiece.tokenizer, SentencePieceTokenizer)
    shutil.copy(STORIES / "stories260K.bin", tmp_path / "stories260K.bin")
    with pytest.raises(ZooError, match="--tokenizer"):
        llama2c.load(tmp_path / "stories260K.bin", None)
    (tmp_path / "tokenizer.bin").write_bytes(struct.pack("<ifi", 1, 0.0, 1) + b"a")
    with pytest.raises(ZooError, match="1 tokens but stories260K.bin was trained with 512"):
        llama2c.load(tmp_path / "stories260K.bin", None)


def test_llama2c_tokenizer_encodes_like_run_c():
    import sentencepiece

    tok = llama2c.Llama2cTokenizer(STORIES / "tok512.bin")
    assert tok.encode("Once upon a time") == [1, 403, 407, 261, 378]
    assert tok.encode("") == [1]
    assert (tok.bos_token_id, tok.eos_token_ids, tok.vocab_size) == (1, (2,), 512)
    # Where sentencepiece does not normalise whitespace, run.c's greedy merge gives its tokens.
    sp = sentencepiece.SentencePieceProcessor(model_file=str(STORIES / "tok512.model"))
    for text in ["Once upon a time", "Lily said, \"Hi!\"\nThe end.", "naïve café 日本 🙂", "x"]:
        ids = tok.encode(text)
        assert ids == [1, *sp.encode(text)], text
        assert tok.decode(ids) == " " + text  # BOS dropped, the dummy-prefix space kept
    assert tok.decode([2, 432, 383, 2]) == ", there"
    assert tok.decode(tok.encode("🙂")[2:-1]) == "\ufffd"  # a character cut short: no error


# --- stories260K: real weights, one graph for both sources --------------------------


@pytest.fixture(scope="module")
def stories(registry):
    """(transformers on hf/, zoo from hf/ + tok512.model, zoo from the llama2.c files)."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM.from_pretrained(str(STORIES / "hf")).eval()
    from_hf = load_model(str(STORIES / "hf"), registry, tokenizer=STORIES / "tok512.model", verbose=False)
    from_bin = load_model(str(STORIES / "stories260K.bin"), registry, tokenizer=STORIES / "tok512.bin", verbose=False)
    return hf, from_hf, from_bin


def test_stories260k_logits_match_transformers(stories):
    hf, from_hf, from_bin = stories
    prompt = [1, 403, 407, 261, 378]
    assert_matches_transformers(hf, from_bin, [prompt], steps=20)
    assert_matches_transformers(hf, from_hf, [prompt], steps=5)


def test_stories260k_greedy_story_from_both_sources(stories):
    hf, from_hf, from_bin = stories
    options = SamplingOptions(greedy=True, max_new_tokens=40, ignore_eos=True)
    results = []
    for model in (from_hf, from_bin):
        generator = TextGenerator(model)
        ids = generator.encode("Once upon a time")
        assert ids == [1, 403, 407, 261, 378]
        completion = generator.generate(["Once upon a time"], options)[0]
        assert completion.token_ids == reference_greedy(hf, ids, 40)
        results.append(completion)
    assert (results[0].token_ids, results[0].text) == (results[1].token_ids, results[1].text)
    assert ("Once upon a time" + results[1].text).startswith(ONCE_UPON_A_TIME)


def test_stories260k_batch_equals_one_at_a_time(stories):
    _, _, from_bin = stories
    generator = TextGenerator(from_bin)
    prompts = ["Once upon a time", "Tom had a big red ball. He", "The cat"]
    options = SamplingOptions(greedy=True, max_new_tokens=20)
    for prompt, completion in zip(prompts, generator.generate(prompts, options)):
        alone = generator.generate([prompt], options)[0]
        assert (completion.token_ids, completion.text) == (alone.token_ids, alone.text)


def test_cli_runs_a_llama2c_checkpoint(stories):
    from cli_helpers import zoo

    result = zoo("run", str(STORIES / "stories260K.bin"), "--tokenizer", str(STORIES / "tok512.bin"),
                 "--greedy", "--prompt", "Once upon a time", "--max-new-tokens", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(ONCE_UPON_A_TIME), result.stdout


def test_verify_fails_naming_the_variant_and_step_for_a_subtly_wrong_mapper(registry):
    """A mapper that gets one weight's layout wrong (the first o_proj's columns reversed, the
    same shapes and names) loads and runs, and `zoo verify` catches it at the prefill."""
    from dataclasses import replace

    from zoo.core.checkpoints.mapping import map_llama_style
    from zoo.verify import verify_variant

    def reversed_o_proj(checkpoint, config):
        mapped = dict(map_llama_style(checkpoint, config))
        name = next(n for n in sorted(mapped) if n.endswith("o_proj.weight"))
        mapped[name] = np.ascontiguousarray(np.flip(mapped[name], axis=1))
        return mapped

    llama = registry.architectures["LlamaForCausalLM"]
    broken = replace(llama, map_weights=reversed_o_proj)
    plugged = replace(registry, architectures={**registry.architectures, llama.name: broken})
    variant = llama.variants[0]
    report = verify_variant(broken, variant, plugged)
    assert not report.passed and report.variant == variant.name
    assert report.failures[0].startswith("logits: step 0 (prefill) differs from transformers by")
    assert report.step_logit_diffs[0] > 1e-3
