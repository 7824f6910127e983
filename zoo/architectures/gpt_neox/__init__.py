"""GPT-NeoX: the built-in plugin for `GPTNeoXForCausalLM` checkpoints (Pythia, GPT-NeoX-20B)."""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import GPTNeoXConfig
from .gguf import LAYOUT

_TINY = {
    "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "vocab_size": 50257, "hidden_size": 48,
    "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 64,
    "layer_norm_eps": 1e-5, "tie_word_embeddings": False,
}

ARCHITECTURE = Architecture(
    name="GPTNeoXForCausalLM",
    config_class=GPTNeoXConfig,
    map_weights="zoo.architectures.gpt_neox.weights:map_weights",
    gguf=LAYOUT,
    description="GPT-NeoX / Pythia: parallel residual, LayerNorm, partial rotary, interleaved fused QKV, GELU MLP",
    variants=(
        # Pythia's layout: old rope names, a quarter of each 24-dimension head rotating,
        # parallel residual, exact GELU, biased attention.
        Variant("parallel-residual", {
            **_TINY, "rotary_pct": 0.25, "rotary_emb_base": 10000, "use_parallel_residual": True, "hidden_act": "gelu",
        }),
        # The sequential residual, with transformers-5 rope parameters, unbiased attention
        # and the tanh GELU (fused into the decode kernel).
        Variant("sequential-residual", {
            **_TINY, "use_parallel_residual": False, "attention_bias": False, "hidden_act": "gelu_new",
            "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0, "partial_rotary_factor": 0.5},
        }),
    ),
)


def _pythia(hidden: int, layers: int, heads: int) -> dict:
    """The fields of a Pythia `config.json` (every size shares the rest)."""
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": 50304,
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "max_position_embeddings": 2048,
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
        "use_parallel_residual": True,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }


ALIASES = [
    ModelAlias("pythia-160m", "EleutherAI/pythia-160m", "GPTNeoXForCausalLM", "Pythia 160M (12 layers, d=768)",
               162_322_944, hf_config=_pythia(768, 12, 12)),
    ModelAlias("pythia-410m", "EleutherAI/pythia-410m", "GPTNeoXForCausalLM", "Pythia 410M (24 layers, d=1024)",
               405_334_016, hf_config=_pythia(1024, 24, 16)),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
