"""zoo's Mojo kernels (row-dot matmul, one-token and prompt attention) against numpy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from zoo.core.blocks import kernels


_MODELS: dict[str, Any] = {}


def run_op(name: str, arrays: list[np.ndarray], dims: list[tuple[str, ...]], out_dims: Callable[[list[Any]], tuple[Any, ...]]) -> np.ndarray:
    """Runs custom op `name` on float32 `arrays` in a graph with symbolic `dims`, compiled
    once per op for every shape; `out_dims` gives the output shape from the inputs' dims."""
    from max.driver import Buffer

    if name not in _MODELS:
        _MODELS[name] = _compile(name, dims, out_dims)
    buffers = [Buffer.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]
    return _MODELS[name].execute(*buffers)[0].to_numpy()


def _compile(name: str, dims: list[tuple[str, ...]], out_dims: Callable[[list[Any]], tuple[Any, ...]]) -> Any:
    from max.driver import CPU
    from max.dtype import DType
    from max.engine import InferenceSession
    from max.graph import DeviceRef, Graph, TensorType, ops

    cpu = DeviceRef.CPU()
    inputs = [TensorType(DType.float32, shape, cpu) for shape in dims]
    with Graph(name, input_types=inputs, custom_extensions=[kernels.package()]) as graph:
        values = list(graph.inputs)
        out = TensorType(DType.float32, out_dims([v.tensor.shape for v in values]), cpu)
        graph.output(ops.custom(name, device=cpu, values=values, out_types=[out])[0])
    return InferenceSession(devices=[CPU()]).load(graph)


def rowdot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return run_op("zoo_rowdot", [x, w], [("rows", "k"), ("n", "k")], lambda d: (d[0][0], d[1][0]))


def rowdot_bias(x: np.ndarray, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    dims = [("rows", "k"), ("n", "k"), (1, "n")]
    return run_op("zoo_rowdot_bias", [x, w, bias[None, :]], dims, lambda d: (d[0][0], d[1][0]))


@pytest.mark.parametrize(
    "rows, k, n", [(1, 768, 50257), (3, 100, 7), (2, 16, 4), (1, 5, 1), (16, 768, 1290), (33, 70, 25), (70, 128, 12)]
)
def test_rowdot_equals_numpy(rows, k, n):
    """Shapes with and without SIMD/4-row tails, one row (decode) and several (a batch); from
    16 rows on the tiled path: full and partial tiles and weight panels, odd tile counts."""
    rng = np.random.default_rng(rows * 1000 + k + n)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    np.testing.assert_allclose(rowdot(x, w), x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows, k, n", [(1, 768, 2304), (2, 37, 9), (20, 96, 30)])
def test_rowdot_adds_the_bias(rows, k, n):
    rng = np.random.default_rng(rows + k + n)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    expected = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    np.testing.assert_allclose(rowdot_bias(x, w, bias), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows", [2, 17])
def test_rowdot_applies_gpt2_gelu(rows):
    """The fused up-projection: tanh-approximated GELU of x @ w.T + bias (row and tiled paths)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((rows, 50)).astype(np.float32)
    w = rng.standard_normal((19, 50)).astype(np.float32) * 0.3
    bias = rng.standard_normal(19).astype(np.float32)
    dims = [("rows", "k"), ("n", "k"), (1, "n")]
    got = run_op("zoo_rowdot_bias_gelu_tanh", [x, w, bias[None, :]], dims, lambda d: (d[0][0], d[1][0]))
    y = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    expected = 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y**3)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def decode_attention(q, past_k, past_v, new_k, new_v, mask, scale, softcap=0.0) -> np.ndarray:
    dims = [("b", "h", "d"), ("b", "kvh", "d", "p"), ("b", "kvh", "p", "d"), ("b", "kvh", "d"), ("b", "kvh", "d"), ("b", "t"), ("two",)]
    settings = np.array([scale, softcap], dtype=np.float32)
    return run_op("zoo_decode_attention", [q, past_k, past_v, new_k, new_v, mask, settings], dims, lambda d: tuple(d[0]))


def reference_attention(q, past_k, past_v, new_k, new_v, mask, scale, softcap=0.0) -> np.ndarray:
    """softmax(cap(q . [past keys, new key] * scale) + mask) @ [past values, new value], per head, in float64."""
    batch, heads, _ = q.shape
    group = heads // past_k.shape[1]
    out = np.zeros(q.shape)
    for b in range(batch):
        for h in range(heads):
            kv = h // group
            keys = np.concatenate([past_k[b, kv].T, new_k[b, kv][None]], axis=0).astype(np.float64)
            values = np.concatenate([past_v[b, kv], new_v[b, kv][None]], axis=0).astype(np.float64)
            scores = keys @ q[b, h] * scale
            if softcap:
                scores = softcap * np.tanh(scores / softcap)
            scores = scores + mask[b]
            weights = np.exp(scores - scores.max())
            out[b, h] = weights @ values / weights.sum()
    return out


@pytest.mark.parametrize(
    "batch, heads, kv_heads, dim, past, softcap",
    [(1, 12, 12, 64, 80, 0.0), (2, 8, 2, 16, 37, 0.0), (1, 4, 1, 8, 1, 0.0), (2, 2, 2, 5, 16, 0.0), (2, 4, 2, 16, 37, 1.5)],
)
def test_decode_attention_equals_numpy(batch, heads, kv_heads, dim, past, softcap):
    """MHA/GQA/MQA, cache lengths with and without a 16-slot tail, masked (unwritten, padded or
    outside a sliding window) slots, a score scale other than 1/sqrt(D), and Gemma 2's soft-cap."""
    rng = np.random.default_rng(batch * 100 + heads + past)
    q = rng.standard_normal((batch, heads, dim)).astype(np.float32)
    past_k = rng.standard_normal((batch, kv_heads, dim, past)).astype(np.float32)
    past_v = rng.standard_normal((batch, kv_heads, past, dim)).astype(np.float32)
    new_k = rng.standard_normal((batch, kv_heads, dim)).astype(np.float32)
    new_v = rng.standard_normal((batch, kv_heads, dim)).astype(np.float32)
    mask = np.zeros((batch, past + 1), dtype=np.float32)
    mask[0, past // 2 : past] = -1e30  # unwritten slots
    if batch > 1:
        mask[1, : past // 3] = -1e30  # left padding, or slots behind a sliding window
    scale = 1 / np.sqrt(dim) if not softcap else 0.3
    expected = reference_attention(q, past_k, past_v, new_k, new_v, mask, scale, softcap)
    got = decode_attention(q, past_k, past_v, new_k, new_v, mask, scale, softcap)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def prompt_attention(q, past_k, past_v, new_k, new_v, mask, scale, softcap=0.0) -> np.ndarray:
    dims = [("b", "s", "h", "d"), ("b", "kvh", "d", "p"), ("b", "kvh", "p", "d"), ("b", "kvh", "d", "s"), ("b", "s", "kvh", "d"), ("b", "s", "t"), ("two",)]
    settings = np.array([scale, softcap], dtype=np.float32)
    return run_op("zoo_prompt_attention", [q, past_k, past_v, new_k, new_v, mask, settings], dims, lambda d: tuple(d[0]))


def prompt_mask(batch: int, seqlen: int, past: int, unwritten: int, padding: int, window: int | None) -> np.ndarray:
    """The engine's kind of mask: causal over `past` cached slots (the last `unwritten` of them
    empty) and the new tokens; row 0 left-padded by `padding` (a pad attends to itself only);
    with `window`, each query sees only the keys less than `window` positions back."""
    key_pos = np.arange(past + seqlen)
    query_pos = past + np.arange(seqlen)
    allowed = np.broadcast_to(key_pos[None, :] <= query_pos[:, None], (batch, seqlen, past + seqlen)).copy()
    if window is not None:
        allowed &= (query_pos[:, None] - key_pos[None, :] < window)[None]
    allowed[:, :, past - unwritten : past] = False
    allowed[0, :, past : past + padding] = False
    allowed[0, np.arange(padding), past + np.arange(padding)] = True
    return np.where(allowed, 0.0, -1e30).astype(np.float32)


@pytest.mark.parametrize(
    "batch, seqlen, past, heads, kv_heads, dim, unwritten, padding, window, softcap",
    [
        (1, 40, 0, 12, 4, 64, 0, 0, None, 0.0),  # a first prompt: causal only
        (2, 37, 13, 6, 2, 80, 3, 5, None, 0.0),  # chat history, unwritten slots, left padding
        (1, 5, 40, 8, 8, 8, 0, 0, None, 0.0),  # a few new tokens after a long history, tiny heads
        (1, 1, 7, 3, 1, 16, 0, 0, None, 0.0),  # one token, multi-query
        (2, 50, 20, 4, 2, 96, 0, 0, 24, 1.5),  # a sliding window and Gemma 2's soft-cap
    ],
)
def test_prompt_attention_equals_numpy(batch, seqlen, past, heads, kv_heads, dim, unwritten, padding, window, softcap):
    """Every new query against the cache and the new keys, as the graph's score, mask and softmax
    ops compute it: rows of a work item whose spans differ, key and dimension tails, GQA/MQA."""
    rng = np.random.default_rng(batch * 1000 + seqlen + past + dim)
    q = rng.standard_normal((batch, seqlen, heads, dim)).astype(np.float32)
    past_k = rng.standard_normal((batch, kv_heads, dim, past)).astype(np.float32)
    past_v = rng.standard_normal((batch, kv_heads, past, dim)).astype(np.float32)
    new_k = rng.standard_normal((batch, kv_heads, dim, seqlen)).astype(np.float32)
    new_v = rng.standard_normal((batch, seqlen, kv_heads, dim)).astype(np.float32)
    mask = prompt_mask(batch, seqlen, past, unwritten, padding, window)
    scale = 1 / np.sqrt(dim) if not softcap else 0.3
    expected = np.zeros(q.shape)
    for s in range(seqlen):  # each query position is a one-token attention over the keys it may see
        keys = np.concatenate([past_k, new_k], axis=3)
        values = np.concatenate([past_v, new_v.transpose(0, 2, 1, 3)], axis=2)
        expected[:, s] = reference_attention(q[:, s], keys[..., :-1], values[:, :, :-1], keys[..., -1], values[:, :, -1], mask[:, s], scale, softcap)
    got = prompt_attention(q, past_k, past_v, new_k, new_v, mask, scale, softcap)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_kernel_applies_to_cpu_float32_only(monkeypatch):
    from max.driver import CPU
    from max.dtype import DType

    assert kernels.applies(CPU(), DType.float32)
    assert not kernels.applies(CPU(), DType.bfloat16)
    monkeypatch.setenv(kernels.SWITCH, "0")
    assert not kernels.applies(CPU(), DType.float32)
