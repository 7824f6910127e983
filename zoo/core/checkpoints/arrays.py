"""Host arrays as checkpoints hold them, without importing torch for NumPy ones.

Readers give NumPy arrays (float32, float16, bfloat16 as ml_dtypes' type,
integers), and torch tensors only for `pytorch_model.bin` files: a run from
safetensors or GGUF never imports torch unless it asks for `--dtype bfloat16`
or a GPU. Mappers and the loader use these helpers on either kind.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np


def is_torch(value: object) -> bool:
    """Whether `value` is a torch tensor (torch is not imported to find out)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def concat(parts: Sequence[Any]) -> Any:
    """The parts' rows, one after another (a torch tensor if any part is one)."""
    if any(is_torch(p) for p in parts):
        import torch

        return torch.cat([p if is_torch(p) else torch.from_numpy(p) for p in parts], dim=0)
    return np.concatenate(parts, axis=0)


def contiguous(value: Any) -> Any:
    """`value` in C order (itself when it already is)."""
    return value.contiguous() if is_torch(value) else np.ascontiguousarray(value)


def rows_in_order(value: Any, order: np.ndarray) -> Any:
    """A copy of `value`'s rows in `order`."""
    if is_torch(value):
        import torch

        return value[torch.from_numpy(order)].contiguous()
    return np.ascontiguousarray(value[order])


def as_float_array(value: Any) -> np.ndarray:
    """`value` as a C-ordered NumPy float32 array (itself when it already is one)."""
    if is_torch(value):
        value = value.detach().float().numpy()
    return np.ascontiguousarray(value, dtype=np.float32)


def is_floating(value: object) -> bool:
    """Whether `value` is a float array or tensor (NumPy bfloat16 included)."""
    if is_torch(value):
        return bool(value.is_floating_point())
    dtype = getattr(value, "dtype", None)
    return getattr(dtype, "kind", None) == "f" or getattr(dtype, "name", None) == "bfloat16"


def as_bfloat16(raw: np.ndarray) -> np.ndarray:
    """16-bit values (any 2-byte dtype) viewed as bfloat16, NumPy having none of its own
    (ml_dtypes' type)."""
    import ml_dtypes

    return raw.view(ml_dtypes.bfloat16)


def data_address(value: Any) -> tuple[bool, int]:
    """(whether `value` is contiguous, the address of its first byte)."""
    if is_torch(value):
        return value.is_contiguous(), value.data_ptr()
    return bool(value.flags.c_contiguous), int(value.ctypes.data)
