"""How each llama.cpp architecture in a GGUF file maps back to a HF checkpoint: one table entry per family.

An entry names the HF architecture and `model_type`, the HF tensor names of
the family (top level, and per layer relative to `layer_prefix`), the HF
`config.json` fields read from the GGUF metadata, the fields llama.cpp's
architecture implies, and how llama.cpp's converter changed the tensors
(q/k rows permuted for interleaved rotary, Gemma's norms stored as 1 + w,
GPT-NeoX's fused q/k/v regrouped, GPT-2's Conv1D weights transposed).

The GGUF tensor names are not written here: `gguf`'s own name map
(`gguf.get_tensor_name_map`, the table llama.cpp's converter uses) turns each
HF name into the GGUF one, so a new family is a new entry (HF names + config
fields), not new code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# GGUF metadata key (after "{arch}.") -> HF config.json field, shared by the Llama-like families.
LLAMA_CONFIG = {
    "context_length": "max_position_embeddings",
    "embedding_length": "hidden_size",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.key_length": "head_dim",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "rope.freq_base": "rope_theta",
}

LLAMA_TOP = ("model.embed_tokens", "model.norm", "lm_head")
# Per-layer HF names of the Llama layout; each family lists the ones it has.
ATTENTION = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
QK_NORMS = ("self_attn.q_norm", "self_attn.k_norm")
GATED_MLP = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
LLAMA_NORMS = ("input_layernorm", "post_attention_layernorm")
SANDWICH_NORMS = (*LLAMA_NORMS, "pre_feedforward_layernorm", "post_feedforward_layernorm")

# Mixtral's experts: GGUF stacks them in one 3-D tensor per projection.
MIXTRAL_EXPERTS = {
    "ffn_gate_exps": "block_sparse_moe.experts.{xid}.w1",
    "ffn_down_exps": "block_sparse_moe.experts.{xid}.w2",
    "ffn_up_exps": "block_sparse_moe.experts.{xid}.w3",
}
QWEN_EXPERTS = {
    "ffn_gate_exps": "mlp.experts.{xid}.gate_proj",
    "ffn_down_exps": "mlp.experts.{xid}.down_proj",
    "ffn_up_exps": "mlp.experts.{xid}.up_proj",
}

# A finishing step: (HF config being built, the GGUF file) -> fills derived fields in place.
Finish = Callable[[dict[str, Any], Any], None]


@dataclass(frozen=True)
class Family:
    """One llama.cpp architecture read back as a HF architecture."""

    gguf_arch: str
    architecture: str
    model_type: str
    top: tuple[str, ...]
    layer: tuple[str, ...]
    layer_prefix: str = "model.layers.{bid}."
    config: Mapping[str, str] = field(default_factory=lambda: LLAMA_CONFIG)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """HF fields that llama.cpp's architecture fixes (not stored in the file)."""
    permute_qk: bool = False
    """The converter permuted q/k rows (and biases) for llama.cpp's interleaved rotary."""
    norm_shift: float = 0.0
    """Stored norm weights are the HF weights plus this (Gemma's 1 + w)."""
    transposed: tuple[str, ...] = ()
    """HF names (per layer) HF stores as (in, out) (GPT-2's Conv1D); GGUF stores (out, in)."""
    regroup_qkv: bool = False
    """GPT-NeoX: HF's fused q/k/v rows are grouped per head, GGUF's per projection."""
    experts: Mapping[str, str] = field(default_factory=dict)
    """GGUF stacked-expert tensor (per layer) -> the per-expert HF name (`{xid}`)."""
    moe_architecture: tuple[str, str] | None = None
    """(architecture, model_type) when the file has experts (llama.cpp's `llama` holds Mixtral too)."""
    config_tensors: tuple[str, ...] = ()
    """GGUF tensors that are config (rope factors), not weights."""
    finish: Finish | None = None

    def hf_names(self, n_layers: int) -> list[str]:
        """Every HF tensor name (without .weight/.bias) of a model of `n_layers`."""
        names = list(self.top)
        for bid in range(n_layers):
            prefix = self.layer_prefix.format(bid=bid)
            names += [prefix + name for name in self.layer]
        return names


def _finish_gpt2(hf: dict[str, Any], file: Any) -> None:
    """llama.cpp's GPT-2 writes 4 * n_embd as the MLP size: the tensors tell the truth;
    its GELU is the tanh approximation (HF's gelu_new)."""
    shape = file.tensor_shape("blk.0.ffn_up.weight")
    if shape is not None:
        hf["n_inner"] = int(shape[0])
    hf["activation_function"] = "gelu_new"


def _finish_neox(hf: dict[str, Any], file: Any) -> None:
    """Partial rotary from the rotary dimension count; parallel residual from its flag."""
    head_dim = hf["hidden_size"] // hf["num_attention_heads"]
    rotary = file.arch_value("rope.dimension_count", head_dim)
    hf["rotary_pct"] = rotary / head_dim
    hf["use_parallel_residual"] = bool(file.arch_value("use_parallel_residual", True))
    hf.setdefault("rope_theta", 10000.0)


def _finish_phi3(hf: dict[str, Any], file: Any) -> None:
    """Partial rotary and LongRoPE factors (stored as tensors) back into rope parameters."""
    rotary = file.arch_value("rope.dimension_count")
    if rotary is not None:
        hf["partial_rotary_factor"] = rotary * hf["num_attention_heads"] / hf["hidden_size"]
    window = file.arch_value("attention.sliding_window")
    hf["sliding_window"] = window or None
    original = file.arch_value("rope.scaling.original_context_length")
    long, short = file.float_tensor("rope_factors_long.weight"), file.float_tensor("rope_factors_short.weight")
    if original is not None:
        hf["original_max_position_embeddings"] = original
    if long is not None and short is not None:
        hf["rope_scaling"] = {
            "rope_type": "longrope", "long_factor": long.tolist(), "short_factor": short.tolist(),
            "original_max_position_embeddings": original,
        }


def _gemma_scale(hf: dict[str, Any], file: Any) -> None:
    """llama.cpp scales Gemma queries by 1/sqrt(head_dim), or by 1/sqrt(hidden/heads) for the
    46-layer (27B) model; HF says the same with query_pre_attn_scalar."""
    if hf["num_hidden_layers"] == 46:
        hf["query_pre_attn_scalar"] = hf["hidden_size"] // hf["num_attention_heads"]
    else:
        hf["query_pre_attn_scalar"] = hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]


def _finish_gemma2(hf: dict[str, Any], file: Any) -> None:
    _gemma_scale(hf, file)
    hf["layer_types"] = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(hf["num_hidden_layers"])]


def _finish_gemma3(hf: dict[str, Any], file: Any) -> None:
    """Sliding layers: five in six (llama.cpp's fixed pattern); their rope base from freq_base_swa."""
    _gemma_scale(hf, file)
    hf["layer_types"] = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(hf["num_hidden_layers"])]
    local = file.arch_value("rope.freq_base_swa")
    if local is not None:
        hf["rope_local_base_freq"] = local


def _finish_sliding(hf: dict[str, Any], file: Any) -> None:
    """A per-layer sliding-window pattern (OLMo 3) into HF's layer_types."""
    pattern = file.arch_value("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        hf["layer_types"] = ["sliding_attention" if p else "full_attention" for p in pattern]


FAMILIES: tuple[Family, ...] = (
    Family(
        "llama", "LlamaForCausalLM", "llama", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *GATED_MLP, "block_sparse_moe.gate"),
        config={**LLAMA_CONFIG, "expert_count": "num_local_experts", "expert_used_count": "num_experts_per_tok"},
        defaults={"hidden_act": "silu"}, permute_qk=True, experts=MIXTRAL_EXPERTS,
        moe_architecture=("MixtralForCausalLM", "mixtral"), config_tensors=("rope_freqs.weight",),
    ),
    Family("qwen2", "Qwen2ForCausalLM", "qwen2", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *GATED_MLP), defaults={"hidden_act": "silu"}),
    Family("qwen3", "Qwen3ForCausalLM", "qwen3", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *QK_NORMS, *GATED_MLP), defaults={"hidden_act": "silu"}),
    Family(
        "qwen3moe", "Qwen3MoeForCausalLM", "qwen3_moe", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *QK_NORMS, "mlp.gate"),
        config={**LLAMA_CONFIG, "expert_count": "num_experts", "expert_used_count": "num_experts_per_tok",
                "expert_feed_forward_length": "moe_intermediate_size"},
        defaults={"hidden_act": "silu", "norm_topk_prob": True}, experts=QWEN_EXPERTS,
    ),
    Family(
        "gemma2", "Gemma2ForCausalLM", "gemma2", LLAMA_TOP, (*SANDWICH_NORMS, *ATTENTION, *GATED_MLP),
        config={**LLAMA_CONFIG, "attn_logit_softcapping": "attn_logit_softcapping",
                "final_logit_softcapping": "final_logit_softcapping", "attention.sliding_window": "sliding_window"},
        defaults={"hidden_activation": "gelu_pytorch_tanh", "attn_logit_softcapping": None, "final_logit_softcapping": None},
        norm_shift=1.0, finish=_finish_gemma2,
    ),
    Family(
        "gemma3", "Gemma3ForCausalLM", "gemma3_text", LLAMA_TOP, (*SANDWICH_NORMS, *ATTENTION, *QK_NORMS, *GATED_MLP),
        config={**LLAMA_CONFIG, "final_logit_softcapping": "final_logit_softcapping", "attention.sliding_window": "sliding_window"},
        defaults={"hidden_activation": "gelu_pytorch_tanh"}, norm_shift=1.0, finish=_finish_gemma3,
    ),
    Family(
        "phi3", "Phi3ForCausalLM", "phi3", LLAMA_TOP, (*LLAMA_NORMS, "self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"),
        defaults={"hidden_act": "silu"}, config_tensors=("rope_factors_long.weight", "rope_factors_short.weight"),
        finish=_finish_phi3,
    ),
    Family(
        "olmo2", "Olmo2ForCausalLM", "olmo2", LLAMA_TOP,
        ("post_attention_layernorm", "post_feedforward_layernorm", *ATTENTION, *QK_NORMS, *GATED_MLP),
        config={**LLAMA_CONFIG, "attention.sliding_window": "sliding_window"}, defaults={"hidden_act": "silu"},
        finish=_finish_sliding,
    ),
    Family(
        "granite", "GraniteForCausalLM", "granite", LLAMA_TOP, (*LLAMA_NORMS, *ATTENTION, *GATED_MLP),
        config={**LLAMA_CONFIG, "attention.scale": "attention_multiplier", "embedding_scale": "embedding_multiplier",
                "residual_scale": "residual_multiplier", "logit_scale": "logits_scaling"},
        defaults={"hidden_act": "silu"}, permute_qk=True, config_tensors=("rope_freqs.weight",),
    ),
    Family(
        "gpt2", "GPT2LMHeadModel", "gpt2", ("transformer.wte", "transformer.wpe", "transformer.ln_f", "lm_head"),
        ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"), layer_prefix="transformer.h.{bid}.",
        config={"context_length": "n_positions", "embedding_length": "n_embd", "block_count": "n_layer",
                "attention.head_count": "n_head", "attention.layer_norm_epsilon": "layer_norm_epsilon"},
        transposed=("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"), finish=_finish_gpt2,
    ),
    Family(
        "gptneox", "GPTNeoXForCausalLM", "gpt_neox", ("gpt_neox.embed_in", "gpt_neox.final_layer_norm", "embed_out"),
        ("input_layernorm", "attention.query_key_value", "attention.dense", "post_attention_layernorm",
         "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"), layer_prefix="gpt_neox.layers.{bid}.",
        config={"context_length": "max_position_embeddings", "embedding_length": "hidden_size", "block_count": "num_hidden_layers",
                "feed_forward_length": "intermediate_size", "attention.head_count": "num_attention_heads",
                "attention.layer_norm_epsilon": "layer_norm_eps", "rope.freq_base": "rope_theta"},
        defaults={"hidden_act": "gelu"}, regroup_qkv=True, finish=_finish_neox,
    ),
)

BY_GGUF_ARCH = {f.gguf_arch: f for f in FAMILIES}
