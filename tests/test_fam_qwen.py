"""Qwen 2, Qwen 3, Qwen 3 MoE and Mistral against transformers 5.12.

Each family declares one `Variant` (2 layers, GPT-2's 50257-token vocabulary),
so each compiles two graphs once: `zoo verify` compiles them and the CLI run
on a second random checkpoint of the same shapes finds them in MAX's cache.
Everything else here (configs, parameter counts, weight names, refusals)
needs no graph.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, zoo
from conftest import save_gpt2_tokenizer
from reference import reference_greedy
from zoo.architectures import mistral, qwen2, qwen3, qwen3_moe
from zoo.core.errors import ZooError
from zoo.core.resolve import make_config

FAMILIES = {package.ARCHITECTURE.name: package for package in (qwen2, qwen3, qwen3_moe, mistral)}


def variant_config(name: str) -> dict[str, Any]:
    (variant,) = FAMILIES[name].ARCHITECTURE.variants
    return dict(variant.hf_config)


# --- (a) parity: zoo verify on each family's variant ---------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_verify_matches_transformers_at_every_step(name, registry):
    from zoo.verify import verify

    (report,) = verify(name, registry)
    assert report.passed, report.failures
    assert report.greedy_tokens_equal
    assert len(report.step_logit_diffs) == report.new_tokens == FAMILIES[name].ARCHITECTURE.variants[0].new_tokens
    assert max(report.step_logit_diffs) < 1e-4
    assert report.batch_vs_single_diff < 1e-4 and report.cached_vs_recomputed_diff < 1e-4
    config = make_config(FAMILIES[name].ARCHITECTURE, variant_config(name))
    if config.has_sliding_window:  # the prompt alone is longer than the window, and decoding goes on past it
        assert max(report.prompt_lengths) > config.sliding_window
        assert min(report.prompt_lengths) + report.new_tokens > config.sliding_window


# --- (d) the CLI as a user runs it, on a checkpoint of the variant's shapes ----------


@pytest.fixture(scope="session")
def cli_checkpoints(tmp_path_factory):
    """Per family: (folder, transformers model) of a random checkpoint with the variant's shapes
    and GPT-2's tokenizer."""
    from zoo.verify import random_reference

    made: dict[str, tuple[Any, Any]] = {}

    def get(name: str):
        if name not in made:
            folder = tmp_path_factory.mktemp(f"cli-{name}")
            hf = random_reference(FAMILIES[name].ARCHITECTURE, variant_config(name), seed=7)
            hf.save_pretrained(str(folder))
            save_gpt2_tokenizer(folder)
            made[name] = folder, hf
        return made[name]

    return get


PROMPT = "The old lighthouse keeper walked along the shore every morning, counting"


@pytest.mark.parametrize("name", FAMILIES)
def test_cli_run_equals_transformers_greedy(name, cli_checkpoints):
    from transformers import GPT2TokenizerFast

    folder, hf = cli_checkpoints(name)
    result = zoo("run", str(folder), "--greedy", "-p", PROMPT, "-n", "12", "--ignore-eos")
    assert result.returncode == 0, result.stderr
    tokenizer = GPT2TokenizerFast.from_pretrained(str(folder))
    ids = tokenizer(PROMPT).input_ids
    window = make_config(FAMILIES[name].ARCHITECTURE, variant_config(name)).sliding_window
    assert window is None or len(ids) > window
    expected = reference_greedy(hf, ids, 12)
    assert len(set(expected)) > 1, "degenerate test model: greedy output should vary"
    assert result.stdout == PROMPT + tokenizer.decode(expected) + "\n"


# --- (b) configs as transformers reads them; hub aliases -----------------------------


def transformers_view(hf_config: Mapping[str, Any]) -> dict[str, Any]:
    """What transformers 5.12 builds from a config.json (a meta-device model: no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    fields = {k: v for k, v in hf_config.items() if k != "model_type"}
    config = AutoConfig.for_model(hf_config["model_type"], **fields)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    kind = config.rope_parameters["rope_type"]
    rope = ROPE_INIT_FUNCTIONS.get(kind, type(model.model.rotary_emb).compute_default_rope_parameters)
    inv_freq, _ = rope(config, "cpu")
    layers = []
    for layer in model.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        moe = hasattr(mlp, "experts")
        layers.append(dict(
            head_dim=attention.head_dim,
            kv_heads=attention.k_proj.out_features // attention.head_dim,
            window=getattr(attention, "sliding_window", config.sliding_window),
            qkv_bias=attention.q_proj.bias is not None,
            o_bias=attention.o_proj.bias is not None,
            qk_norm=hasattr(attention, "q_norm"),
            eps=layer.input_layernorm.variance_epsilon,
            experts=(mlp.gate.num_experts, mlp.gate.top_k, mlp.experts.intermediate_dim, mlp.gate.norm_topk_prob) if moe else None,
            inner=None if moe else mlp.intermediate_size,
        ))
    eos = config.eos_token_id
    return dict(
        vocab=config.vocab_size,
        layers=layers,
        tied=model.lm_head.weight is model.model.embed_tokens.weight,
        inv_freq=inv_freq.numpy(),
        context=config.max_position_embeddings,
        eos=() if eos is None else tuple(eos) if isinstance(eos, list) else (eos,),
        bos=config.bos_token_id,
        parameters=sum(p.numel() for p in model.parameters()),
    )


def zoo_view(config) -> dict[str, Any]:
    """The same facts from zoo's config."""
    layers = []
    for index in range(config.n_layers):
        moe = config.is_moe_layer(index)
        layers.append(dict(
            head_dim=config.head_dim,
            kv_heads=config.n_kv_heads,
            window=config.sliding_window if config.layer_kind(index) == "sliding" else None,
            qkv_bias=config.qkv_bias,
            o_bias=config.o_bias,
            qk_norm=config.qk_norm == "head",
            eps=config.norm_eps,
            experts=(config.n_experts, config.experts_per_token, config.expert_intermediate_size,
                     config.normalize_expert_weights) if moe else None,
            inner=None if moe else config.intermediate_size,
        ))
    return dict(
        vocab=config.vocab_size, layers=layers, tied=config.tie_word_embeddings, inv_freq=np.asarray(config.inv_freq()),
        context=config.context_length, eos=config.eos_token_ids, bos=config.bos_token_id,
        parameters=config.parameter_count(),
    )


def _tiny(name: str, **changes: Any) -> dict[str, Any]:
    """The variant's config with `changes` (None removes a field)."""
    merged = {**variant_config(name), **changes}
    return {k: v for k, v in merged.items() if v is not None}


OLD_ROPE = {"rope_parameters": None, "rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}}
INTERPRETED = [
    # Qwen 2: the window gate, max_window_layers, layer_types, the old rope keys, the defaults
    ("Qwen2ForCausalLM", _tiny("Qwen2ForCausalLM")),
    ("Qwen2ForCausalLM", _tiny("Qwen2ForCausalLM", use_sliding_window=False, num_hidden_layers=3, **OLD_ROPE)),
    ("Qwen2ForCausalLM", _tiny("Qwen2ForCausalLM", sliding_window=7, max_window_layers=2, num_hidden_layers=4,
                               tie_word_embeddings=False, hidden_act="gelu_pytorch_tanh")),
    ("Qwen2ForCausalLM", _tiny("Qwen2ForCausalLM", max_window_layers=0, num_hidden_layers=3,
                               layer_types=["sliding_attention", "full_attention", "sliding_attention"])),
    ("Qwen2ForCausalLM", _tiny("Qwen2ForCausalLM", use_sliding_window=False,
                               layer_types=["full_attention", "full_attention"], attention_bias=False)),
    ("Qwen2ForCausalLM", {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": 2}),
    # Qwen 3: head_dim 128 by default, attention_bias on all four projections, the same window rules
    ("Qwen3ForCausalLM", _tiny("Qwen3ForCausalLM")),
    ("Qwen3ForCausalLM", _tiny("Qwen3ForCausalLM", head_dim=None, hidden_size=64, attention_bias=True, **OLD_ROPE)),
    ("Qwen3ForCausalLM", _tiny("Qwen3ForCausalLM", use_sliding_window=True, sliding_window=3, max_window_layers=1,
                               eos_token_id=[5, 6], bos_token_id=4)),
    # Qwen 3 MoE: the window on every layer, dense layers, the expert count's two spellings
    ("Qwen3MoeForCausalLM", _tiny("Qwen3MoeForCausalLM")),
    ("Qwen3MoeForCausalLM", _tiny("Qwen3MoeForCausalLM", num_experts=None, num_local_experts=3, num_hidden_layers=4,
                                  decoder_sparse_step=2, mlp_only_layers=None, norm_topk_prob=True, head_dim=None,
                                  use_sliding_window=False)),
    ("Qwen3MoeForCausalLM", _tiny("Qwen3MoeForCausalLM", num_experts=0, attention_bias=True, tie_word_embeddings=True)),
    # Mistral: the default 4096 window, BOS/EOS 1/2, head_dim, layer_types ignored
    ("MistralForCausalLM", _tiny("MistralForCausalLM")),
    ("MistralForCausalLM", _tiny("MistralForCausalLM", sliding_window=None, head_dim=16, **OLD_ROPE)),
    ("MistralForCausalLM", {**_tiny("MistralForCausalLM", max_position_embeddings=None, layer_types=["full_attention"] * 2),
                            "sliding_window": None, "eos_token_id": None}),
]


@pytest.mark.parametrize("name,hf_config", INTERPRETED)
def test_config_reads_as_transformers_does(name, hf_config):
    ours = zoo_view(make_config(FAMILIES[name].ARCHITECTURE, hf_config))
    theirs = transformers_view(hf_config)
    np.testing.assert_allclose(ours.pop("inv_freq"), theirs.pop("inv_freq"), rtol=1e-6)
    assert ours == theirs


def test_config_knobs_of_each_variant():
    q2 = make_config(qwen2.ARCHITECTURE, variant_config("Qwen2ForCausalLM"))
    assert (q2.sliding_window, q2.layer_types, q2.qkv_bias, q2.o_bias, q2.tie_word_embeddings) == (4, ("full", "sliding"), True, False, True)
    q3 = make_config(qwen3.ARCHITECTURE, variant_config("Qwen3ForCausalLM"))
    assert (q3.head_dim, q3.hidden_size // q3.n_heads, q3.qk_norm, q3.has_sliding_window) == (12, 8, "head", False)
    moe = make_config(qwen3_moe.ARCHITECTURE, variant_config("Qwen3MoeForCausalLM"))
    assert (moe.moe_layers, moe.normalize_expert_weights, moe.expert_intermediate_size, moe.intermediate_size) == ((False, True), False, 16, 40)
    assert [moe.layer_kind(i) for i in range(2)] == ["sliding", "sliding"]  # max_window_layers means nothing here
    assert moe.active_parameter_count() == moe.parameter_count() - 2 * 3 * 32 * 16
    mis = make_config(mistral.ARCHITECTURE, variant_config("MistralForCausalLM"))
    assert (mis.sliding_window, mis.layer_types, mis.eos_token_ids, mis.bos_token_id) == (5, (), (2,), 1)


ALIASES = [alias for package in FAMILIES.values() for alias in package.ALIASES]


@pytest.mark.parametrize("alias", ALIASES, ids=lambda a: a.name)
def test_alias_configs_and_parameter_counts(alias, registry):
    assert registry.aliases[alias.name].repo_id == alias.repo_id
    architecture = registry.architectures[alias.architecture]
    config = make_config(architecture, alias.hf_config)
    assert alias.hf_config["architectures"] == [alias.architecture]
    assert config.parameter_count() == alias.parameters
    ours, theirs = zoo_view(config), transformers_view(alias.hf_config)
    np.testing.assert_allclose(ours.pop("inv_freq"), theirs.pop("inv_freq"), rtol=1e-6)
    assert ours == theirs
    assert config.rope_theta == 1e6 and config.sliding_window is None and not config.has_sliding_window


def test_alias_knobs():
    by_name = {alias.name: alias for alias in ALIASES}

    def config(name: str):
        alias = by_name[name]
        return make_config(FAMILIES[alias.architecture].ARCHITECTURE, alias.hf_config)

    small = config("Qwen2.5-0.5B-Instruct")
    assert (small.n_heads, small.n_kv_heads, small.head_dim, small.qkv_bias, small.tie_word_embeddings) == (14, 2, 64, True, True)
    assert small.parameter_count() == 494_032_768 and small.eos_token_ids == (151645,)
    assert config("Qwen2.5-1.5B-Instruct").parameter_count() == 1_543_714_304
    q3 = config("Qwen3-0.6B")
    assert (q3.head_dim, q3.hidden_size // q3.n_heads, q3.qk_norm, q3.context_length) == (128, 64, "head", 40960)
    assert config("Qwen3-1.7B").parameter_count() == 1_720_574_976
    moe = config("Qwen3-30B-A3B")
    assert (moe.n_experts, moe.experts_per_token, moe.expert_intermediate_size, moe.normalize_expert_weights) == (128, 8, 768, True)
    assert all(moe.is_moe_layer(i) for i in range(48))
    assert moe.parameter_count() == 30_532_122_624 and moe.active_parameter_count() == 3_353_032_704
    mis = config("Mistral-7B-Instruct-v0.3")
    assert (mis.vocab_size, mis.norm_eps, mis.sliding_window, mis.parameter_count()) == (32768, 1e-5, None, 7_248_023_552)


def test_cli_lists_and_describes_the_aliases():
    result = zoo("list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for alias in ALIASES:
        assert rows[alias.name]["architecture"] == alias.architecture
        assert rows[alias.name]["parameters"] == alias.parameters
    for name in FAMILIES:
        assert rows[name]["kind"] == "architecture"
    info = zoo("info", "Qwen3-30B-A3B", "--json")
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["parameters"] == 30_532_122_624 and described["config"]["n_experts"] == 128


# --- weights: what save_pretrained writes, and the in-memory layout ----------------------


def test_qwen3_moe_checkpoint_layouts_map_to_the_module_names(tmp_path):
    """transformers 5.12 saves each expert as mlp.experts.{j}.gate_proj/up_proj/down_proj (its
    memory holds them fused); both map onto exactly the parameters the shared decoder has."""
    import torch
    from max.experimental import functional as F
    from safetensors.torch import load_file

    from zoo.core.blocks.decoder import build_decoder
    from zoo.core.checkpoints.mapping import map_llama_style
    from zoo.core.loader import check_weights
    from zoo.verify import random_reference

    hf_config = _tiny("Qwen3MoeForCausalLM", vocab_size=300)
    hf = random_reference(qwen3_moe.ARCHITECTURE, hf_config)
    hf.save_pretrained(str(tmp_path))
    on_disk = load_file(str(tmp_path / "model.safetensors"))
    assert "model.layers.1.mlp.experts.3.gate_proj.weight" in on_disk and "model.layers.1.mlp.gate.weight" in on_disk
    assert "model.layers.0.mlp.gate_proj.weight" in on_disk  # the dense layer
    in_memory = dict(hf.state_dict())
    assert "model.layers.1.mlp.experts.gate_up_proj" in in_memory
    config = make_config(qwen3_moe.ARCHITECTURE, json.loads((tmp_path / "config.json").read_text()))
    from_disk, from_memory = map_llama_style(on_disk, config), map_llama_style(in_memory, config)
    assert set(from_disk) == set(from_memory)
    for name in from_disk:
        assert torch.equal(from_disk[name], from_memory[name]), name
    with F.lazy():
        expected = {name: tuple(int(d) for d in p.shape) for name, p in build_decoder(config).parameters}
    check_weights(expected, from_disk)
    assert torch.equal(from_disk["layers.1.mlp.experts.2.gate_up_proj.weight"], hf.model.layers[1].mlp.experts.gate_up_proj[2])
    assert torch.equal(from_disk["layers.0.attention.q_norm.weight"], hf.model.layers[0].self_attn.q_norm.weight)


@pytest.mark.parametrize("name", ["Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"])
def test_dense_checkpoints_map_to_the_module_names(name, tmp_path):
    from max.experimental import functional as F
    from safetensors.torch import load_file

    from zoo.core.blocks.decoder import build_decoder
    from zoo.core.checkpoints.mapping import map_llama_style
    from zoo.core.loader import check_weights
    from zoo.verify import random_reference

    hf = random_reference(FAMILIES[name].ARCHITECTURE, _tiny(name, vocab_size=300))
    hf.save_pretrained(str(tmp_path))
    config = make_config(FAMILIES[name].ARCHITECTURE, json.loads((tmp_path / "config.json").read_text()))
    with F.lazy():
        expected = {n: tuple(int(d) for d in p.shape) for n, p in build_decoder(config).parameters}
    check_weights(expected, map_llama_style(load_file(str(tmp_path / "model.safetensors")), config))


# --- (c) refusals: one line naming the field ------------------------------------------


REFUSED = [
    ("Qwen2ForCausalLM", {"rope_parameters": None, "rope_theta": 1e6,
                          "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}, "'yarn'"),
    ("Qwen2ForCausalLM", {"layer_types": ["full_attention", "chunked_attention"]}, "'chunked_attention'"),
    ("Qwen2ForCausalLM", {"layer_types": ["full_attention"]}, "layer_types lists 1 layers"),
    ("Qwen2ForCausalLM", {"use_sliding_window": False, "layer_types": ["full_attention", "sliding_attention"]}, "layer_types"),
    ("Qwen2ForCausalLM", {"max_window_layers": -1}, "max_window_layers"),
    ("Qwen2ForCausalLM", {"use_sliding_window": "yes"}, "use_sliding_window"),
    ("Qwen3ForCausalLM", {"head_dim": None}, "head_dim"),
    ("Qwen3ForCausalLM", {"hidden_act": "relu"}, "hidden_act='relu'"),
    ("Qwen3ForCausalLM", {"rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}}, "'dynamic'"),
    ("Qwen3MoeForCausalLM", {"num_experts_per_tok": 5}, "num_experts_per_tok (5)"),
    ("Qwen3MoeForCausalLM", {"mlp_only_layers": "0"}, "mlp_only_layers"),
    ("Qwen3MoeForCausalLM", {"decoder_sparse_step": 0}, "decoder_sparse_step"),
    ("Qwen3MoeForCausalLM", {"sliding_window": 0}, "sliding_window"),
    ("MistralForCausalLM", {"sliding_window": 0}, "sliding_window"),
    ("MistralForCausalLM", {"num_key_value_heads": 3}, "num_key_value_heads"),
]


@pytest.mark.parametrize("name,changes,fragment", REFUSED)
def test_unsupported_or_broken_fields_are_refused_in_one_line(name, changes, fragment):
    hf_config = {**variant_config(name), **changes}  # a None stays: an explicit null in config.json
    with pytest.raises(ZooError) as error:
        make_config(FAMILIES[name].ARCHITECTURE, hf_config)
    message = str(error.value)
    assert fragment in message and "\n" not in message, message


def test_cli_refuses_an_unsupported_rope_in_one_line(tmp_path):
    hf_config = {**variant_config("Qwen2ForCausalLM"), "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0}}
    (tmp_path / "config.json").write_text(json.dumps(hf_config))
    assert_one_line_error(zoo("info", str(tmp_path)), "'yarn'")
