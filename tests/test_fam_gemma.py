"""Gemma 2, Gemma 3 (text) and OLMo 2 on MAX against transformers 5.12.

Per family: `zoo verify`'s parity check on the declared variant (logits at the prefill and
every decode step, generating past every sliding window; greedy tokens against transformers'
`generate`; batch against one at a time; cached against recomputed), then a CLI run on another
random checkpoint of the same shapes (so its two graphs come from MAX's cache), GPT-2's
tokenizer, against transformers' greedy continuation. Without compiling: the hub aliases'
configs read as transformers reads them, their parameter counts, and the refusals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, zoo
from conftest import save_gpt2_tokenizer
from reference import reference_greedy
from zoo.architectures.gemma2.config import Gemma2Config
from zoo.architectures.gemma3.config import Gemma3Config
from zoo.architectures.olmo2.config import Olmo2Config
from zoo.core.errors import ConfigError, UnsupportedModelError

GEMMA2, GEMMA3, OLMO2 = "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Olmo2ForCausalLM"
FAMILIES = (GEMMA2, GEMMA3, OLMO2)
PROMPT = "The quick brown fox jumps over the lazy dog because"


# --- parity: each variant compiled once per session ------------------------------------


@pytest.fixture(scope="session")
def verified(registry):
    """`verify(name)` once per family and session: (reports, the decode-attention kernel calls
    traced while compiling, as (scale, soft-cap, kernel used)). zoo's graph cache is off here,
    so that the graphs are traced even where an earlier run stored them."""
    from zoo.core.blocks import kernels
    from zoo.verify import verify

    done: dict[str, tuple[list, list]] = {}

    def run(name: str) -> tuple[list, list]:
        if name not in done:
            calls: list[tuple[float, float | None, bool]] = []
            original = kernels.decode_attention

            def spy(*args):
                out = original(*args)
                calls.append((args[6], args[7], out is not None))
                return out

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(kernels, "decode_attention", spy)
                patch.setenv("ZOO_GRAPH_CACHE", "0")
                done[name] = (verify(name, registry), calls)
        return done[name]

    return run


@pytest.mark.parametrize("name", FAMILIES)
def test_variant_matches_transformers_at_every_step(verified, registry, name):
    reports, _ = verified(name)
    (report,) = reports
    assert report.passed, report.failures
    variant = registry.architectures[name].variants[0]
    assert len(report.step_logit_diffs) == variant.new_tokens
    assert max(report.step_logit_diffs) < 1e-4
    assert report.greedy_tokens_equal
    assert report.batch_vs_single_diff < 1e-4 and report.cached_vs_recomputed_diff < 1e-4
    window = variant.hf_config.get("sliding_window")
    if window is not None:  # the prefill and the decode both reach past the window
        assert max(variant.prompt_lengths) > window
        assert min(variant.prompt_lengths) + variant.new_tokens > window + 1


def test_gemma_2_variant_is_sensitive_to_both_soft_caps(registry):
    """The variant's caps are small enough that dropping either moves transformers' logits far
    beyond the parity tolerance; transformers' sdpa path is the eager one without the attention cap."""
    import torch

    from zoo.verify import random_reference

    architecture = registry.architectures[GEMMA2]
    hf = random_reference(architecture, architecture.variants[0].hf_config)
    ids = torch.tensor([np.random.default_rng(0).integers(0, 50257, size=9).tolist()])
    with torch.no_grad():
        capped = hf(ids).logits
        hf.set_attn_implementation("sdpa")
        sdpa = hf(ids).logits
        hf.set_attn_implementation("eager")
        for layer in hf.model.layers:
            layer.self_attn.attn_logit_softcapping = None
        no_attention_cap = hf(ids).logits
        hf.config.final_logit_softcapping = None
        no_caps = hf(ids).logits
    assert (capped - no_attention_cap).abs().max() > 1e-2
    assert (no_attention_cap - no_caps).abs().max() > 1e-2
    assert (sdpa - no_attention_cap).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("name", "scale", "softcap"),
    [(GEMMA2, 20**-0.5, 5.0), (GEMMA3, 20**-0.5, None), (OLMO2, 8**-0.5, None)],
)
def test_decode_attention_runs_in_the_kernel_with_scale_and_softcap(verified, name, scale, softcap):
    """The one-token CPU graph's attention is zoo_decode_attention, with the family's score
    scale (query_pre_attn_scalar for Gemma) and, for Gemma 2, the attention soft-cap."""
    _, calls = verified(name)
    used = [(s, c) for s, c, kernel in calls if kernel]
    assert len(used) == 2  # both layers of the decode graph
    for s, c in used:
        assert s == pytest.approx(scale, rel=1e-12)
        assert c == softcap


@pytest.mark.parametrize("name", FAMILIES)
def test_cli_run_equals_transformers_greedy(verified, registry, tmp_path, name):
    from transformers import GPT2TokenizerFast

    from zoo.verify import random_reference

    verified(name)  # the variant's graphs are compiled (and cached) by now
    architecture = registry.architectures[name]
    hf = random_reference(architecture, architecture.variants[0].hf_config, seed=3)  # a seed whose greedy text varies for every family here
    hf.save_pretrained(str(tmp_path))
    save_gpt2_tokenizer(tmp_path)
    result = zoo("run", str(tmp_path), "--greedy", "--ignore-eos", "-p", PROMPT, "-n", "12")
    assert result.returncode == 0, result.stderr
    tokenizer = GPT2TokenizerFast.from_pretrained(str(tmp_path))
    ids = tokenizer(PROMPT).input_ids
    assert len(ids) == 10 and tokenizer.decode(ids) == PROMPT
    expected = reference_greedy(hf, ids, 12)
    assert len(set(expected)) > 1, "degenerate test model: its greedy output should vary"
    assert result.stdout == tokenizer.decode(ids + expected) + "\n"


# --- configs of the hub checkpoints (no compile) ---------------------------------------


def _transformers_config(hf: dict):
    from transformers import AutoConfig

    return AutoConfig.for_model(hf["model_type"], **{k: v for k, v in hf.items() if k != "model_type"})


def _meta_parameter_count(architecture: str, hf: dict) -> int:
    import torch
    import transformers

    with torch.device("meta"):
        model = getattr(transformers, architecture)(_transformers_config(hf))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("alias", "parameters"),
    [("gemma-2-2b-it", 2_614_341_888), ("gemma-3-270m", 268_098_176), ("gemma-3-1b-it", 999_885_952),
     ("OLMo-2-0425-1B", 1_484_916_736)],
)
def test_alias_parameter_counts(registry, alias, parameters):
    record = registry.aliases[alias]
    config = registry.architectures[record.architecture].config_class.from_hf(dict(record.hf_config))
    assert record.parameters == parameters
    assert config.parameter_count() == parameters
    assert _meta_parameter_count(record.architecture, dict(record.hf_config)) == parameters


def test_gemma_2_2b_it_knobs(registry):
    config = Gemma2Config.from_hf(dict(registry.aliases["gemma-2-2b-it"].hf_config))
    assert (config.hidden_size, config.n_layers, config.n_heads, config.n_kv_heads, config.head_dim) == (2304, 26, 8, 4, 256)
    assert (config.norm, config.norm_weight_offset, config.norm_placement, config.norm_eps) == ("rms", 1.0, "sandwich", 1e-6)
    assert (config.mlp, config.activation, config.qk_norm) == ("gated", "gelu_tanh", "none")
    assert config.embedding_multiplier == 48.0
    assert config.attention_scale == 1 / 16
    assert (config.attention_softcap, config.final_softcap) == (50.0, 30.0)
    assert config.sliding_window == 4096 and config.context_length == 8192
    assert config.layer_types == ("sliding", "full") * 13  # transformers' default: layer 0 slides
    assert config.tie_word_embeddings and config.eos_token_ids == (1, 107) and config.bos_token_id == 2
    assert config.rope_theta == 10000.0 and config.rope_scaling == {}


@pytest.mark.parametrize("alias", ["gemma-3-270m", "gemma-3-1b-it"])
def test_gemma_3_knobs_and_rope_as_transformers_reads_them(registry, alias):
    """270m lists layer_types, 1b-it only has sliding_window_pattern: both give a global layer
    every sixth; rope frequencies per layer kind equal transformers' buffers."""
    import torch
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding

    hf = dict(registry.aliases[alias].hf_config)
    config = Gemma3Config.from_hf(hf)
    hidden = hf["hidden_size"]
    assert config.embedding_multiplier == float(torch.tensor(hidden**0.5)) and config.embedding_multiplier != hidden**0.5
    assert (config.norm_weight_offset, config.norm_placement, config.qk_norm, config.activation) == (1.0, "sandwich", "head", "gelu_tanh")
    assert config.attention_scale == 1 / 16 and config.attention_softcap is None and config.final_softcap is None
    assert config.sliding_window == 512 and config.context_length == 32768 and config.tie_word_embeddings
    expected_kinds = tuple("full" if (i + 1) % 6 == 0 else "sliding" for i in range(hf["num_hidden_layers"]))
    assert config.layer_types == expected_kinds
    reference = _transformers_config(hf)
    assert tuple(k.removesuffix("_attention") for k in reference.layer_types) == expected_kinds
    assert (config.rope_theta, config.local_rope_theta, config.rope_scaling) == (1e6, 1e4, {})
    rotary = Gemma3RotaryEmbedding(reference)
    # Within an ulp: numpy's float32 pow and torch's differ in the last bit for some exponents.
    np.testing.assert_allclose(config.inv_freq("full"), rotary.full_attention_inv_freq.numpy(), rtol=1e-6)
    np.testing.assert_allclose(config.inv_freq("sliding"), rotary.sliding_attention_inv_freq.numpy(), rtol=1e-6)


def test_gemma_3_old_and_new_rope_layouts_agree():
    """A 4B-style config (old keys, linear scaling 8 on global layers) and transformers 5's
    saved form of it (rope_parameters keyed by layer type) give the same rope as transformers."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding

    old = {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 512, "hidden_size": 64,
        "intermediate_size": 96, "num_hidden_layers": 7, "num_attention_heads": 2, "num_key_value_heads": 1,
        "head_dim": 32, "sliding_window": 16, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "query_pre_attn_scalar": 32,
    }
    reference = _transformers_config(old)
    new = {**reference.to_dict(), "architectures": ["Gemma3ForCausalLM"]}
    assert set(new["rope_parameters"]) == {"full_attention", "sliding_attention"} and "rope_scaling" not in new
    rotary = Gemma3RotaryEmbedding(reference)
    for hf in (old, new):
        config = Gemma3Config.from_hf(hf)
        assert config.rope_scaling == {"rope_type": "linear", "factor": 8.0}
        assert (config.rope_theta, config.local_rope_theta) == (1e6, 1e4)
        assert config.layer_types == ("sliding",) * 5 + ("full", "sliding")
        np.testing.assert_allclose(config.inv_freq("full"), rotary.full_attention_inv_freq.numpy(), rtol=1e-6)
        np.testing.assert_allclose(config.inv_freq("sliding"), rotary.sliding_attention_inv_freq.numpy(), rtol=1e-6)


def test_olmo_2_knobs(registry):
    config = Olmo2Config.from_hf(dict(registry.aliases["OLMo-2-0425-1B"].hf_config))
    assert (config.hidden_size, config.n_layers, config.n_heads, config.n_kv_heads, config.head_dim) == (2048, 16, 16, 16, 128)
    assert (config.norm_placement, config.qk_norm, config.norm_weight_offset, config.norm_eps) == ("post", "projection", 0.0, 1e-6)
    assert (config.activation, config.embedding_multiplier, config.attention_scale) == ("silu", 1.0, None)
    assert not config.tie_word_embeddings and config.context_length == 4096
    assert config.rope_theta == 500000.0 and config.eos_token_ids == (100257,) and config.bos_token_id is None
    assert not config.has_sliding_window


def test_defaults_follow_transformers():
    """Fields left out take transformers' defaults: Gemma 2 caps 50/30, window 4096,
    query_pre_attn_scalar 256; Gemma 3 no caps, pattern 6, thetas 1e6/1e4; OLMo 2 eps 1e-5."""
    base = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 6,
            "num_attention_heads": 2, "head_dim": 8}
    gemma2 = Gemma2Config.from_hf(base)
    assert (gemma2.attention_softcap, gemma2.final_softcap, gemma2.sliding_window) == (50.0, 30.0, 4096)
    assert gemma2.attention_scale == 1 / 16 and gemma2.n_kv_heads == 2 and gemma2.tie_word_embeddings
    assert Gemma2Config.from_hf({**base, "attn_logit_softcapping": None}).attention_softcap is None
    gemma3 = Gemma3Config.from_hf(base)
    assert (gemma3.attention_softcap, gemma3.final_softcap, gemma3.rope_theta, gemma3.local_rope_theta) == (None, None, 1e6, 1e4)
    assert gemma3.layer_types == ("sliding",) * 5 + ("full",) and gemma3.context_length == 131072
    assert Gemma3Config.from_hf({**base, "sliding_window_pattern": 2}).layer_types == ("sliding", "full") * 3
    # transformers 5.12 never hands Gemma 3's attention its soft-cap.
    assert Gemma3Config.from_hf({**base, "attn_logit_softcapping": 50.0}).attention_softcap is None
    olmo2 = Olmo2Config.from_hf(base)
    assert (olmo2.norm_eps, olmo2.context_length, olmo2.tie_word_embeddings) == (1e-5, 2048, False)


# --- refusals: one line naming the field -----------------------------------------------

_BASE = {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
         "num_attention_heads": 2, "head_dim": 8}


@pytest.mark.parametrize(
    ("config_class", "change", "error", "fragment"),
    [
        (Gemma2Config, {"use_bidirectional_attention": True}, UnsupportedModelError, "use_bidirectional_attention=true"),
        (Gemma3Config, {"use_bidirectional_attention": True}, UnsupportedModelError, "use_bidirectional_attention=true"),
        (Gemma2Config, {"layer_types": ["sliding_attention", "chunked_attention"]}, UnsupportedModelError, "'chunked_attention'"),
        (Gemma3Config, {"layer_types": ["full_attention"]}, ConfigError, "layer_types"),
        (Gemma2Config, {"sliding_window": None}, ConfigError, "sliding_window is null"),
        (Gemma2Config, {"hidden_activation": "relu"}, UnsupportedModelError, "hidden_activation='relu'"),
        (Gemma2Config, {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, UnsupportedModelError, "'yarn'"),
        (Gemma3Config, {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, UnsupportedModelError, "'dynamic'"),
        (Gemma3Config, {"rope_parameters": {"sliding_attention": {"rope_type": "linear", "factor": 2.0}}},
         UnsupportedModelError, "rope_parameters.sliding_attention.rope_type='linear'"),
        (Gemma3Config, {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4}}, ConfigError, "rope_parameters"),
        (Gemma3Config, {"query_pre_attn_scalar": 0}, ConfigError, "query_pre_attn_scalar"),
        (Olmo2Config, {"hidden_act": "relu"}, UnsupportedModelError, "hidden_act='relu'"),
        (Olmo2Config, {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}, UnsupportedModelError, "'yarn'"),
    ],
)
def test_unsupported_fields_are_refused_in_one_line(config_class, change, error, fragment):
    with pytest.raises(error) as raised:
        config_class.from_hf({**_BASE, **change})
    message = str(raised.value)
    assert fragment in message and "\n" not in message


def test_cli_refuses_a_bidirectional_gemma_3_in_one_line(tmp_path):
    import json

    hf = {**_BASE, "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "use_bidirectional_attention": True}
    (tmp_path / "config.json").write_text(json.dumps(hf))
    assert_one_line_error(zoo("info", str(tmp_path)), "use_bidirectional_attention=true")


def test_registration(registry):
    for name, plugin in ((GEMMA2, "builtin:gemma2"), (GEMMA3, "builtin:gemma3"), (OLMO2, "builtin:olmo2")):
        architecture = registry.architectures[name]
        assert architecture.plugin == plugin and len(architecture.variants) == 1
        assert architecture.variants[0].hf_config["vocab_size"] == 50257  # GPT-2's tokenizer fits
    assert registry.aliases["gemma-3-1b-it"].repo_id == "google/gemma-3-1b-it"
    assert registry.aliases["OLMo-2-0425-1B"].architecture == OLMO2
    assert math.isclose(Gemma3Config.from_hf(_BASE).score_scale, 256**-0.5)
