"""Mixtral on MAX against transformers, and the mixture-of-experts layer on its own.

One random model config (4 experts, top-2, grouped-query attention, GPT-2's
vocabulary and tokenizer) is compiled once for the module, with `SparseMoE`
in its grouped form (the CPU default); one small graph runs a lone
`SparseMoE` in its dense form (the accelerator default) against
transformers' block, routing included.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import save_gpt2_tokenizer
from zoo.architectures.mixtral import ALIASES, ARCHITECTURE
from zoo.architectures.mixtral.config import MixtralConfig
from zoo.core.checkpoints.mapping import map_experts
from zoo.core.checkpoints.mapping import map_llama_style as map_weights
from zoo.core.errors import ZooError
from zoo.core.runtime.generation import TextGenerator
from zoo.core.loader import load_model
from zoo.core.runtime.sampling import SamplingOptions
from reference import assert_matches_transformers, cached_decode, reference_greedy

SHAPE = dict(
    vocab_size=50257, hidden_size=64, intermediate_size=48, num_hidden_layers=2,
    num_attention_heads=8, num_key_value_heads=4, num_local_experts=4, num_experts_per_tok=2,
    max_position_embeddings=128, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
)
STEPS = 10


def random_mixtral(seed: int, **changes):
    """A transformers Mixtral whose every weight and norm scale is random."""
    import torch
    from transformers import MixtralConfig as HFMixtralConfig
    from transformers import MixtralForCausalLM

    torch.manual_seed(seed)
    config = HFMixtralConfig(initializer_range=0.2, eos_token_id=None, **{**SHAPE, **changes})
    model = MixtralForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.2)
    return model


def token_prompts(lengths: list[int], seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, SHAPE["vocab_size"], size=n).tolist() for n in lengths]


# --- the whole model, compiled once ------------------------------------------------


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory, registry):
    """(transformers model, zoo LoadedModel) on the same random weights, read back from disk."""
    folder = tmp_path_factory.mktemp("mixtral")
    hf = random_mixtral(seed=11)
    hf.save_pretrained(str(folder))
    save_gpt2_tokenizer(folder)
    return hf, load_model(str(folder), registry, verbose=False)


def test_config_and_parameter_count_follow_the_checkpoint(mixtral):
    hf, model = mixtral
    config = model.config
    assert model.architecture.name == "MixtralForCausalLM"
    assert isinstance(config, MixtralConfig)
    assert (config.n_experts, config.experts_per_token) == (4, 2)
    assert (config.n_heads, config.n_kv_heads, config.head_dim) == (8, 4, 8)
    assert config.parameter_count() == sum(p.numel() for p in hf.parameters())
    per_expert = 3 * SHAPE["hidden_size"] * SHAPE["intermediate_size"]
    assert config.active_parameter_count() == config.parameter_count() - 2 * 2 * per_expert
    np.testing.assert_allclose(config.inv_freq(), hf.model.rotary_emb.inv_freq.numpy(), rtol=1e-6)


def test_logits_match_transformers_at_every_cached_step(mixtral):
    hf, model = mixtral
    worst = assert_matches_transformers(hf, model, token_prompts([9], seed=1))
    print(f"max |logit diff| over {STEPS} cached steps: {worst:.2e}")


def test_greedy_tokens_equal_transformers_generate(mixtral):
    hf, model = mixtral
    for prompt in token_prompts([4, 11], seed=2):
        tokens, _ = cached_decode(model, [prompt], steps=16)
        ours = tokens[:, 0].tolist()
        assert ours == reference_greedy(hf, prompt, 16)
        assert len(set(ours)) > 1, "degenerate test model: pick weights whose greedy output varies"


def test_batch_of_different_lengths_equals_one_at_a_time(mixtral):
    """Left-padded rows (whose pad tokens are routed too) give the tokens they give alone."""
    hf, model = mixtral
    prompts = token_prompts([3, 10, 6], seed=3)
    batched, _ = cached_decode(model, prompts, STEPS)
    for row, prompt in enumerate(prompts):
        alone, _ = cached_decode(model, [prompt], STEPS)
        assert batched[:, row].tolist() == alone[:, 0].tolist()
    worst = assert_matches_transformers(hf, model, prompts)
    print(f"max |logit diff|, batch of 3: {worst:.2e}")


def test_text_generation_with_a_real_tokenizer(mixtral):
    hf, model = mixtral
    generator = TextGenerator(model)
    options = SamplingOptions(greedy=True, max_new_tokens=12, ignore_eos=True)
    prompt = "Mixture of experts, routed per token."
    completion = generator.generate([prompt], options)[0]
    expected = reference_greedy(hf, generator.encode(prompt), 12)
    assert completion.token_ids == expected
    assert completion.text == generator.tokenizer.decode(expected)


# --- the layer on its own: routing, and the dense form ------------------------------


@pytest.fixture(scope="module")
def moe_layer():
    """A transformers `MixtralSparseMoeBlock` and, on the same weights, a compiled `SparseMoE`
    in its dense form (the model above runs the grouped one) that also returns its routing."""
    from max.driver import CPU
    from max.dtype import DType
    from max.experimental import functional as F
    from max.experimental.tensor import default_dtype
    from max.graph import DeviceRef, TensorType

    from zoo.core.blocks.moe import SparseMoE

    hf = random_mixtral(seed=12, num_hidden_layers=1).model.layers[0].mlp
    hidden = SHAPE["hidden_size"]

    class RoutedMoE(SparseMoE):
        def forward(self, x):
            weights, indices = self.route(x.reshape((x.shape[0] * x.shape[1], hidden)))
            return super().forward(x), weights, indices

    config = MixtralConfig.from_hf({**SHAPE, "num_hidden_layers": 1})
    with F.lazy(), default_dtype(DType.float32):
        module = RoutedMoE(hidden, config.intermediate_size, config.n_experts, config.experts_per_token,
                           name="moe", grouped=False)
    state = {f"mlp.{k}": v for k, v in hf.state_dict().items()}  # transformers 5's in-memory names
    weights = {k.removeprefix("mlp."): v.contiguous() for k, v in map_experts(state, config, 0).items()}
    module.to(CPU())
    graph = module.compile(TensorType(DType.float32, ("batch", "seqlen", hidden), device=DeviceRef.CPU()), weights=weights)
    return hf, graph


@pytest.mark.parametrize("shape", [(2, 7), (3, 1), (1, 1)])
def test_moe_layer_routes_and_combines_like_transformers(moe_layer, shape):
    import torch
    from max.experimental.tensor import Tensor

    hf, graph = moe_layer
    x = np.random.default_rng(shape[0] * 10 + shape[1]).standard_normal((*shape, SHAPE["hidden_size"])).astype(np.float32)
    out, weights, indices = (t.to_numpy() for t in graph(Tensor.from_dlpack(x)))
    with torch.no_grad():
        expected = hf(torch.tensor(x)).numpy()
        _, hf_weights, hf_indices = hf.gate(torch.tensor(x))
    # The same experts, in the same order, with the same renormalised weights.
    np.testing.assert_array_equal(indices, hf_indices.numpy())
    np.testing.assert_allclose(weights, hf_weights.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


# --- config, weights and registration (no compile) --------------------------------


def test_both_checkpoint_layouts_map_to_the_same_tensors(tmp_path):
    """What `save_pretrained` writes (per-expert w1/w2/w3) and transformers 5's in-memory
    fused `gate_up_proj`/`down_proj` give the same zoo tensors."""
    import torch
    from safetensors.torch import load_file

    hf = random_mixtral(seed=13, num_hidden_layers=1, vocab_size=300)
    hf.save_pretrained(str(tmp_path))
    on_disk = load_file(str(tmp_path / "model.safetensors"))
    assert "model.layers.0.block_sparse_moe.experts.3.w2.weight" in on_disk
    in_memory = dict(hf.state_dict())
    assert "model.layers.0.mlp.experts.gate_up_proj" in in_memory
    config = MixtralConfig.from_hf(hf.config.to_dict())
    from_disk, from_memory = map_weights(on_disk, config), map_weights(in_memory, config)
    assert set(from_disk) == set(from_memory)
    for name in from_disk:
        assert torch.equal(from_disk[name], from_memory[name]), name
    experts = hf.model.layers[0].mlp.experts
    inner = SHAPE["intermediate_size"]
    gate_up = from_disk["layers.0.mlp.experts.2.gate_up_proj.weight"]
    assert torch.equal(gate_up[:inner], on_disk["model.layers.0.block_sparse_moe.experts.2.w1.weight"])
    assert torch.equal(gate_up, experts.gate_up_proj[2])
    assert torch.equal(from_disk["layers.0.mlp.router.weight"], hf.model.layers[0].mlp.gate.weight)


def test_missing_expert_is_reported(tmp_path):
    from max.experimental import functional as F

    from zoo.core.blocks.decoder import build_decoder as build_model
    from zoo.core.loader import check_weights

    hf = random_mixtral(seed=14, num_hidden_layers=1, vocab_size=300)
    hf.save_pretrained(str(tmp_path))
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "model.safetensors"))
    del state["model.layers.0.block_sparse_moe.experts.1.w3.weight"]
    config = MixtralConfig.from_hf(hf.config.to_dict())
    with F.lazy():
        expected = {name: tuple(int(d) for d in p.shape) for name, p in build_model(config).parameters}
    with pytest.raises(ZooError, match=r"missing: layers\.0\.mlp\.experts\.0\.down_proj\.weight.*unexpected: .*w1"):
        check_weights(expected, map_weights(state, config))


def test_config_fields_and_refusals():
    base = {**SHAPE, "architectures": ["MixtralForCausalLM"]}
    config = MixtralConfig.from_hf({**base, "router_jitter_noise": 0.1, "sliding_window": None})
    assert config.context_length == 128 and config.intermediate_size == 48 and config.sliding_window is None
    windowed = MixtralConfig.from_hf({**base, "sliding_window": 64})
    assert (windowed.context_length, windowed.sliding_window, windowed.has_sliding_window) == (128, 64, True)
    for change, message in [
        ({"num_local_experts": None}, "num_local_experts"),
        ({"num_experts_per_tok": 5}, "exceeds num_local_experts"),
        ({"num_experts_per_tok": 0}, "num_experts_per_tok must be between 1"),
        ({"hidden_act": "relu2"}, "hidden_act"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}}, "yarn"),
    ]:
        hf = {k: v for k, v in {**base, **change}.items() if v is not None}
        with pytest.raises(ZooError, match=message):
            MixtralConfig.from_hf(hf)


def test_registration_and_alias_parameter_counts(registry):
    registered = registry.architectures["MixtralForCausalLM"]
    assert registered.config_class is MixtralConfig and registered.build_model == ARCHITECTURE.build_model
    assert registered.variants[0].hf_config["hidden_size"] == SHAPE["hidden_size"]  # one graph for both
    for alias in ALIASES:
        assert registry.aliases[alias.name].repo_id == alias.repo_id
        config = MixtralConfig.from_hf(dict(alias.hf_config))
        assert config.parameter_count() == alias.parameters == 46_702_792_704
        assert config.active_parameter_count() == 12_879_925_248
