"""`zoo bench-moe`: what mixture-of-experts routing costs at decode.

A small Mixtral-shaped model decodes in both of `SparseMoE`'s forms (grouped
and dense) against a dense Llama of the same shape whose single SwiGLU has
`experts_per_token * intermediate_size` inner units, so each token runs
through the same number of feed-forward weights. All three get seeded random
weights built by transformers and go through zoo's engine as `zoo bench` does.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from .measure import SEED, Log, log_stderr, measure

# A small Mixtral-shaped model: the experts dominate the weights, as in Mixtral-8x7B.
BENCH_SHAPE: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 512,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 8192,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "rope_theta": 1e6,
    "tie_word_embeddings": False,
}
_MOE_ONLY = ("num_local_experts", "num_experts_per_tok", "router_jitter_noise", "router_aux_loss_coef",
             "output_router_logits", "sliding_window")


def dense_equivalent(hf_config: dict[str, Any]) -> dict[str, Any]:
    """The Llama `config.json` with the same active feed-forward size as Mixtral `hf_config`."""
    dense = {k: v for k, v in hf_config.items() if k not in _MOE_ONLY}
    inner = int(hf_config["num_experts_per_tok"]) * int(hf_config["intermediate_size"])
    return {**dense, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "intermediate_size": inner}


def compare_decode(
    hf_config: dict[str, Any] | None = None,
    *,
    context: int = 16,
    new_tokens: int = 32,
    repeats: int = 3,
    device: str = "cpu",
    dtype: str | None = None,
    log: Log = log_stderr,
) -> dict[str, Any]:
    """Decode ms/token of Mixtral (grouped and dense forms) and of its dense-active Llama."""
    from zoo.core.blocks.decoder import build_decoder
    from zoo.core.loader import compile_model, pick_device, pick_dtype
    from zoo.core.resolve import architecture_for, make_config
    from zoo.core.runtime.engine import CompiledGraph
    from zoo.plugins.manager import get_registry

    from .runners import ZooRunner, random_hf_model

    hf_config = dict(hf_config or BENCH_SHAPE)
    registry = get_registry()
    max_device = pick_device(device)
    max_dtype = pick_dtype(dtype, max_device)
    mixtral = architecture_for(hf_config, registry)
    variants = {
        "mixtral_grouped": (hf_config, replace(mixtral, build_model=partial(build_decoder, grouped_moe=True))),
        "mixtral_dense": (hf_config, replace(mixtral, build_model=partial(build_decoder, grouped_moe=False))),
        "llama_active": (dense_equivalent(hf_config), architecture_for(dense_equivalent(hf_config), registry)),
    }
    result: dict[str, Any] = {"context": context, "new_tokens": new_tokens, "device": device}
    for label, (config_json, architecture) in variants.items():
        config = make_config(architecture, config_json)
        log(f"{label}: random weights (seed {SEED}), compiling")
        tensors = dict(random_hf_model(config_json, SEED).state_dict())
        graph, _ = compile_model(architecture, config, tensors, max_device, max_dtype)
        runner = ZooRunner(CompiledGraph(graph, config, max_device, max_dtype))
        rates = measure([context], config.vocab_size, new_tokens, repeats, runner, label, log)[context]
        result[f"{label}_decode_ms_per_token"] = rates.decode_ms_per_token
        result[f"{label}_prefill_tok_s"] = rates.prefill_tok_s
        result[f"{label}_parameters"] = config.parameter_count()
    base = result["llama_active_decode_ms_per_token"]
    for form in ("grouped", "dense"):
        result[f"mixtral_{form}_over_llama_active"] = result[f"mixtral_{form}_decode_ms_per_token"] / base
    return result
