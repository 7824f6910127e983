"""Hand-written CPU kernels, as MAX custom ops (Mojo, in `mojo/`).

Decoding reads every weight once per token for a single row of activations,
and MAX's CPU matmul reads weights at about 18 GB/s on this kind of machine
for one row. `zoo_rowdot` computes `x @ w.T (+ bias, + GELU)` for a few rows
of x by streaming w's rows once, spread over the cores, and from 16 rows on
in tiles of 16 rows per vector; `zoo_decode_attention` does one new token's
attention over its cache in a single op. The one-token decode graph uses both
(`decode_kernels()` is active while it is traced). The float32 prompt graph
picks, as it runs, `zoo_rowdot` for up to `FEW_ROWS` rows (a short prompt, the
last position's logits) and MAX's matmul, faster from there, for more; its
attention is `zoo_prompt_attention` (`mojo/prompt_attention.mojo`), which
scores only the keys a causal mask leaves visible and never builds the score
matrix in memory. Other dtypes and accelerators keep MAX's ops.

Weights kept in a GGML block encoding or bfloat16 (`QuantizedWeight`) enter
the graph as their raw uint8 rows (`encoding` names the format), and every CPU
graph multiplies by them with `zoo_qrowdot` (the GGML block encodings but Q4_0
as 8-bit integer dot products with x rounded per 32-value block, as llama.cpp
does; Q4_0, bf16 and f16 in float32 arithmetic), so no float32 copy of them is
ever made; only looked-up embedding rows are decoded (`zoo_dequantize`,
`mojo/quantized.mojo`).
Projections in Q4_0, Q4_K and Q6_K whose rows MAX's own quantized matmul takes
are repacked for it at load (`repack.py`) and use it in every graph (`packed=True`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).parent / "mojo"
SWITCH = "ZOO_KERNELS"  # set to 0 for MAX's own ops in float32 graphs (one graph per model)
FEW_ROWS = 32  # rows up to which `zoo_rowdot` beats MAX's float32 matmul (measured on 2 cores)
_ACTIVE: ContextVar[bool] = ContextVar("zoo_decode_kernels", default=False)


@cache
def package() -> Path:
    """The kernels as a precompiled Mojo package for `custom_extensions`, built once per source
    (and MAX version) into zoo's cache: given the source directory, MAX would build it again in
    every process (3-4 s here). Where building fails, the source directory (MAX then builds it
    and reports the error)."""
    from importlib.metadata import version

    from zoo.core.graph_cache import zoo_cache_home

    digest = hashlib.sha256(version("max").encode())
    for source in sorted(SOURCE.glob("*.mojo")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    built = zoo_cache_home() / "kernels" / f"zoo_kernels_{digest.hexdigest()[:16]}.mojoc"
    if built.is_file():
        return built
    try:
        return _precompile(built)
    except (OSError, RuntimeError, ImportError):
        return SOURCE


def _precompile(target: Path) -> Path:
    """Builds the package into `target` (through a private staging folder, then renamed into place,
    so that concurrent processes never read half a file)."""
    import subprocess

    from mojo.run import subprocess_run_mojo

    staging = target.parent / f".staging-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        built = staging / target.name  # the package's module name comes from the file name
        done = subprocess_run_mojo(["precompile", str(SOURCE), "-o", str(built)], capture_output=True)
        if done.returncode != 0 or not built.is_file():
            raise RuntimeError("mojo precompile failed")
        os.replace(built, target)
    except subprocess.SubprocessError as error:
        raise RuntimeError(str(error)) from None
    finally:
        for leftover in staging.glob("*"):
            leftover.unlink(missing_ok=True)
        staging.rmdir()
    return target


@contextmanager
def decode_kernels() -> Iterator[None]:
    """Makes `linear` use the row-dot kernel while a decode graph is traced."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def applies(device: Any, dtype: Any) -> bool:
    """Whether models on `device` in `dtype` take these kernels: the one-token decode graph
    and, in the prompt graph, `zoo_prompt_attention`."""
    from max.dtype import DType

    return device.is_host and dtype == DType.float32 and _switched_on()


def _switched_on() -> bool:
    """Whether `SWITCH` leaves zoo's float32 kernels on (the default)."""
    return os.environ.get(SWITCH, "1") != "0"


def _on(x: Any) -> bool:
    """Whether `x` is traced into a decode graph that takes these kernels."""
    return _ACTIVE.get() and _on_host(x)


def _in_float32_graph(x: Any) -> bool:
    """Whether `x` is traced into a float32 CPU graph that takes these kernels (the loader
    gives its graphs the package; a block compiled on its own without it keeps MAX's ops)."""
    return _on_host(x) and _switched_on() and _loaded()


def _loaded() -> bool:
    """Whether the graph being traced has the kernel package among its extensions."""
    from max.graph import Graph

    return package() in Graph.current.kernel_libraries_paths


def _on_host(x: Any) -> bool:
    """Whether `x` is float32 on the CPU (where encoded weights are multiplied by `zoo_qrowdot`)."""
    from max.dtype import DType

    return x.device.is_host and x.dtype == DType.float32


# Encodings of `QuantizedWeight` -> the kernels' `encoding` parameter (mojo/quantized.mojo).
ENCODING_CODES = {
    "bf16": 0, "f16": 1, "q8_0": 2, "q4_0": 3, "q4_k": 4, "q5_k": 5, "q6_k": 6, "q4_1": 7, "q5_0": 8, "q5_1": 9,
    "q3_k": 10, "iq4_nl": 11, "iq4_xs": 12, "q2_k": 13,
}


def linear(
    x: Any, weight: Any, bias: Any = None, activation: str | None = None, encoding: str | None = None, packed: bool = False
) -> Any:
    """`activation(x @ weight.T + bias)`, through the row-dot kernel inside `decode_kernels()`
    on the CPU, and in other float32 CPU graphs for few rows (`_few_rows_or_matmul`).
    `activation` is None or "gelu_tanh" (the kernel applies it as it stores, when there
    is a bias). With `encoding`, `weight` is the raw uint8 rows of a
    `QuantizedWeight` in that encoding, multiplied by `zoo_qrowdot` in every CPU graph;
    `packed`: rows repacked for MAX's quantized matmul (`repack.repack`) instead."""
    if activation not in (None, "gelu_tanh"):
        raise ValueError(f"unsupported activation {activation!r}")
    if packed:
        return with_bias_activation(_row_op(f"vroom_{encoding}_matmul", x, weight), bias, activation)
    if encoding is not None and _on_host(x):
        parameters = {"encoding": ENCODING_CODES[encoding]}
        if bias is None and activation is not None:
            return with_bias_activation(_row_op("zoo_qrowdot", x, weight, None, parameters), None, activation)
        return _row_op(_fused_name("zoo_qrowdot", bias, activation), x, weight, bias, parameters)
    if encoding is not None:
        weight = dequantize(weight, encoding).cast(x.dtype)
    fusable = (activation is None or bias is not None) and weight.dtype == x.dtype
    if fusable and _on(x):
        return _row_op(_fused_name("zoo_rowdot", bias, activation), x, weight, bias)
    if fusable and _in_float32_graph(x):
        return _few_rows_or_matmul(x, weight, bias, activation)
    return with_bias_activation(x @ weight.T, bias, activation)


def _few_rows_or_matmul(x: Any, weight: Any, bias: Any, activation: str | None) -> Any:
    """`linear` in a float32 prompt graph: chosen when it runs, by the number of rows, between
    `zoo_rowdot` (up to `FEW_ROWS` rows: a short prompt, or the last position's logits) and
    MAX's matmul, which is faster for more."""
    import numpy as np
    from max.dtype import DType
    from max.experimental.tensor import Tensor
    from max.graph import DeviceRef, TensorType, TensorValue, ops

    lead, rows, k = _row_dims(x)
    n = weight.shape[0]
    device = DeviceRef.from_device(x.device)
    # Values made here, outside both branches, so that each branch can use them.
    flat, w = TensorValue(x.reshape((rows, k))), TensorValue(weight)
    b = None if bias is None else TensorValue(bias.reshape((1, n)))
    limit = ops.constant(np.array([FEW_ROWS], dtype=np.int64), DType.int64, device)
    few = ops.reshape(ops.greater_equal(limit, ops.shape_to_tensor([rows])), [])
    out_type = TensorType(DType.float32, (rows, n), device=device)

    def by_rows() -> Any:
        inputs = [flat, w] if b is None else [flat, w, b]
        return ops.custom(_fused_name("zoo_rowdot", bias, activation), device, inputs, [out_type])[0]

    def by_matmul() -> Any:
        y = ops.matmul(flat, ops.transpose(w, 0, 1))
        y = y if b is None else y + b
        return y if activation is None else ops.gelu(y, approximate="tanh")

    (y,) = ops.cond(few, [out_type], by_rows, by_matmul)
    return Tensor.from_graph_value(y).reshape((*lead, n))


def with_bias_activation(y: Any, bias: Any, activation: str | None) -> Any:
    """`activation(y + bias)` as graph ops (no bias: None; no activation: None)."""
    from max.experimental import functional as F

    y = y if bias is None else y + bias
    return y if activation is None else F.gelu(y, approximate="tanh")


def columns(weight: Any, encoding: str) -> int:
    """The logical column count of raw rows `weight` (uint8, (rows, bytes per row)) in `encoding`."""
    from zoo.core.checkpoints.quantized import ENCODINGS

    values, nbytes = ENCODINGS[encoding]
    return int(weight.shape[1]) // nbytes * values


def dequantize(weight: Any, encoding: str) -> Any:
    """The float32 (rows, cols) values of raw rows `weight` in `encoding`, decoded in the graph."""
    from max.dtype import DType
    from max.experimental import functional as F
    from max.graph import DeviceRef, TensorType

    out = TensorType(DType.float32, (weight.shape[0], columns(weight, encoding)), device=DeviceRef.from_device(weight.device))
    (values,) = F.custom("zoo_dequantize", weight.device, [weight], [out], parameters={"encoding": ENCODING_CODES[encoding]})
    return values


def embed(indices: Any, weight: Any, encoding: str | None = None) -> Any:
    """Rows `indices` of the table `weight` (an embedding lookup); with `encoding`, the table
    is raw rows in that encoding and only the rows looked up are decoded (to float32)."""
    from max.experimental import functional as F

    if encoding is None:
        return F.gather(weight, indices, axis=0)
    flat = indices.reshape((-1,))
    rows = dequantize(F.gather(weight, flat, axis=0), encoding)
    return rows.reshape((*indices.shape, rows.shape[1]))


def _fused_name(kernel: str, bias: Any, activation: str | None) -> str:
    """The variant of row-dot `kernel` that adds `bias` and applies `activation` as it stores."""
    return kernel if bias is None else f"{kernel}_bias" if activation is None else f"{kernel}_bias_gelu_tanh"


def _row_dims(x: Any) -> tuple[list[Any], Any, Any]:
    """x's leading dims, their product (the rows a row-dot op sees) and its last dim."""
    lead = list(x.shape[:-1])
    rows = lead[0]
    for dim in lead[1:]:
        rows = rows * dim
    return lead, rows, x.shape[-1]


def _row_op(name: str, x: Any, weight: Any, bias: Any = None, parameters: dict[str, int] | None = None) -> Any:
    """Custom op `name` on x flattened to (rows, k), the (n, ...) `weight` and `bias` as (1, n):
    its float32 (rows, n) output, shaped back to (..., n)."""
    from max.dtype import DType
    from max.experimental import functional as F
    from max.graph import DeviceRef, TensorType

    lead, rows, k = _row_dims(x)
    n = weight.shape[0]
    inputs = [x.reshape((rows, k)), weight]
    if bias is not None:
        inputs.append(bias.reshape((1, n)))
    out_type = TensorType(DType.float32, (rows, n), device=DeviceRef.from_device(x.device))
    (y,) = F.custom(name, x.device, inputs, [out_type], parameters=parameters)
    return y.reshape((*lead, n))


def decode_attention(
    q: Any, past_k: Any, past_v: Any, new_k: Any, new_v: Any, mask: Any, scale: float, softcap: float | None = None
) -> Any | None:
    """One new token's attention over its cache through `zoo_decode_attention`, or None
    where the kernel does not apply (prefill, other dtypes, accelerators).

    Shapes as in `attention.grouped_attention`: q (B, H, 1, D); keys transposed,
    past_k (B, Hkv, D, P) and new_k (B, Hkv, D, 1); values past_v (B, Hkv, P, D)
    and new_v (B, Hkv, 1, D); mask (B, 1, 1, P + 1). Scores are scaled by `scale`
    and soft-capped at `softcap` (None: no cap) before the mask. Returns (B, H, 1, D).
    """
    if not (_on(q) and q.shape[2] == 1 and past_k.dtype == q.dtype):
        return None
    from max.dtype import DType
    from max.experimental import functional as F
    from max.graph import DeviceRef, TensorType

    batch, heads, _, dim = q.shape
    kv_heads = past_k.shape[1]
    inputs = [
        q.reshape((batch, heads, dim)),
        past_k,
        past_v,
        new_k.reshape((batch, kv_heads, dim)),
        new_v.reshape((batch, kv_heads, dim)),
        mask.reshape((batch, mask.shape[-1])),
        _score_settings(scale, softcap, q.device),
    ]
    out_type = TensorType(DType.float32, (batch, heads, dim), device=DeviceRef.from_device(q.device))
    (out,) = F.custom("zoo_decode_attention", q.device, inputs, [out_type])
    return out.reshape((batch, heads, 1, dim))


def prompt_attention(
    q: Any, past_k: Any, past_v: Any, new_k: Any, new_v: Any, mask: Any, scale: float, softcap: float | None = None
) -> Any | None:
    """The new tokens' attention over the cache and each other through `zoo_prompt_attention`,
    or None where the kernel does not apply (other dtypes, accelerators).

    q (B, S, H, D); keys transposed, past_k (B, Hkv, D, P) and new_k (B, Hkv, D, S);
    past_v (B, Hkv, P, D); new_v (B, S, Hkv, D); mask (B, 1, S, P + S), additive.
    Scores are scaled and soft-capped as in `decode_attention`. Returns (B, S, H, D).
    """
    if not (_in_float32_graph(q) and past_k.dtype == q.dtype):
        return None
    from max.dtype import DType
    from max.experimental import functional as F
    from max.graph import DeviceRef, TensorType

    batch, seqlen = q.shape[0], q.shape[1]
    settings = _score_settings(scale, softcap, q.device)
    inputs = [q, past_k, past_v, new_k, new_v, mask.reshape((batch, seqlen, mask.shape[-1])), settings]
    out_type = TensorType(DType.float32, list(q.shape), device=DeviceRef.from_device(q.device))
    (out,) = F.custom("zoo_prompt_attention", q.device, inputs, [out_type])
    return out


def _score_settings(scale: float, softcap: float | None, device: Any) -> Any:
    """The attention kernels' `settings` input: the score scale and the soft-cap (0: none)."""
    import numpy as np
    from max.dtype import DType
    from max.experimental import functional as F

    return F.constant(np.array([scale, softcap or 0.0], dtype=np.float32), DType.float32, device)
