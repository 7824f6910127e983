"""Llama: the built-in plugin for `LlamaForCausalLM` checkpoints and llama2.c files.

Registers the architecture, a few small hub checkpoints by name, and the
llama2.c legacy `.bin` weight format (read into HF names, so the same
mapper serves both).
"""

from __future__ import annotations

from zoo.core.architecture import Architecture, ModelAlias, Variant, WeightFormat
from zoo.plugins.hookspecs import architecture_hooks, hookimpl

from .config import LlamaConfig
from .gguf import LAYOUT

_TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "max_position_embeddings": 128}

ARCHITECTURE = Architecture(
    name="LlamaForCausalLM",
    config_class=LlamaConfig,
    map_weights="zoo.core.checkpoints.mapping:map_llama_style",
    gguf=LAYOUT,
    description="Llama: rotary positions, RMSNorm, grouped-query attention, SwiGLU",
    variants=(
        Variant("gqa-biases-llama3-rope-untied", {
            **_TINY, "vocab_size": 384, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3,
            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 16, "tie_word_embeddings": False,
            "attention_bias": True, "mlp_bias": True, "rms_norm_eps": 1e-5, "rope_parameters": {
                "rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 32,
            },
        }),
        Variant("mqa-tied-linear-rope", {
            **_TINY, "vocab_size": 50257, "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 1, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0},
        }),
    ),
)

LLAMA2C = WeightFormat(
    name="llama2c",
    matches="zoo.architectures.llama.llama2c:matches",
    load="zoo.architectures.llama.llama2c:load",
    read_config="zoo.architectures.llama.llama2c:read_config",
    description="karpathy's llama2.c legacy .bin checkpoint (with a tokenizer.bin or sentencepiece .model)",
)


def _hf(hidden: int, inner: int, layers: int, heads: int, kv_heads: int, vocab: int, context: int, **extra) -> dict:
    """The essential fields of a Llama `config.json`."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inner,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "max_position_embeddings": context,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        **extra,
    }


def _stories(dim: int, inner: int, layers: int, heads: int, kv_heads: int, vocab: int, context: int) -> dict:
    """A llama2.c TinyStories model: tied embeddings, BOS 1, EOS 2."""
    return _hf(
        dim, inner, layers, heads, kv_heads, vocab, context,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
    )


def _alias(name: str, repo_id: str, description: str, parameters: int, hf_config: dict, **files: str) -> ModelAlias:
    return ModelAlias(name, repo_id, "LlamaForCausalLM", description, parameters, hf_config=hf_config, **files)


_TINYLLAMAS = "karpathy/tinyllamas"
_NEEDS_TOKENIZER = "; pass --tokenizer (llama2.c's tokenizer.bin)"

ALIASES = [
    _alias(
        "SmolLM-135M",
        "HuggingFaceTB/SmolLM-135M",
        "SmolLM 135M base",
        134_515_008,
        _hf(576, 1536, 30, 9, 3, 49152, 2048, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0),
    ),
    _alias(
        "SmolLM2-135M-Instruct",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "SmolLM2 135M, instruction-tuned",
        134_515_008,
        _hf(
            576, 1536, 30, 9, 3, 49152, 8192,
            rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        ),
    ),
    _alias(
        "TinyLlama-1.1B",
        "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        "TinyLlama 1.1B chat v1.0",
        1_100_048_384,
        _hf(2048, 5632, 22, 32, 4, 32000, 2048, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
    ),
    _alias(
        "stories260K",
        _TINYLLAMAS,
        "llama2.c TinyStories 260K (llama2.c .bin)",
        260_032,
        _stories(64, 172, 5, 8, 4, 512, 512),
        weights_file="stories260K/stories260K.bin",
        tokenizer_file="stories260K/tok512.bin",
    ),
    _alias(
        "stories15M",
        _TINYLLAMAS,
        "llama2.c TinyStories 15M (llama2.c .bin)" + _NEEDS_TOKENIZER,
        15_191_712,
        _stories(288, 768, 6, 6, 6, 32000, 256),
        weights_file="stories15M.bin",
    ),
    _alias(
        "stories42M",
        _TINYLLAMAS,
        "llama2.c TinyStories 42M (llama2.c .bin)" + _NEEDS_TOKENIZER,
        41_689_600,
        _stories(512, 1376, 8, 8, 8, 32000, 1024),
        weights_file="stories42M.bin",
    ),
    _alias(
        "stories110M",
        _TINYLLAMAS,
        "llama2.c TinyStories 110M (llama2.c .bin)" + _NEEDS_TOKENIZER,
        109_529_856,
        _stories(768, 2048, 12, 12, 12, 32000, 1024),
        weights_file="stories110M.bin",
    ),
]


register_architectures, register_models = architecture_hooks(ARCHITECTURE, ALIASES)


@hookimpl
def register_weight_formats(register):
    register(LLAMA2C)
