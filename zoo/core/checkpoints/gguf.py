"""GGUF files (llama.cpp's format) read as HF checkpoints: config, tokenizer and tensors.

The metadata becomes a HF `config.json` dict through the `GGUFLayout` that a
registered architecture declares for the file's `general.architecture`
(`gguf_layout`), the tokenizer is built by transformers' GGUF converters
(`gguf_tokenizer`), and every tensor gets its HF name back (through `gguf`'s
own name map), with llama.cpp's converter changes undone, so the
architecture's own weight mapper applies. F32/F16/BF16 tensors come back as
float tensors; Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K-Q6_K, IQ4_NL and IQ4_XS
weights stay quantized as `QuantizedWeight` (raw GGML rows); any other type is a one-line
error naming the tensor and its type.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.core.architecture import Checkpoint
from zoo.core.errors import UnsupportedModelError, WeightsError

from .arrays import as_bfloat16, rows_in_order
from .gguf_layout import GGUFLayout
from .quantized import ENCODINGS, QuantizedWeight

if TYPE_CHECKING:
    from zoo.core.registry import Registry

MAGIC = b"GGUF"
FLOAT_TYPES = ("F32", "F16", "BF16")
QUANTIZED_TYPES = tuple(e.upper() for e in ENCODINGS if e not in ("bf16", "f16"))


def matches(path: Path) -> bool:
    """Whether `path` is a GGUF file (by its magic bytes)."""
    try:
        with path.open("rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


class GGUFFile:
    """A GGUF file's metadata and tensor index (tensor data stays memory-mapped)."""

    def __init__(self, path: Path) -> None:
        from .gguf_reader import FastArrayReader

        self.path = path
        try:
            # copy-on-write: tensors are views of the file that torch can take as writable
            self.reader = FastArrayReader(str(path), "c")
        except Exception as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise WeightsError(f"cannot read GGUF file {path}: {text}") from None
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.arch = str(self.value("general.architecture", ""))

    def value(self, key: str, default: Any = None) -> Any:
        """A metadata value: int, float (rounded to its float32 decimal), bool, str or a list."""
        if key in self.reader.arrays:
            value = self.reader.arrays[key]
        elif key in self.reader.fields:
            value = self.reader.fields[key].contents()
        else:
            return default
        return [_clean(v) for v in value] if isinstance(value, list) else _clean(value)

    def arch_value(self, suffix: str, default: Any = None) -> Any:
        """`{arch}.{suffix}`, e.g. `llama.context_length`."""
        return self.value(f"{self.arch}.{suffix}", default)

    def tensor_shape(self, name: str) -> tuple[int, ...] | None:
        """A tensor's logical shape in NumPy order (rows first), or None if absent."""
        tensor = self.tensors.get(name)
        return None if tensor is None else tuple(int(d) for d in reversed(tensor.shape.tolist()))

    def float_tensor(self, name: str) -> np.ndarray | None:
        """A (small) float tensor's values as float32, or None if absent."""
        tensor = self.tensors.get(name)
        if tensor is None:
            return None
        from gguf.quants import dequantize

        return np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32).reshape(self.tensor_shape(name))


def _clean(value: Any) -> Any:
    """float32 metadata (1e-5 stored as 9.99999974e-06) back to the decimal it was written from."""
    if isinstance(value, float):
        return float(str(np.float32(value)))
    return value


def layout_of(file: GGUFFile, registry: Registry | None = None) -> tuple[str, GGUFLayout]:
    """The registered architecture (HF name) whose GGUF layout reads `file`, and that layout.

    Where several declare the file's llama.cpp architecture, the one whose `for_experts`
    says whether the file has experts is chosen."""
    if registry is None:
        from zoo.core.resolve import default_registry

        registry = default_registry()
    layouts = [(a.name, a.gguf) for a in registry.architectures.values() if a.gguf is not None]
    found = [(name, layout) for name, layout in layouts if layout.gguf_arch == file.arch]
    if not found:
        known = ", ".join(sorted({layout.gguf_arch for _, layout in layouts})) or "none"
        raise UnsupportedModelError(f"GGUF architecture {file.arch or 'unnamed'!r} is not supported (supported: {known})")
    has_experts = bool(file.arch_value("expert_count", 0))
    return min(found, key=lambda item: item[1].for_experts != has_experts)


def hf_config(file: GGUFFile, registry: Registry | None = None) -> dict[str, Any]:
    """The HF `config.json` the file was converted from, as far as its metadata tells."""
    architecture, family = layout_of(file, registry)
    config: dict[str, Any] = {}
    for key, hf_name in family.config.items():
        value = file.arch_value(key)
        if isinstance(value, list):
            raise UnsupportedModelError(f"GGUF {file.arch}.{key} varies per layer ({value[:4]}...); zoo needs one value")
        if value is not None:
            config[hf_name] = value
    for hf_name, value in family.defaults.items():
        config.setdefault(hf_name, value)
    embed = file.tensor_shape(_gguf_name(family, family.top[0]) + ".weight")
    if embed is None:
        raise WeightsError(f"{file.path} has no token embedding tensor")
    config.update(architectures=[architecture], model_type=family.model_type, vocab_size=embed[0])
    config["tie_word_embeddings"] = "output.weight" not in file.tensors
    if any(name.endswith(".attn_q.bias") for name in file.tensors):
        config["attention_bias"] = True
    if any(name.endswith((".ffn_up.bias", ".ffn_down.bias")) for name in file.tensors) and family.mlp_bias_flag:
        config["mlp_bias"] = True
    _rope_scaling(file, config)
    _special_tokens(file, config)
    divisors = file.float_tensor("rope_freqs.weight")
    if divisors is not None:
        from .gguf_rope import llama3_scaling

        head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        dim = file.arch_value("rope.dimension_count", head_dim)
        config["rope_scaling"] = llama3_scaling(divisors, dim, config.get("rope_theta", 10000.0)) or None
    if family.finish is not None:
        family.finish(config, file)
    return config


def _rope_scaling(file: GGUFFile, config: dict[str, Any]) -> None:
    kind = file.arch_value("rope.scaling.type")
    if kind in (None, "none"):
        return
    scaling: dict[str, Any] = {"rope_type": kind}
    for key, hf_name in (("factor", "factor"), ("original_context_length", "original_max_position_embeddings"),
                         ("yarn_beta_fast", "beta_fast"), ("yarn_beta_slow", "beta_slow"),
                         ("yarn_attn_factor", "attention_factor")):
        value = file.arch_value(f"rope.scaling.{key}")
        if value is not None:
            scaling[hf_name] = value
    config["rope_scaling"] = scaling


def _special_tokens(file: GGUFFile, config: dict[str, Any]) -> None:
    bos = file.value("tokenizer.ggml.bos_token_id")
    pad = file.value("tokenizer.ggml.padding_token_id")
    if pad is not None:
        config["pad_token_id"] = pad
    eos = [file.value(f"tokenizer.ggml.{kind}_token_id") for kind in ("eos", "eot", "eom")]
    eos = list(dict.fromkeys(e for e in eos if e is not None))
    if bos is not None:
        config["bos_token_id"] = bos
    if eos:
        config["eos_token_id"] = eos[0] if len(eos) == 1 else eos


def read_config(path: Path, registry: Registry | None = None) -> dict[str, Any]:
    """The HF-style `config.json` of a GGUF file, from its metadata alone."""
    return hf_config(GGUFFile(path), registry)


def _gguf_name(family: GGUFLayout, hf_name: str) -> str:
    return gguf_names(family, 1).get(hf_name, hf_name)


def gguf_names(family: GGUFLayout, n_layers: int) -> dict[str, str]:
    """HF tensor name -> GGUF tensor name (both without .weight/.bias), by `gguf`'s name map."""
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map

    arch = next(a for a, name in MODEL_ARCH_NAMES.items() if name == family.gguf_arch)
    name_map = get_tensor_name_map(arch, n_layers)
    found = {}
    for hf_name in family.hf_names(n_layers):
        gguf_name = name_map.get_name(hf_name)
        if gguf_name is not None:
            found[hf_name] = gguf_name
    return found


def read_tensors(file: GGUFFile, config: Mapping[str, Any], registry: Registry | None = None) -> dict[str, Any]:
    """Every tensor of the file by HF name, with llama.cpp's converter changes undone."""
    _, family = layout_of(file, registry)
    n_layers = int(config.get("num_hidden_layers") or config.get("n_layer"))
    to_hf = {g: h for h, g in gguf_names(family, n_layers).items()}
    tensors: dict[str, Any] = {}
    for name, tensor in file.tensors.items():
        if name in family.config_tensors:
            continue
        base, _, kind = name.rpartition(".")
        block, _, short = base.partition(".")[2].partition(".")
        if short in family.experts and base.startswith("blk."):
            hf_base = family.layer_prefix.format(bid=int(block)) + family.experts[short]
            for xid, part in enumerate(_experts(name, tensor)):
                tensors[f"{hf_base.format(xid=xid)}.{kind}"] = part
            continue
        hf_base = to_hf.get(base)
        if hf_base is None:
            tensors[name] = _value(name, tensor)  # unknown: the loader names it as unexpected
            continue
        tensors[f"{hf_base}.{kind}"] = _undo_conversion(family, config, hf_base, kind, _value(name, tensor))
    return tensors


def _value(name: str, tensor: Any) -> Any:
    """A GGUF tensor as a NumPy float array (a torch one for BF16, which NumPy lacks) or a
    QuantizedWeight; other types are refused."""
    kind = tensor.tensor_type.name
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    # float tensors are views of the mapped file: the weight arena copies them once
    if kind == "F32":
        return np.asarray(tensor.data).view(np.float32).reshape(shape)
    if kind == "F16":
        return np.asarray(tensor.data).view(np.float16).reshape(shape)
    if kind == "BF16":
        return as_bfloat16(np.asarray(tensor.data).view(np.uint16)).reshape(shape)
    if kind in QUANTIZED_TYPES:
        data = np.asarray(tensor.data)
        if len(shape) == 2:
            return QuantizedWeight(kind.lower(), shape, data)
        from gguf.quants import dequantize

        return np.asarray(dequantize(data, tensor.tensor_type), dtype=np.float32).reshape(shape)
    supported = ", ".join((*FLOAT_TYPES, *QUANTIZED_TYPES))
    raise WeightsError(f"tensor {name} has type {kind}, which zoo cannot run (supported: {supported})")


def _experts(name: str, tensor: Any) -> list[Any]:
    """A stacked (experts, rows, cols) GGUF tensor split into one 2-D weight per expert."""
    kind = tensor.tensor_type.name
    experts, rows, cols = (int(d) for d in reversed(tensor.shape.tolist()))
    if kind in QUANTIZED_TYPES:
        data = np.asarray(tensor.data).reshape(experts, rows, -1)
        return [QuantizedWeight(kind.lower(), (rows, cols), data[j]) for j in range(experts)]
    value = _value(name, tensor)
    return [value[j] for j in range(experts)]  # views of the file, as 2-D tensors are


def _undo_conversion(family: GGUFLayout, config: Mapping[str, Any], hf_name: str, kind: str, value: Any) -> Any:
    """Undoes what llama.cpp's converter did to this tensor (row orders, norm offsets, transposes)."""
    if family.permute_qk and hf_name.endswith(("q_proj", "k_proj")):
        heads = config["num_attention_heads"] if hf_name.endswith("q_proj") else config.get("num_key_value_heads", config["num_attention_heads"])
        return take_rows(value, interleaved_rotary_order(_rows(value), heads))
    if family.regroup_qkv and hf_name.endswith("query_key_value"):
        return take_rows(value, per_head_qkv_order(_rows(value), config["num_attention_heads"]))
    if family.norm_shift and kind == "weight" and "norm" in hf_name.rsplit(".", 1)[-1]:
        return value - family.norm_shift
    transposed = bool(family.transposed) and hf_name.endswith(family.transposed)
    if transposed and kind == "weight" and not isinstance(value, QuantizedWeight):
        return value.T
    return value


def _rows(value: Any) -> int:
    return int(value.shape[0])


def interleaved_rotary_order(rows: int, heads: int) -> np.ndarray:
    """HF row order of q/k rows stored as llama.cpp's converter permutes them: within a head,
    GGUF row 2i + j is HF row j * head_dim / 2 + i."""
    half = rows // heads // 2
    return np.arange(rows).reshape(heads, half, 2).transpose(0, 2, 1).reshape(-1)


def per_head_qkv_order(rows: int, heads: int) -> np.ndarray:
    """HF row order of fused q/k/v rows grouped per head (q, k, v per head) from GGUF's (all q, all k, all v)."""
    head_dim = rows // 3 // heads
    return np.arange(rows).reshape(3, heads, head_dim).transpose(1, 0, 2).reshape(-1)


def take_rows(value: Any, order: np.ndarray) -> Any:
    """Rows of a float tensor (or bias) or a QuantizedWeight in `order` (a copy: the file pages
    `value` views are given back)."""
    from zoo.core.weight_arena import release_pages

    if isinstance(value, QuantizedWeight):
        taken = value.take_rows(order)
        release_pages(value.data)
        return taken
    taken = rows_in_order(value, order)
    release_pages(value)
    return taken


def load(path: Path, tokenizer_path: Path | None = None, registry: Registry | None = None) -> Checkpoint:
    """Reads a GGUF file into a HF-style `Checkpoint` (config, tensors by HF name, tokenizer)."""
    from .gguf_tokenizer import gguf_tokenizer
    from .tokenizer import DeferredTokenizer

    file = GGUFFile(path)
    _, family = layout_of(file, registry)
    config = hf_config(file, registry)
    tensors = read_tensors(file, config, registry)
    if tokenizer_path is not None:
        from .tokenizer import load_tokenizer

        tokenizer = load_tokenizer(tokenizer_path)
    else:  # transformers' converters take about 1.4 s to import: only when something tokenizes
        tokenizer = DeferredTokenizer(lambda: gguf_tokenizer(file, family.sentencepiece_converter))
    kinds = sorted({t.tensor_type.name for t in file.tensors.values()})
    extra = {"format": "gguf", "tensor_types": kinds, "tokenizer_from_file": tokenizer_path is None}
    return Checkpoint(config, tensors, tokenizer, source=str(path), extra=extra)
