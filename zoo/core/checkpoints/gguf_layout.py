"""How a llama.cpp architecture in a GGUF file maps to a HF checkpoint: the `GGUFLayout` an
`Architecture` declares (its `gguf` field), and the pieces layouts share.

A layout names the llama.cpp architecture and the HF `model_type`, the HF
tensor names of the family (top level, and per layer relative to
`layer_prefix`), the HF `config.json` fields read from the GGUF metadata,
the fields llama.cpp's architecture implies, and how llama.cpp's converter
changed the tensors (q/k rows permuted for interleaved rotary, norms stored
as 1 + w, fused q/k/v regrouped, Conv1D weights transposed). Its `finish`
fills the HF fields the metadata implies, and its `metadata` adds the keys
the converter writes for the family beyond `base_metadata`'s.

The GGUF tensor names are not written here: `gguf`'s own name map
(`gguf.get_tensor_name_map`, the table llama.cpp's converter uses) turns each
HF name into the GGUF one, so a new family is a new layout (HF names + config
fields), not new code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# GGUF metadata key (after "{arch}.") -> HF config.json field, shared by the Llama-named families.
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

# A finishing step: (HF config being built, the `GGUFFile`) -> fills derived fields in place.
Finish = Callable[[dict[str, Any], Any], None]
# A metadata step: (`{arch}.*` keys from `base_metadata`, the HF config) -> the family's keys, in place.
Metadata = Callable[[dict[str, Any], Mapping[str, Any]], None]


@dataclass(frozen=True)
class GGUFLayout:
    """One llama.cpp architecture read back as (and written from) the HF architecture declaring it."""

    gguf_arch: str
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
    """Stored norm weights are the HF weights plus this (1.0 for norms computed as 1 + w)."""
    transposed: tuple[str, ...] = ()
    """HF names (per layer) HF stores as (in, out) (Conv1D); GGUF stores (out, in)."""
    regroup_qkv: bool = False
    """HF's fused q/k/v rows are grouped per head, GGUF's per projection."""
    experts: Mapping[str, str] = field(default_factory=dict)
    """GGUF stacked-expert tensor (per layer) -> the per-expert HF name (`{xid}`)."""
    for_experts: bool = False
    """Where several architectures share `gguf_arch`, this one reads the files that have experts
    (`{arch}.expert_count` > 0); the others read the files without."""
    config_tensors: tuple[str, ...] = ()
    """GGUF tensors that are config (rope factors), not weights."""
    finish: Finish | None = None
    """Fills the HF fields the metadata implies (after the mapped and default ones)."""
    metadata: Metadata | None = None
    """Changes `base_metadata`'s keys into the ones the converter writes for this family."""
    file_type: bool = True
    """The converter writes `general.file_type`."""
    tied_by_default: bool = False
    """A config without `tie_word_embeddings` ties the output to the embedding."""
    mlp_bias_flag: bool = True
    """Feed-forward biases in the file set HF's `mlp_bias` (False where the MLP always has them)."""
    sentencepiece_converter: str = "llama"
    """transformers' GGUF tokenizer converter for the family's sentencepiece vocabularies."""
    sentencepiece_space_prefix: bool = True
    """False: the converter stores add_space_prefix = false after a sentencepiece vocabulary."""
    bpe_prefix_from_config: bool = False
    """The converter passes the tokenizer's add_prefix_space on for a byte-level BPE vocabulary."""

    def hf_names(self, n_layers: int) -> list[str]:
        """Every HF tensor name (without .weight/.bias) of a model of `n_layers`."""
        names = list(self.top)
        for bid in range(n_layers):
            prefix = self.layer_prefix.format(bid=bid)
            names += [prefix + name for name in self.layer]
        return names


# --- helpers the families' finish and metadata steps share ---------------------------------------


def first_of(hf: Mapping[str, Any], *names: str) -> Any:
    """The first of `names` set (not None) in the HF config, or None."""
    for name in names:
        if hf.get(name) is not None:
            return hf[name]
    return None


def head_dim(hf: Mapping[str, Any]) -> int:
    """The HF config's head_dim, or hidden size / heads."""
    return int(hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"])


def vocab_and_rotary_dims(meta: dict[str, Any], hf: Mapping[str, Any]) -> None:
    """`vocab_size` and `rope.dimension_count` (the whole head), as the converter writes them."""
    meta["vocab_size"] = int(hf["vocab_size"])
    meta["rope.dimension_count"] = head_dim(hf)


def query_scalar_by_size(hf: dict[str, Any]) -> None:
    """HF's `query_pre_attn_scalar` for the llama.cpp architectures that choose the query scale by
    model size: 1/sqrt(head_dim), but 1/sqrt(hidden/heads) for the 46-layer model."""
    if hf["num_hidden_layers"] == 46:
        hf["query_pre_attn_scalar"] = hf["hidden_size"] // hf["num_attention_heads"]
    else:
        hf["query_pre_attn_scalar"] = hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
