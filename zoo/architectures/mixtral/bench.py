"""What the mixture of experts costs at decode: Mixtral against a dense Llama of the same active size.

The dense model has the same shape except its feed-forward: one SwiGLU whose
inner size is `experts_per_token * intermediate_size`, so each token runs
through the same number of feed-forward weights. Mixtral runs in both of
`SparseMoE`'s forms (grouped and dense). All three get random weights built
by transformers (seeded) and go through zoo's engine as `zoo bench` does.
MAX and torch are imported inside the functions.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from zoo.bench import Log

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


def _log(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)


def dense_equivalent(hf_config: dict[str, Any]) -> dict[str, Any]:
    """The Llama `config.json` with the same active feed-forward size as Mixtral `hf_config`."""
    moe_only = ("num_local_experts", "num_experts_per_tok", "router_jitter_noise", "router_aux_loss_coef",
                "output_router_logits", "sliding_window")
    dense = {k: v for k, v in hf_config.items() if k not in moe_only}
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
    log: Log = _log,
) -> dict[str, Any]:
    """Decode ms/token of Mixtral (grouped and dense forms) and of its dense-active Llama."""
    from dataclasses import replace

    from zoo.bench import ZooRunner, compile_zoo, measure, random_weights_for
    from zoo.core.loader import pick_device, pick_dtype
    from zoo.plugins.manager import get_registry

    from .model import build_model

    hf_config = dict(hf_config or BENCH_SHAPE)
    registry = get_registry()
    max_device = pick_device(device)
    max_dtype = pick_dtype(dtype, max_device)
    mixtral = registry.architectures["MixtralForCausalLM"]
    variants = {
        "mixtral_grouped": (hf_config, replace(mixtral, build_model=partial(build_model, grouped=True))),
        "mixtral_dense": (hf_config, replace(mixtral, build_model=partial(build_model, grouped=False))),
        "llama_active": (dense_equivalent(hf_config), registry.architectures["LlamaForCausalLM"]),
    }
    result: dict[str, Any] = {"context": context, "new_tokens": new_tokens, "device": device}
    for label, (config_json, architecture) in variants.items():
        config = architecture.config_class.from_hf(config_json)
        weights = random_weights_for(label, config_json, log)
        loaded = compile_zoo(label, architecture, config, weights, max_device, max_dtype, log)
        rates = measure([context], config.vocab_size, new_tokens, repeats, ZooRunner(loaded), label, log)[context]
        result[f"{label}_decode_ms_per_token"] = rates.decode_ms_per_token
        result[f"{label}_prefill_tok_s"] = rates.prefill_tok_s
        result[f"{label}_parameters"] = config.parameter_count()
    base = result["llama_active_decode_ms_per_token"]
    for form in ("grouped", "dense"):
        result[f"mixtral_{form}_over_llama_active"] = result[f"mixtral_{form}_decode_ms_per_token"] / base
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(compare_decode(), indent=2))
