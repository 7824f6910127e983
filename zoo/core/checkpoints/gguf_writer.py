"""Writing a checkpoint zoo has read as a GGUF file that llama.cpp loads (`zoo quantize`).

The file is laid out as llama.cpp's own tools make it, following the
`GGUFLayout` the architecture declares: the metadata keys its converter
(`convert_hf_to_gguf.py`) writes for the family, GGUF tensor names (through
`gguf`'s name map, as in the reader), tensors changed back the way the
converter changes them (q/k rows permuted, norms as 1 + w, fused q/k/v
regrouped, Conv1D weights transposed, experts stacked), the tokenizer as the
converter stores it, and tensor types chosen as `llama-quantize` chooses them
for the target (Q4_K is its Q4_K_M mix: Q6_K for the output and for attn_v /
ffn_down in the layers it favours).
Where a row length does not fit a type's blocks, the tensor falls back to
another type as llama.cpp's does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
then F16).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.core.errors import OptionsError, UnsupportedModelError, WeightsError

from .gguf import QUANTIZED_TYPES, gguf_names, interleaved_rotary_order, per_head_qkv_order
from .gguf_layout import GGUFLayout, first_of, head_dim
from .quantized import QuantizedWeight, as_float32, fitting_encoding

if TYPE_CHECKING:
    from zoo.core.architecture import Architecture
    from zoo.core.registry import Registry

# --to NAME -> (llama.cpp file type, default tensor type)
TARGETS = {
    "f32": ("ALL_F32", "F32"),
    "f16": ("MOSTLY_F16", "F16"),
    "bf16": ("MOSTLY_BF16", "BF16"),
    "q8_0": ("MOSTLY_Q8_0", "Q8_0"),
    "q4_0": ("MOSTLY_Q4_0", "Q4_0"),
    "q4_1": ("MOSTLY_Q4_1", "Q4_1"),
    "q5_0": ("MOSTLY_Q5_0", "Q5_0"),
    "q5_1": ("MOSTLY_Q5_1", "Q5_1"),
    "q4_k": ("MOSTLY_Q4_K_M", "Q4_K"),
    "q5_k": ("MOSTLY_Q5_K_M", "Q5_K"),
    "q6_k": ("MOSTLY_Q6_K", "Q6_K"),
}


@dataclass
class WrittenFile:
    """What `write_gguf` wrote: the path and the GGUF tensor types, by tensor."""

    path: Path
    file_type: str
    types: dict[str, str] = field(default_factory=dict)

    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind in self.types.values():
            counts[kind] = counts.get(kind, 0) + 1
        return counts


def layout_for(architecture: Architecture, registry: Registry) -> GGUFLayout:
    """The GGUF layout the architecture declares; an error naming the ones that declare one if none."""
    if architecture.gguf is not None:
        return architecture.gguf
    known = ", ".join(sorted(a.name for a in registry.architectures.values() if a.gguf is not None)) or "none"
    raise UnsupportedModelError(f"zoo cannot write {architecture.name} as GGUF (it writes: {known})")


# --- metadata -----------------------------------------------------------------------------------


def _rope(hf: Mapping[str, Any]) -> tuple[float | None, dict[str, Any]]:
    from zoo.core.blocks.rope import rope_settings

    params = hf.get("rope_parameters") or {}
    if "full_attention" in params:  # rope parameters per layer kind (full / sliding)
        full = dict(params["full_attention"])
        return full.get("rope_theta"), {k: v for k, v in full.items() if k != "rope_theta"}
    has_theta = hf.get("rope_theta") is not None or "rope_theta" in params
    theta, scaling = rope_settings(hf)
    return (theta if has_theta else None), scaling


def base_metadata(family: GGUFLayout, hf: Mapping[str, Any]) -> dict[str, Any]:
    """`{arch}.*` keys llama.cpp's converter writes for most families, from a HF config."""
    meta: dict[str, Any] = {}
    values = {
        "block_count": first_of(hf, "num_hidden_layers", "n_layer"),
        "context_length": first_of(hf, "max_position_embeddings", "n_ctx", "n_positions"),
        "embedding_length": first_of(hf, "hidden_size", "n_embd"),
        "feed_forward_length": first_of(hf, "intermediate_size", "n_inner"),
        "attention.head_count": first_of(hf, "num_attention_heads", "n_head"),
        "attention.head_count_kv": first_of(hf, "num_key_value_heads"),
    }
    meta.update({k: int(v) for k, v in values.items() if v is not None})
    theta, scaling = _rope(hf)
    kind = scaling.get("rope_type")
    if kind == "linear":
        meta["rope.scaling.type"] = "linear"
        meta["rope.scaling.factor"] = float(scaling["factor"])
    elif kind == "longrope":
        meta["rope.scaling.type"] = "longrope"
    elif kind not in (None, "default", "llama3"):
        raise UnsupportedModelError(f"zoo cannot write rope scaling {kind!r} as GGUF")
    if theta is not None:
        meta["rope.freq_base"] = float(theta)
    if (eps := first_of(hf, "rms_norm_eps")) is not None:
        meta["attention.layer_norm_rms_epsilon"] = float(eps)
    if (eps := first_of(hf, "layer_norm_eps", "layer_norm_epsilon")) is not None:
        meta["attention.layer_norm_epsilon"] = float(eps)
    if (experts := first_of(hf, "num_local_experts", "num_experts")) is not None:
        meta["expert_count"] = int(experts)
    if (used := first_of(hf, "num_experts_per_tok")) is not None:
        meta["expert_used_count"] = int(used)
    if hf.get("head_dim") is not None:
        meta["attention.key_length"] = meta["attention.value_length"] = int(hf["head_dim"])
    return meta


def arch_metadata(family: GGUFLayout, hf: Mapping[str, Any]) -> dict[str, Any]:
    """Every `{arch}.*` key the converter writes for the family."""
    meta = base_metadata(family, hf)
    if family.metadata is not None:
        family.metadata(meta, hf)
    return meta


# --- tensors --------------------------------------------------------------------------------------


def gguf_tensors(family: GGUFLayout, hf: Mapping[str, Any], tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """HF-named tensors -> float32 arrays by GGUF name, changed as llama.cpp's converter changes them."""
    n_layers = int(first_of(hf, "num_hidden_layers", "n_layer"))
    names = gguf_names(family, n_layers)
    tied = bool(hf.get("tie_word_embeddings", family.tied_by_default))
    out: dict[str, np.ndarray] = {}
    experts: dict[str, dict[int, np.ndarray]] = {}
    expert_names = _expert_names(family, n_layers)
    for name, value in tensors.items():
        base, _, kind = name.rpartition(".")
        if name.endswith((".rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias")) or (tied and base == "lm_head"):
            continue
        if base in expert_names:
            target, xid = expert_names[base]
            experts.setdefault(f"{target}.{kind}", {})[xid] = as_float32(value)
            continue
        gguf_base = names.get(base)
        if gguf_base is None:
            raise WeightsError(f"zoo does not know where {name} goes in a {family.gguf_arch} GGUF file")
        array = _redo_conversion(family, hf, base, kind, value)
        out[f"{gguf_base}.{kind}"] = np.ascontiguousarray(array, dtype=np.float32)
    for target, parts in experts.items():
        out[target] = np.stack([parts[j] for j in sorted(parts)])
    return out


def _expert_names(family: GGUFLayout, n_layers: int) -> dict[str, tuple[str, int]]:
    """Per-expert HF name -> (stacked GGUF name, expert index), for up to 512 experts."""
    found = {}
    for bid in range(n_layers):
        prefix = family.layer_prefix.format(bid=bid)
        for gguf_short, hf_template in family.experts.items():
            for xid in range(512):
                found[prefix + hf_template.format(xid=xid)] = (f"blk.{bid}.{gguf_short}", xid)
    return found


def _redo_conversion(family: GGUFLayout, hf: Mapping[str, Any], base: str, kind: str, value: Any) -> np.ndarray:
    was_quantized = isinstance(value, QuantizedWeight)
    array = as_float32(value)
    if family.permute_qk and base.endswith(("q_proj", "k_proj")):
        heads = hf["num_attention_heads"] if base.endswith("q_proj") else hf.get("num_key_value_heads") or hf["num_attention_heads"]
        return array[np.argsort(interleaved_rotary_order(array.shape[0], heads))]
    if family.regroup_qkv and base.endswith("query_key_value"):
        return array[np.argsort(per_head_qkv_order(array.shape[0], hf["num_attention_heads"]))]
    if family.norm_shift and kind == "weight" and "norm" in base.rsplit(".", 1)[-1]:
        return array + family.norm_shift
    if family.transposed and base.endswith(family.transposed) and kind == "weight" and not was_quantized:
        return array.T
    return array


def extra_tensors(family: GGUFLayout, hf: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Tensors the converter adds from the config: Llama 3's rope divisors (for the families that
    read them back, `rope_freqs` among their config tensors), LongRoPE's factors."""
    theta, scaling = _rope(hf)
    kind = scaling.get("rope_type")
    if kind == "llama3" and "rope_freqs.weight" in family.config_tensors:
        from .gguf_rope import rope_factors

        return {"rope_freqs.weight": rope_factors(scaling, head_dim(hf), theta or 10000.0)}
    if kind == "longrope":
        return {f"rope_factors_{which}.weight": np.asarray(scaling[f"{which}_factor"], dtype=np.float32)
                for which in ("long", "short")}
    if kind == "llama3":
        raise UnsupportedModelError(f"zoo cannot write Llama 3 rope scaling for {family.gguf_arch} as GGUF")
    return {}


# --- tensor types ------------------------------------------------------------------------------------


def _use_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's choice of layers whose attn_v / ffn_down get more bits in Q4_K_M and Q5_K_M."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def _quantizable(name: str, array: np.ndarray) -> bool:
    return (
        array.ndim >= 2 and name.endswith(".weight") and not name.endswith("_norm.weight")
        and "ffn_gate_inp" not in name and name != "position_embd.weight"
    )


def tensor_type(name: str, array: np.ndarray, target: str, hf: Mapping[str, Any], tied: bool) -> str:
    """The GGUF type `llama-quantize` (or the converter, for float targets) gives this tensor."""
    if not _quantizable(name, array):
        return "F32"
    default = TARGETS[target][1]
    if default not in QUANTIZED_TYPES:
        return default
    kind = default
    layers = int(first_of(hf, "num_hidden_layers", "n_layer"))
    experts = int(first_of(hf, "num_local_experts", "num_experts") or 0)
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    cols = array.shape[-1]
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        kind = "Q8_0" if default == "Q8_0" else "Q6_K"
    elif target in ("q4_k", "q5_k"):
        short = name.split(".")[2] if layer >= 0 else ""
        if short == "attn_v" and _use_more_bits(layer, layers):
            kind = "Q6_K"
        elif short in ("ffn_down", "ffn_down_exps") and _use_more_bits(layer, layers):
            kind = "Q6_K"
        elif short == "attn_output" and experts == 8 and target == "q4_k":
            kind = "Q5_K"
        elif short == "attn_qkv":
            kind = "Q5_K" if target == "q4_k" else "Q6_K"
    if experts == 8 and name.endswith(("attn_v.weight", "attn_k.weight")):
        kind = "Q8_0"  # every type: llama.cpp spends the few bytes on the 8-expert models' shared k/v
    fitting = fitting_encoding(kind.lower(), cols)
    return fitting.upper() if fitting else "F16"


def encode(array: np.ndarray, kind: str) -> np.ndarray:
    """float32 -> the bytes (or floats) GGUF stores for `kind`."""
    if kind == "F32":
        return array.astype(np.float32)
    if kind == "F16":
        return array.astype(np.float16)
    flat = array.reshape(-1, array.shape[-1])
    data = QuantizedWeight.quantize(flat, kind.lower()).data
    return data.reshape(*array.shape[:-1], data.shape[-1])


# --- the file ---------------------------------------------------------------------------------------------


def write_gguf(
    family: GGUFLayout,
    hf: Mapping[str, Any],
    tensors: Mapping[str, Any],
    out: Path,
    target: str,
    tokenizer_fields: Callable[[Any], None],
    name: str,
) -> WrittenFile:
    """Writes `tensors` (HF names) of a model with HF config `hf` as a GGUF file of `target` type,
    laid out as `family` says; `tokenizer_fields(writer)` adds the tokenizer metadata."""
    import gguf

    if target not in TARGETS:
        raise OptionsError(f"unknown target type {target!r} (choose {', '.join(TARGETS)})")
    arrays = {**extra_tensors(family, hf), **gguf_tensors(family, hf, tensors)}
    tied = "output.weight" not in arrays
    file_type = gguf.LlamaFileType[TARGETS[target][0]]
    writer = gguf.GGUFWriter(str(out), family.gguf_arch)
    written = WrittenFile(out, file_type.name)
    for tensor_name, array in arrays.items():
        kind = tensor_type(tensor_name, array, target, hf, tied)
        written.types[tensor_name] = kind
        data = encode(array, kind)
        writer.add_tensor(tensor_name, data, raw_dtype=gguf.GGMLQuantizationType[kind])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    total, shared, expert, count = writer.get_total_parameter_count()
    writer.add_size_label(gguf.size_label(total, shared, expert, count))
    for key, value in arch_metadata(family, hf).items():
        _add(writer, f"{family.gguf_arch}.{key}", value)
    if family.file_type:
        writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokenizer_fields(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return written


def _add(writer: Any, key: str, value: Any) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, list):
        writer.add_array(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    else:
        writer.add_float32(key, float(value))
