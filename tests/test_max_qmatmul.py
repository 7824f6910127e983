"""MAX's quantized matmul (Q4_0, Q4_K, Q6_K), fed weights repacked at load, against NumPy.

The kernels quantize each row of activations to 8 bits per block (as llama.cpp does), so
the product is not float32 arithmetic: each value of x is rounded to a step of its block's
scale (max |x| over the block / 127, blocks of at most 256 values). Rounding errors uniform
over a step give each output an error of standard deviation `rounding_noise`, about 1% of
the products here; the tests assert the errors are that noise (median near 0.7 of it, none
past a few times it), where a wrong weight layout would be off by ~100 times it.
"""

from __future__ import annotations

import numpy as np
import pytest

from quant_fixtures import random_encoded
from zoo.core.blocks.kernels.repack import MAX_ENCODINGS, max_matmul_applies, repack

BLOCK = 256  # the largest activation block any of the kernels uses
# (x rows, weight rows, columns): one decode row, a prefill-sized batch, several blocks
CASES = [(1, 64, 512), (5, 96, 256), (40, 32, 1024)]


@pytest.fixture(scope="module")
def matmul():
    """One graph: per encoding, x @ w.T through MAX's kernel, shapes symbolic."""
    from max.driver import CPU
    from max.dtype import DType
    from max.engine import InferenceSession
    from max.graph import DeviceRef, Graph, TensorType, ops

    cpu = DeviceRef.CPU()
    inputs = []
    for e in MAX_ENCODINGS:
        inputs += [TensorType(DType.float32, (f"m_{e}", f"k_{e}"), cpu), TensorType(DType.uint8, (f"n_{e}", f"b_{e}"), cpu)]
    with Graph("max_qmatmul", input_types=inputs) as graph:
        outputs = []
        for i, e in enumerate(MAX_ENCODINGS):
            x, w = (v.tensor for v in graph.inputs[2 * i : 2 * i + 2])
            out = TensorType(DType.float32, (x.shape[0], w.shape[0]), cpu)
            outputs.append(ops.custom(f"vroom_{e}_matmul", cpu, [x, w], [out])[0])
        graph.output(*outputs)
    return InferenceSession(devices=[CPU()]).load(graph)


def rounding_noise(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per output of x @ w.T, the standard deviation that rounding x to 8 bits per block adds."""
    rows, cols = x.shape
    step = np.abs(x).reshape(rows, cols // BLOCK, BLOCK).max(axis=2) / 127  # (rows, blocks)
    weight_energy = (w**2).reshape(w.shape[0], cols // BLOCK, BLOCK).sum(axis=2)  # (n, blocks)
    return np.sqrt((step**2 / 12) @ weight_energy.T)


@pytest.mark.parametrize("case", CASES)
def test_repacked_matmul_differs_by_activation_rounding_only(matmul, case):
    from max.driver import Buffer

    rows, n, cols = case
    rng = np.random.default_rng(rows)
    made, arrays = {}, []
    for e in MAX_ENCODINGS:
        weight = random_encoded(e, n, cols, rng)
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        made[e] = (x, weight)
        arrays += [x, repack(weight.data, e)]
    out = [o.to_numpy() for o in matmul.execute(*(Buffer.from_numpy(a) for a in arrays))]
    for e, y in zip(MAX_ENCODINGS, out):
        x, weight = made[e]
        w = weight.dequantize().astype(np.float64)
        expected = x.astype(np.float64) @ w.T
        noise = rounding_noise(x.astype(np.float64), w)
        ratio = np.abs(y - expected) / noise
        assert float(np.median(ratio)) < 1.5 and float(ratio.max()) < 8, (e, np.median(ratio), ratio.max())
        assert float(np.median(noise / np.abs(expected))) < 0.03, e  # small beside the products


def test_only_supported_encodings_and_row_counts_take_maxs_kernel():
    assert max_matmul_applies("q4_k", 64) and max_matmul_applies("q6_k", 32) and max_matmul_applies("q4_0", 3072)
    assert not max_matmul_applies("q4_k", 100)  # rows not a multiple of 32: zoo's kernel
    assert not any(max_matmul_applies(e, 64) for e in ("q8_0", "q5_k", "bf16", "f16", None))


def test_rows_past_the_last_multiple_of_32_are_cut_off_for_zoos_kernel():
    from zoo.core.blocks.linear import split_for_max_matmul
    from zoo.core.checkpoints.quantized import StackedRows

    rng = np.random.default_rng(3)
    head = random_encoded("q6_k", 70, 256, rng)  # a vocabulary of 70: 64 rows for MAX, 6 for zoo
    split = split_for_max_matmul(head)
    assert isinstance(split, StackedRows) and [p.shape[0] for p in split.parts] == [64, 6]
    np.testing.assert_array_equal(split.dequantize(), head.dequantize())
    fits = random_encoded("q4_k", 64, 256, rng)
    assert split_for_max_matmul(fits) is fits
    other = random_encoded("q8_0", 70, 256, rng)
    assert split_for_max_matmul(other) is other
