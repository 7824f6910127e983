"""Phi-3, GPT-NeoX and Granite against transformers 5.12.

Per family: `zoo verify`'s parity check on the plugin's variants, a CLI run of a
random checkpoint as a user would, the hub aliases' configs and parameter
counts, and refusals. For Phi-3, LongRoPE crossing its switch in the middle of a
generation (and of a chunked prompt) against transformers' forward pass.

Cold cost: the variants (Phi-3 one, GPT-NeoX two, Granite one) are 8 graphs;
every other test reuses them (the same shapes and constants) or compiles nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, zoo
from conftest import save_gpt2_tokenizer
from reference import cached_decode, reference_logits
from zoo.architectures import gpt_neox, granite, phi3
from zoo.core.errors import ZooError

FAMILIES = {"Phi3ForCausalLM": phi3, "GPTNeoXForCausalLM": gpt_neox, "GraniteForCausalLM": granite}
PROMPT = "The quick brown fox jumps over the lazy dog, and then it runs into the quiet forest"
SWITCH = 12  # the Phi-3 variant's original_max_position_embeddings


# --- parity: zoo verify, every variant ----------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_verify_passes_every_variant(name, registry):
    from zoo.verify import verify

    reports = verify(name, registry)
    assert [r.variant for r in reports] == [v.name for v in FAMILIES[name].ARCHITECTURE.variants]
    for report in reports:
        assert report.passed, report.failures
        assert len(report.step_logit_diffs) == report.new_tokens
        assert max(report.step_logit_diffs) < 1e-4 and report.greedy_tokens_equal
        assert report.batch_vs_single_diff < 1e-4 and report.cached_vs_recomputed_diff < 1e-4


# --- random checkpoints of the first variants, with GPT-2's tokenizer ----------------


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Per family: (transformers model, folder) of its first variant's config with random weights."""
    from zoo.verify import random_reference

    made = {}
    for name, module in FAMILIES.items():
        folder = tmp_path_factory.mktemp(name)
        hf = random_reference(module.ARCHITECTURE, module.ARCHITECTURE.variants[0].hf_config, seed=7)
        hf.save_pretrained(str(folder))
        save_gpt2_tokenizer(folder)
        made[name] = (hf, folder)
    return made


@pytest.mark.parametrize("name", list(FAMILIES))
def test_cli_greedy_run_equals_transformers(name, checkpoints):
    import torch
    from transformers import AutoTokenizer, GenerationConfig

    hf, folder = checkpoints[name]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = tokenizer(PROMPT)["input_ids"]
    assert len(ids) > SWITCH  # Phi-3: on LongRoPE's long factors from the prefill, past the window of 6
    settings = GenerationConfig(max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), generation_config=settings, attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    new = out[0, len(ids):].tolist()
    assert len(new) == 12 and tokenizer.eos_token_id not in new
    prompt_text, full = (tokenizer.decode(t, skip_special_tokens=True) for t in (ids, ids + new))
    expected = full[len(prompt_text):] if full.startswith(prompt_text) else tokenizer.decode(new, skip_special_tokens=True)

    result = zoo("run", str(folder), "--greedy", "-p", PROMPT, "-n", "12")
    assert result.returncode == 0, result.stderr
    assert result.stdout == PROMPT + expected + "\n"


# --- Phi-3: LongRoPE crossing its switch --------------------------------------------


@pytest.fixture(scope="session")
def phi3_model(checkpoints, registry):
    from zoo.core.loader import load_model

    hf, folder = checkpoints["Phi3ForCausalLM"]
    return hf, load_model(str(folder), registry, verbose=False)


def _prompts(lengths: list[int], seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 50257, size=n).tolist() for n in lengths]


def _stale_cache_logits(hf, sequence: list[int], cached: int) -> np.ndarray:
    """transformers' last logits for `sequence` with the first `cached` tokens' keys kept from
    a call that never reached the switch (what decoding without a recompute would give)."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=hf.config)
    with torch.no_grad():
        hf(torch.tensor([sequence[:cached]]), past_key_values=cache, use_cache=True)
        rest = torch.tensor([sequence[cached:]])
        positions = torch.arange(cached, len(sequence))[None]
        return hf(rest, past_key_values=cache, use_cache=True, position_ids=positions).logits[0, -1].numpy()


def test_longrope_switch_mid_generation_equals_transformers_forward(phi3_model):
    """Rows cross position 12 at different steps (4, 8 and 1); at each crossing the engine runs
    the sequences again on the long factors, so every step's logits are transformers' forward
    over the sequence so far, and the batch gives what each row gives alone."""
    hf, model = phi3_model
    prompts, steps = _prompts([9, 5, 12], seed=3), 10
    tokens, logits = cached_decode(model, prompts, steps)
    for row, prompt in enumerate(prompts):
        sequence = list(prompt)
        for step in range(steps):
            expected = reference_logits(hf, sequence)
            np.testing.assert_allclose(logits[step][row], expected, atol=1e-4, rtol=0)
            assert int(tokens[step, row]) == int(np.argmax(expected))
            sequence.append(int(tokens[step, row]))
        alone, _ = cached_decode(model, [prompt], steps)
        assert alone[:, 0].tolist() == tokens[:, row].tolist()
    # The switch matters: keys kept from before it give other logits.
    crossing = list(prompts[0]) + [int(t) for t in tokens[:4, 0]]
    assert len(crossing) == SWITCH + 1
    assert np.abs(_stale_cache_logits(hf, crossing, SWITCH) - logits[4][0]).max() > 1e-2


def test_longrope_switch_inside_a_chunked_prompt(phi3_model):
    """The serving path feeds a prompt in chunks: a chunk crossing the switch reruns the chunks
    before it, so the result is the whole prompt's forward pass."""
    from zoo.core.runtime.engine import Engine

    hf, model = phi3_model
    engine = Engine(model)
    (ids,) = _prompts([16], seed=4)
    cache = engine.new_cache(1, 20)
    _, first = engine.extend(ids[:8], cache)
    np.testing.assert_allclose(first, reference_logits(hf, ids[:8]), atol=1e-4, rtol=0)
    _, whole = engine.extend(ids[8:15], cache)
    np.testing.assert_allclose(whole, reference_logits(hf, ids[:15]), atol=1e-4, rtol=0)
    _, more = engine.extend(ids[15:], cache)
    np.testing.assert_allclose(more, reference_logits(hf, ids), atol=1e-4, rtol=0)
    assert cache.filled == 16


# --- weights: every family's checkpoint names, GPT-NeoX's QKV layout ------------------


def _expected_shapes(config) -> dict[str, tuple[int, ...]]:
    from max.experimental import functional as F

    from zoo.core.blocks.decoder import build_decoder

    with F.lazy():
        return {name: tuple(int(d) for d in p.shape) for name, p in build_decoder(config).parameters}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_saved_checkpoints_map_onto_the_decoder(name, checkpoints):
    from safetensors.torch import load_file

    from zoo.core.loader import check_weights

    hf, folder = checkpoints[name]
    architecture = FAMILIES[name].ARCHITECTURE
    config = architecture.config_class.from_hf(hf.config.to_dict())
    state = load_file(str(folder / "model.safetensors"))
    check_weights(_expected_shapes(config), architecture.mapper()(state, config))


def test_gpt_neox_hub_layout_and_qkv_regrouping():
    """Pythia's hub files add causal-mask buffers and rotary inv_freq; the fused QKV rows are
    per head [q, k, v] and come out as all q, all k, all v (as transformers splits them)."""
    import torch

    from zoo.architectures.gpt_neox.weights import map_weights
    from zoo.core.loader import check_weights
    from zoo.verify import random_reference

    architecture = gpt_neox.ARCHITECTURE
    hf = random_reference(architecture, {**architecture.variants[0].hf_config, "vocab_size": 300, "num_attention_heads": 4})
    state = dict(hf.state_dict())
    for i in range(2):
        state[f"gpt_neox.layers.{i}.attention.bias"] = torch.ones(1, 1, 64, 64, dtype=torch.bool).tril()
        state[f"gpt_neox.layers.{i}.attention.masked_bias"] = torch.tensor(-1e9)
        state[f"gpt_neox.layers.{i}.attention.rotary_emb.inv_freq"] = hf.gpt_neox.rotary_emb.inv_freq
    config = architecture.config_class.from_hf(hf.config.to_dict())
    mapped = map_weights(state, config)
    check_weights(_expected_shapes(config), mapped)
    assert torch.equal(mapped["lm_head.weight"], hf.embed_out.weight)

    attention = hf.gpt_neox.layers[1].attention
    x = torch.randn(3, config.hidden_size)
    with torch.no_grad():
        per_head = attention.query_key_value(x).view(3, config.n_heads, 3 * config.head_dim)
        q, k, v = (t.reshape(3, -1) for t in per_head.chunk(3, dim=-1))
        ours = x @ mapped["layers.1.attention.qkv_proj.weight"].T + mapped["layers.1.attention.qkv_proj.bias"]
    torch.testing.assert_close(ours, torch.cat([q, k, v], dim=-1), rtol=0, atol=1e-6)


# --- alias configs and parameter counts (no compile) -----------------------------------


def _transformers_parameter_count(hf_config: dict) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {k: v for k, v in hf_config.items() if k != "model_type"}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(hf_config["model_type"], **fields))
    return sum(p.numel() for p in model.parameters())


ALIAS_KNOBS = {
    "Phi-3-mini-4k-instruct": dict(
        n_heads=32, n_kv_heads=32, head_dim=96, rotary_dim=None, sliding_window=2047, rope_scaling={},
        context_length=4096, tie_word_embeddings=False, eos_token_ids=(32000,), activation="silu",
    ),
    "Phi-4-mini-instruct": dict(
        n_heads=24, n_kv_heads=8, head_dim=128, rotary_dim=96, sliding_window=None, context_length=131072,
        tie_word_embeddings=True, vocab_size=200064, rope_switch_position=4096,
    ),
    "pythia-160m": dict(
        norm="layer", parallel_residual=True, head_dim=64, rotary_dim=16, qkv_bias=True, o_bias=True, mlp="plain",
        mlp_bias=True, activation="gelu", tie_word_embeddings=False, rope_theta=10000.0, context_length=2048,
    ),
    "pythia-410m": dict(n_layers=24, n_heads=16, head_dim=64, rotary_dim=16, parallel_residual=True, intermediate_size=4096),
    "granite-3.3-2b-instruct": dict(
        n_heads=32, n_kv_heads=8, head_dim=64, attention_scale=0.015625, embedding_multiplier=12.0,
        residual_multiplier=0.22, logits_multiplier=0.125, rope_theta=1e7, tie_word_embeddings=True, eos_token_ids=(0,),
    ),
}


@pytest.mark.parametrize("alias_name", list(ALIAS_KNOBS))
def test_alias_configs_and_parameter_counts(alias_name, registry):
    alias = registry.aliases[alias_name]
    architecture = registry.architectures[alias.architecture]
    config = architecture.config_class.from_hf(dict(alias.hf_config))
    for knob, value in ALIAS_KNOBS[alias_name].items():
        assert getattr(config, knob) == value, knob
    assert config.parameter_count() == alias.parameters == _transformers_parameter_count(dict(alias.hf_config))


def test_phi4_mini_longrope_frequencies_equal_transformers(registry):
    """Short and long inverse frequencies and the cos/sin scale (sqrt(1 + ln 32 / ln 4096): no
    `factor` in the config, so max / original positions) as transformers computes them."""
    import math

    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf_config = dict(registry.aliases["Phi-4-mini-instruct"].hf_config)
    reference = AutoConfig.for_model("phi3", **{k: v for k, v in hf_config.items() if k != "model_type"})
    short, scale = ROPE_INIT_FUNCTIONS["longrope"](reference, "cpu")
    long, _ = ROPE_INIT_FUNCTIONS["longrope"](reference, "cpu", seq_len=4097)
    spec = phi3.Phi3Config.from_hf(hf_config).rotary()
    # float32 powers in numpy and torch may differ in the last bit
    np.testing.assert_allclose(np.float32(spec.inv_freq), short.numpy(), rtol=3e-7, atol=0)
    np.testing.assert_allclose(np.float32(spec.long_inv_freq), long.numpy(), rtol=3e-7, atol=0)
    assert spec.attention_scaling == scale == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)))


# --- config spellings, as transformers 5.12 reads them ------------------------------------


def test_phi3_reads_original_max_position_embeddings_from_the_top_level():
    """Phi3Config overwrites the rope dict's original_max_position_embeddings with its own
    top-level field (default 4096), and renames the old `yarn` and `su` types to longrope
    (transformers 5.12 then fails to validate `su`, which zoo runs as longrope)."""
    from transformers import Phi3Config as HFPhi3Config

    base = {"architectures": ["Phi3ForCausalLM"], "vocab_size": 300, "hidden_size": 32, "intermediate_size": 40,
            "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 8192}
    rope = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0] * 4, "long_factor": [2.0] * 4}
    for extra in ({"rope_parameters": {**rope, "original_max_position_embeddings": 16}},
                  {"rope_parameters": rope, "original_max_position_embeddings": 16},
                  {"rope_scaling": {**{k: v for k, v in rope.items() if k != "rope_type"}, "type": "yarn"}}):
        hf = {**base, **extra}
        expected = HFPhi3Config(**{k: v for k, v in hf.items() if k != "architectures"}).rope_parameters
        config = phi3.Phi3Config.from_hf(hf)
        assert expected["rope_type"] == config.rope_scaling["rope_type"] == "longrope"
        assert config.rope_switch_position == expected["original_max_position_embeddings"]
    su = {"rope_scaling": {**{k: v for k, v in rope.items() if k != "rope_type"}, "type": "su"}}
    assert phi3.Phi3Config.from_hf({**base, **su}) == config


@pytest.mark.parametrize("spelling", [
    {"rotary_pct": 0.5, "rotary_emb_base": 500},
    {"rope_parameters": {"rope_type": "default", "rope_theta": 123.0, "partial_rotary_factor": 0.75}, "rotary_pct": 0.5},
    {"rope_theta": 777.0, "partial_rotary_factor": 0.5},  # top-level names GPTNeoXConfig ignores
])
def test_gpt_neox_rope_spellings_as_transformers_reads_them(spelling):
    from transformers import GPTNeoXConfig as HFGPTNeoXConfig

    base = {"vocab_size": 300, "hidden_size": 64, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4}
    expected = HFGPTNeoXConfig(**base, **spelling).rope_parameters
    config = gpt_neox.GPTNeoXConfig.from_hf({**base, **spelling})
    assert config.rope_theta == expected["rope_theta"]
    assert config.rotary_dim == int(16 * expected["partial_rotary_factor"])


# --- refusals: one line, naming the field ----------------------------------------------


REFUSALS = [
    (phi3.Phi3Config, phi3.ARCHITECTURE, {"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}, "'linear'"),
    (phi3.Phi3Config, phi3.ARCHITECTURE, {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4,
                                                              "short_factor": [1.0], "long_factor": [1.0, 2.0, 3.0]}}, "short_factor"),
    (phi3.Phi3Config, phi3.ARCHITECTURE, {"rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}}, "'dynamic'"),
    (gpt_neox.GPTNeoXConfig, gpt_neox.ARCHITECTURE, {"hidden_act": "gelu_fast"}, "hidden_act='gelu_fast'"),
    (gpt_neox.GPTNeoXConfig, gpt_neox.ARCHITECTURE, {"head_dim": 16}, "head_dim=16"),
    (gpt_neox.GPTNeoXConfig, gpt_neox.ARCHITECTURE, {"rotary_pct": 0.01}, "rotary_pct"),
    (granite.GraniteConfig, granite.ARCHITECTURE, {"rope_scaling": {"type": "longrope", "short_factor": [1.0] * 8,
                                                                    "long_factor": [1.0] * 8}}, "'longrope'"),
    (granite.GraniteConfig, granite.ARCHITECTURE, {"logits_scaling": 0}, "logits_scaling"),
    (granite.GraniteConfig, granite.ARCHITECTURE, {"attention_multiplier": "x"}, "attention_multiplier"),
]


@pytest.mark.parametrize("config_class, architecture, change, fragment", REFUSALS)
def test_unsupported_fields_are_one_line_errors(config_class, architecture, change, fragment):
    hf = {**architecture.variants[0].hf_config, **change}
    with pytest.raises(ZooError) as caught:
        config_class.from_hf(hf)
    message = str(caught.value)
    assert fragment in message and "\n" not in message, message


def test_cli_names_the_field(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({**gpt_neox.ARCHITECTURE.variants[0].hf_config, "hidden_act": "gelu_fast"}))
    assert_one_line_error(zoo("info", str(tmp_path)), "hidden_act='gelu_fast'")
