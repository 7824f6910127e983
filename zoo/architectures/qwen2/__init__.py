"""Qwen 2: the built-in plugin for `Qwen2ForCausalLM` checkpoints (Qwen 2 and Qwen 2.5).

Llama's decoder with q/k/v biases, usually tied embeddings in the small sizes,
a large rope base, and an optional sliding window on the upper layers. The
weights are named as Llama's, so core's `map_llama_style` maps them.
"""

from __future__ import annotations

from typing import Any

from zoo.core.architecture import Architecture, ModelAlias, Variant
from zoo.plugins.hookspecs import architecture_hooks

from .config import Qwen2Config
from .gguf import LAYOUT

ARCHITECTURE = Architecture(
    name="Qwen2ForCausalLM",
    config_class=Qwen2Config,
    map_weights="zoo.core.checkpoints.mapping:map_llama_style",
    gguf=LAYOUT,
    description="Qwen 2 / 2.5: Llama with q/k/v biases, tied embeddings when small, optional upper-layer sliding window",
    variants=(
        # Layer 0 attends fully, layer 1 over a 4-token window (max_window_layers 1); prompts of 9
        # and 4 tokens and 10 new ones run past it. GPT-2's vocabulary, so the CLI test reuses the graph.
        Variant("window-gqa-tied", {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 50257,
            "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 64, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1,
        }, prompt_lengths=(9, 4), new_tokens=10),
    ),
)


def _qwen25(hidden: int, inner: int, layers: int, heads: int, kv_heads: int) -> dict[str, Any]:
    """The `config.json` fields of a small Qwen 2.5 instruct model (tied, 32k context, no window)."""
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": inner,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "use_sliding_window": False,
        "sliding_window": 32768,
        "max_window_layers": 21,
        "tie_word_embeddings": True,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
    }


ALIASES = [
    ModelAlias("Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2ForCausalLM",
               "Qwen 2.5 0.5B, instruction-tuned", 494_032_768, hf_config=_qwen25(896, 4864, 24, 14, 2)),
    ModelAlias("Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen2ForCausalLM",
               "Qwen 2.5 1.5B, instruction-tuned", 1_543_714_304, hf_config=_qwen25(1536, 8960, 28, 12, 2)),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)
