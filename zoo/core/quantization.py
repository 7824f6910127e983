"""Which weights run encoded (`QuantizedWeight`), and in which encoding.

A model's projections and token embedding can hold their weight encoded
(`blocks.linear.EncodedWeight`); everything else (norms, biases, position
embeddings, MoE routers) is always float. `prepare_weights` takes a mapped
checkpoint and returns what the model will hold: encoded weights where a
module can hold them (re-encoded with `--quantize TYPE`), float elsewhere.

`--quantize TYPE` follows llama-quantize's choices for a "mostly TYPE"
model: every projection and the token embedding in TYPE, the output
projection (or the token embedding, when the two are tied) in q6_k for the
4- to 6-bit types (q8_0 stays q8_0, bf16 stays bf16), MoE routers float.
A K-quant needs rows of a multiple of 256 values and the 32-value types a
multiple of 32; a weight whose rows do not fit takes llama.cpp's fallback
(q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0), or stays float.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .checkpoints.arrays import is_torch
from .checkpoints.quantized import QuantizedWeight, StackedRows, as_float32, fitting_encoding, parts_of
from .errors import OptionsError

QUANTIZE_TYPES = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k", "bf16")
_KEEP_FLOAT_SUFFIXES = ("router.weight",)


def check_quantize(name: str | None) -> None:
    """`--quantize` must name a type zoo can encode and run."""
    if name is not None and name not in QUANTIZE_TYPES:
        raise OptionsError(f"unknown --quantize type {name!r} (choose {', '.join(QUANTIZE_TYPES)})")


def output_weight(names: set[str], tied: bool) -> str:
    """The mapped name of the output projection's weight."""
    return "embed_tokens.weight" if tied or "lm_head.weight" not in names else "lm_head.weight"


def choose_encoding(name: str, columns: int, quantize: str, output: str) -> str | None:
    """The encoding `--quantize quantize` gives the weight `name` with rows of `columns`
    values (`output` names the output projection), or None to keep it float."""
    if name.endswith(_KEEP_FLOAT_SUFFIXES):
        return None
    wanted = quantize
    if name == output and quantize not in ("q8_0", "bf16"):
        wanted = "q6_k"
    return fitting_encoding(wanted, columns)


def prepare_weights(
    mapped: dict[str, Any], holders: set[str], *, quantize: str | None, keep_encoded: bool, output: str
) -> dict[str, Any]:
    """What the model holds for each mapped weight: encoded (`QuantizedWeight`, or
    `StackedRows` for fused parts in different encodings) where the weight's module can
    hold it (`holders`) and encodings are kept (`keep_encoded`), re-encoded whole in the
    `--quantize` encoding when one is asked; float (NumPy float32 for decoded weights)
    everywhere else. A bfloat16 or float16 weight a module can hold stays in its 16 bits
    (`as_stored`), as a quantized one stays encoded.

    The weights are taken out of `mapped` one at a time (it is left empty): a weight
    re-encoded or decoded here is let go, and its file pages given back, as soon as what
    replaces it is made."""
    prepared: dict[str, Any] = {}
    while mapped:
        name = next(iter(mapped))
        tensor = mapped.pop(name)
        encoded = isinstance(tensor, (QuantizedWeight, StackedRows))
        if not (keep_encoded and name in holders):
            prepared[name] = _replacing(tensor, tensor.dequantize()) if encoded else tensor
        elif quantize is None:
            prepared[name] = tensor if encoded else (as_stored(tensor) or tensor)
        else:
            wanted = choose_encoding(name, int(tensor.shape[1]), quantize, output)
            if wanted is None:
                prepared[name] = _replacing(tensor, as_float32(tensor)) if encoded else tensor
            elif isinstance(tensor, QuantizedWeight) and tensor.encoding == wanted:
                prepared[name] = tensor
            else:
                prepared[name] = _replacing(tensor, QuantizedWeight.quantize(as_float32(tensor), wanted))
        del tensor
    return prepared


def _replacing(source: Any, made: Any) -> Any:
    """`made`, having given back the file pages that `source` (which it replaces) views."""
    from .weight_arena import release_pages

    release_pages(*(part.data if isinstance(part, QuantizedWeight) else part for part in parts_of(source)))
    return made


_STORED_ENCODINGS = {"bfloat16": "bf16", "float16": "f16"}  # by dtype name, NumPy's or torch's


def _stored_encoding(tensor: Any) -> str | None:
    """`bf16` / `f16` for a 2-D bfloat16 / float16 tensor (torch or NumPy), else None."""
    if getattr(tensor, "ndim", 0) != 2:
        return None
    return _STORED_ENCODINGS.get(str(getattr(tensor, "dtype", "")).removeprefix("torch."))


def as_stored(tensor: Any) -> QuantizedWeight | None:
    """A 2-D bfloat16 or float16 tensor (torch or NumPy) as `bf16` / `f16` rows of the same
    bits (no rounding), or None for anything else."""
    encoding = _stored_encoding(tensor)
    if encoding is None:
        return None
    rows, cols = (int(d) for d in tensor.shape)
    if is_torch(tensor):
        import torch

        tensor = tensor.detach().contiguous().view(torch.int16).numpy()
    raw = np.ascontiguousarray(tensor).view(np.uint8).reshape(rows, 2 * cols)
    return QuantizedWeight(encoding, (rows, cols), raw)


def holds_low_precision(tensors: Mapping[str, Any]) -> bool:
    """Whether a checkpoint has weights that run encoded without `--quantize`: quantized
    ones, or 2-D bfloat16 / float16 ones."""
    return any(
        isinstance(t, (QuantizedWeight, StackedRows)) or _stored_encoding(t) is not None for t in tensors.values()
    )


def bytes_per_token(weights: Mapping[str, Any], *, tied: bool, itemsize: int) -> int:
    """Weight bytes one decode step reads: every weight as held (float ones at `itemsize`
    bytes per value), except lookup tables (the token embedding unless it is also the
    output projection, position embeddings), of which a step reads one row. MoE models
    count every expert (a step reads only the routed ones)."""
    return sum(
        held_bytes(tensor, itemsize)
        for name, tensor in weights.items()
        if not ((name == "embed_tokens.weight" and not tied) or name.startswith("learned_positions."))
    )


def held_bytes(tensor: Any, itemsize: int) -> int:
    """Bytes one weight takes as held: encoded parts as stored, float ones at `itemsize` bytes a value."""
    return sum(
        part.nbytes if isinstance(part, QuantizedWeight) else int(np.prod(tuple(part.shape))) * itemsize
        for part in parts_of(tensor)
    )


def weight_encodings(weights: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """Each weight's name with the encodings of its parts ("float" for float ones), sorted.
    They shape the graph beyond the held bytes' shapes: bf16 and f16 rows of one weight
    are bytes of the same shape."""
    return sorted(
        (name, tuple(part.encoding if isinstance(part, QuantizedWeight) else "float" for part in parts_of(tensor)))
        for name, tensor in weights.items()
    )


def describe_encodings(weights: Mapping[str, Any]) -> dict[str, int]:
    """How many weights (or parts of fused weights) each encoding holds ("float" for the rest)."""
    counts: dict[str, int] = {}
    for tensor in weights.values():
        for part in parts_of(tensor):
            key = part.encoding if isinstance(part, QuantizedWeight) else "float"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
