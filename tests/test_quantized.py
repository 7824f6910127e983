"""Models running encoded weights against transformers on the decoded weights.

Two models, each compiled once (prefill + decode graph):
- a Llama whose checkpoint arrives encoded (as from a GGUF file), with every
  encoding somewhere (fused q/k/v and gate/up rows, also from parts in different
  encodings, an encoded token embedding, a q6_k output projection);
- a GPT-2 (tied embeddings, biases, the fused GELU) encoded in memory with
  `quantize="q8_0"` through `zoo.load`.
transformers runs the same weights decoded to float32. Quantized matmuls round x to
8 bits per block, as llama.cpp's do: zoo's kernel for every integer encoding (`ZOO_KERNEL_ENCODINGS`),
so the reference quantizes the inputs of every projection in those encodings (MAX's Q6_K matmul
rounds them in blocks of its own); MAX's Q4_0/Q4_K matmul rounds too, which the reference
leaves in float32 (ACTIVATION_TOLERANCE).
Logits agree at prefill and every cached step within that, and greedy tokens are identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import save_gpt2_tokenizer
from quant_fixtures import INTEGER_DOT_ENCODINGS, quantized_reference, random_encoded

# Encodings whose projections in LLAMA run on zoo's kernel (x rounded per block of 32): the
# Q4_K ones have rows in multiples of 32 and take MAX's matmul instead.
ZOO_KERNEL_ENCODINGS = tuple(e for e in INTEGER_DOT_ENCODINGS if e != "q4_k")
from reference import cached_decode, recomputed_greedy, reference_greedy, reference_logits, step_differences
from zoo.core.checkpoints.quantized import QuantizedWeight
from zoo.core.errors import OptionsError

LLAMA = dict(
    vocab_size=330, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, tie_word_embeddings=False, rms_norm_eps=1e-5, max_position_embeddings=64,
)
# HF weight name (in layer i) -> encoding (absent: float); every encoding appears at least once,
# and two fused weights mix encodings as llama.cpp's Q4_K_M files do (v in another type than q
# and k; a float part beside an encoded one).
LAYER_ENCODINGS = [
    {"q_proj": "q8_0", "k_proj": "q5_0", "v_proj": "iq4_nl", "o_proj": "q4_0", "up_proj": "q4_k", "down_proj": "q5_k"},
    {"q_proj": "q6_k", "k_proj": "q2_k", "v_proj": "q5_1", "o_proj": "bf16", "gate_proj": "f16", "up_proj": "q4_1", "down_proj": "iq4_xs"},
]
TOP_ENCODINGS = {"model.embed_tokens.weight": "q3_k", "lm_head.weight": "q6_k"}
# Quantized matmuls take their activations in 8-bit blocks, as llama.cpp does (MAX's Q4_0/Q4_K/
# Q6_K kernels): each projection is off by up to ~1% of its output scale from float32 arithmetic.
# These logits span about +-3; they move by 0.01-0.08 at most steps (measured: median 0.02) and
# by 0.3-0.45 at the few steps where this random model amplifies small changes of its inputs,
# where a wrong mapping moves them by about as much as their scale at every step.
TYPICAL_STEP_TOLERANCE = 0.1  # the median over steps of each step's largest difference
ACTIVATION_TOLERANCE = 0.6  # any step
GPT2 = dict(n_embd=256, n_layer=2, n_head=4, n_positions=64, vocab_size=50257)


def _encoding_for(name: str) -> str | None:
    if name in TOP_ENCODINGS:
        return TOP_ENCODINGS[name]
    parts = name.split(".")
    if len(parts) > 4 and parts[0] == "model" and parts[1] == "layers" and parts[-1] == "weight":
        return LAYER_ENCODINGS[int(parts[2])].get(parts[-2])
    return None


@pytest.fixture(scope="module")
def encoded_llama(tmp_path_factory, registry):
    """(transformers Llama on the decoded weights, zoo model on the encoded checkpoint)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from zoo.core.architecture import Checkpoint
    from zoo.core.loader import PreparedModel, compile_prepared
    from zoo.core.resolve import resolve_model

    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(initializer_range=0.1, eos_token_id=None, **LLAMA)).eval()
    rng = np.random.default_rng(0)
    tensors = {}
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.2)
            encoding = _encoding_for(name)
            if encoding is None:
                tensors[name] = p.detach().clone()
                continue
            # small output weights keep the logits of order 1, where 1e-4 is float32 noise
            weight = random_encoded(encoding, *p.shape, rng, scale=0.03 if name == "lm_head.weight" else 0.1)
            p.copy_(torch.from_numpy(weight.dequantize()))
            tensors[name] = weight
    folder = tmp_path_factory.mktemp("encoded-llama")
    hf.config.architectures = ["LlamaForCausalLM"]
    hf.config.save_pretrained(str(folder))
    resolved = resolve_model(str(folder), registry)
    prepared = PreparedModel(resolved, resolved.config, Checkpoint(resolved.hf_config, tensors, None, source="encoded"))
    return hf, compile_prepared(prepared, device="cpu", verbose=False), tensors


@pytest.fixture(scope="module")
def quantized_gpt2(tmp_path_factory):
    """(transformers GPT-2 on the q8_0-decoded weights, zoo `Model` loaded with quantize="q8_0")."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    import zoo

    torch.manual_seed(1)
    hf = GPT2LMHeadModel(GPT2Config(initializer_range=0.2, **GPT2)).eval()
    folder = tmp_path_factory.mktemp("gpt2-q8_0")
    hf.save_pretrained(str(folder))
    save_gpt2_tokenizer(folder)
    model = zoo.load(str(folder), device="cpu", quantize="q8_0")
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("wpe.weight") or p.ndim != 2:
                continue
            conv1d = not name.endswith("wte.weight")  # Conv1D stores (in, out): rows are columns
            rows = p.T if conv1d else p
            decoded = torch.from_numpy(QuantizedWeight.quantize(rows.numpy(), "q8_0").dequantize())
            p.copy_(decoded.T if conv1d else decoded)
    return hf, model


def test_encoded_checkpoint_stays_encoded(encoded_llama):
    _, model, tensors = encoded_llama
    # Per weight, or per part of a fused one in mixed encodings: 5 norms and a gate_proj are float.
    assert model.graph.encodings == {
        "bf16": 1, "f16": 1, "float": 6, "q8_0": 1, "q4_0": 1, "q4_1": 1, "q5_0": 1, "q5_1": 1,
        "q2_k": 1, "q3_k": 1, "q4_k": 1, "q5_k": 1, "q6_k": 2, "iq4_nl": 1, "iq4_xs": 1,
    }
    floats = sum(int(t.numel()) * 4 for t in tensors.values() if not isinstance(t, QuantizedWeight))
    read = sum(t.nbytes for n, t in tensors.items() if isinstance(t, QuantizedWeight) and n != "model.embed_tokens.weight")
    assert model.graph.weight_bytes_per_token == read + floats


def test_encoded_logits_match_transformers_at_every_cached_step(encoded_llama):
    """A left-padded batch of two prompts: prefill and ten cached decode steps."""
    import torch

    hf, model, _ = encoded_llama
    rng = np.random.default_rng(1)
    prompts = [rng.integers(3, LLAMA["vocab_size"], size=n).tolist() for n in (9, 4)]
    quantized = [m for name, m in hf.named_modules() if isinstance(m, torch.nn.Linear) and _encoding_for(f"{name}.weight") in ZOO_KERNEL_ENCODINGS]
    assert len(quantized) == 10  # every projection in an integer encoding but the Q4_K ones (MAX's matmul)
    with quantized_reference(hf, quantized) as reference:
        worst = step_differences(reference, model, prompts)
    assert max(worst) < ACTIVATION_TOLERANCE and float(np.median(worst)) < TYPICAL_STEP_TOLERANCE, worst


def test_encoded_greedy_tokens_equal_transformers_generate(encoded_llama):
    """Greedy tokens equal transformers' `generate` on most prompts; where 8-bit activations
    send a near-tie the other way, the tie is one: at the first differing step, transformers'
    pick leads zoo's by less than the activation rounding moves logits (the reference rounding
    the Q8_0/Q5_K/Q6_K inputs as zoo's kernel does)."""
    import torch

    hf, model, _ = encoded_llama
    quantized = [m for name, m in hf.named_modules() if isinstance(m, torch.nn.Linear) and _encoding_for(f"{name}.weight") in ZOO_KERNEL_ENCODINGS]
    matched, distinct = 0, set()
    for seed in range(2, 10):
        prompt = np.random.default_rng(seed).integers(3, LLAMA["vocab_size"], size=6).tolist()
        tokens, _ = cached_decode(model, [prompt], 16)
        ours, theirs = tokens[:, 0].tolist(), reference_greedy(hf, prompt, 16)
        distinct.update(ours)
        if ours == theirs:
            matched += 1
            continue
        step = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
        with quantized_reference(hf, quantized) as reference:
            logits = reference_logits(reference, prompt + theirs[:step])
        assert abs(logits[theirs[step]] - logits[ours[step]]) < ACTIVATION_TOLERANCE, (seed, step)
    assert matched >= 5 and len(distinct) > 10


def test_quantize_in_memory_matches_transformers(quantized_gpt2):
    hf, model = quantized_gpt2
    assert model.loaded.graph.encodings == {"float": 19, "q8_0": 9}  # 4 projections x 2 layers + the tied table
    prompts = [[464, 2068, 7586, 21831, 18045, 625, 262], [40, 588, 257]]
    projections = [m for name, m in hf.named_modules() if name.endswith(("c_attn", "c_proj", "c_fc")) or name == "lm_head"]
    assert len(projections) == 9
    # Logits here reach 14: where float32 noise leaves an activation on a rounding boundary of its
    # 8-bit quantization (1 step in 10 or so), zoo and the reference round it apart, which moves
    # that step's logits by about max|x| / 127 * max|w| (0.1-0.25 measured on two CPUs); the other
    # steps agree to float32 noise.
    prompt = model.encode("The quick brown fox")
    with quantized_reference(hf, projections) as reference:
        worst = step_differences(reference, model.loaded, prompts)
        expected = recomputed_greedy(reference, prompt, 12)
    assert max(worst) < ACTIVATION_TOLERANCE and float(np.median(worst)) < 1e-4, worst
    assert model.generate("The quick brown fox", max_new_tokens=12, greedy=True, ignore_eos=True) == model.decode(expected)


def test_quantize_in_memory_reads_fewer_bytes(quantized_gpt2):
    _, model = quantized_gpt2
    embd, layers, vocab = GPT2["n_embd"], GPT2["n_layer"], GPT2["vocab_size"]
    projections = layers * (embd * 3 * embd + embd * embd + 2 * embd * 4 * embd) + vocab * embd
    floats = layers * (4 * embd + 3 * embd + embd + 4 * embd + embd) + 2 * embd  # norms and biases
    assert model.loaded.graph.weight_bytes_per_token == projections // 32 * 34 + floats * 4


def test_quantize_options_are_checked_before_loading():
    import zoo

    with pytest.raises(OptionsError, match="unknown --quantize type 'q3_k'"):
        zoo.load("/nonexistent", quantize="q3_k")
    with pytest.raises(OptionsError, match="cannot be combined with --dtype bfloat16"):
        from zoo.core.loader import check_quantize_options
        from max.driver import CPU

        check_quantize_options("q8_0", CPU(), "bfloat16")


def test_fused_rows_keep_each_part_encoding():
    """q/k in one encoding and v in another stay apart; same-encoding neighbours join."""
    from zoo.core.checkpoints.mapping import concat_rows
    from zoo.core.checkpoints.quantized import StackedRows

    rng = np.random.default_rng(3)
    q, k, v = (random_encoded(e, 8, 256, rng) for e in ("q4_k", "q4_k", "q6_k"))
    fused = concat_rows(q, k, v)
    assert isinstance(fused, StackedRows) and fused.shape == (24, 256)
    assert [p.encoding for p in fused.parts] == ["q4_k", "q6_k"]
    np.testing.assert_array_equal(fused.dequantize(), np.concatenate([w.dequantize() for w in (q, k, v)]))
    same = concat_rows(q, k)
    assert isinstance(same, QuantizedWeight) and same.shape == (16, 256)


def test_weights_stay_float_where_no_module_holds_them_encoded():
    """Outside projections and the token embedding, and with encodings off, weights are decoded."""
    import torch

    from zoo.core.quantization import prepare_weights

    rng = np.random.default_rng(4)
    encoded = random_encoded("q8_0", 4, 64, rng)
    ones = torch.ones(4, 64)

    def mapped() -> dict:
        return {"a.weight": encoded, "b.weight": encoded, "c.weight": ones}

    given = mapped()
    held = prepare_weights(given, {"a.weight", "c.weight"}, quantize=None, keep_encoded=True, output="c.weight")
    assert held["a.weight"] is encoded and held["c.weight"] is ones
    assert given == {}  # taken out one at a time
    np.testing.assert_array_equal(held["b.weight"], encoded.dequantize())
    off = prepare_weights(mapped(), {"a.weight"}, quantize=None, keep_encoded=False, output="c.weight")
    np.testing.assert_array_equal(off["a.weight"], encoded.dequantize())
    requantized = prepare_weights(mapped(), {"a.weight", "c.weight"}, quantize="q4_0", keep_encoded=True, output="x")
    assert requantized["a.weight"].encoding == requantized["c.weight"].encoding == "q4_0"


@pytest.mark.parametrize(
    "name, columns, quantize, expected",
    [
        ("layers.0.attention.qkv_proj.weight", 256, "q4_k", "q4_k"),
        ("lm_head.weight", 256, "q4_k", "q6_k"),  # llama-quantize's output type
        ("lm_head.weight", 256, "q4_0", "q6_k"),
        ("lm_head.weight", 256, "q8_0", "q8_0"),
        ("embed_tokens.weight", 256, "bf16", "bf16"),
        ("layers.0.mlp.down_proj.weight", 96, "q4_k", "q5_0"),  # rows not a multiple of 256
        ("layers.0.mlp.down_proj.weight", 96, "q5_k", "q5_1"),
        ("lm_head.weight", 96, "q4_k", "q8_0"),
        ("layers.0.mlp.down_proj.weight", 96, "q5_0", "q5_0"),
        ("lm_head.weight", 256, "q4_1", "q6_k"),
        ("layers.0.mlp.down_proj.weight", 100, "q8_0", None),  # nor of 32: stays float
        ("layers.0.mlp.router.weight", 256, "q8_0", None),  # MoE routers stay float
    ],
)
def test_quantize_types_follow_llama_quantize(name, columns, quantize, expected):
    from zoo.core.quantization import choose_encoding

    assert choose_encoding(name, columns, quantize, output="lm_head.weight") == expected
