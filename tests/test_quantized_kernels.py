"""zoo's kernels for encoded weights (mojo/quantized.mojo) against NumPy decoding + matmul.

One graph holds every op for every encoding (a single compile): per encoding, the
decode row-dot (plain, + bias, + bias and tanh-GELU) and the dequantize op, with
symbolic shapes, so each case below runs all encodings at once.
"""

from __future__ import annotations

import numpy as np
import pytest

from quant_fixtures import (
    ALL_ENCODINGS,
    INTEGER_DOT_ENCODINGS,
    bf16_rounded,
    quantized_activations,
    random_encoded,
)
from zoo.core.blocks import kernels
from zoo.core.checkpoints.quantized import ENCODINGS, QuantizedWeight

# (x rows, weight rows, weight columns as blocks, and for bf16/f16 extra columns): one decode
# row, batches of rows (the kernel takes x rows 4, 2 and 1 at a time), odd weight-row counts,
# one and several blocks (Q8_0 rows of one x row are read 4 blocks at a time, with a remainder;
# Q5_K rows in segments of 32 super-blocks); from 6 rows (16 for bf16/f16), x in tiles of 16 rows
# against panels of weight rows: a partial tile, an odd tile count, weight rows past the last full panel, and x
# cut into groups of tiles (a group holds about 256 KiB of x, here 14 tiles of 1056 columns);
# bf16 tiles of an even column count in pairs of columns (AVX512-BF16), of an odd one in float32.
CASES = [(1, 7, 3, 5), (3, 13, 2, 0), (2, 4, 1, 17), (1, 130, 4, 31), (7, 9, 5, 3), (1, 5, 9, 40), (2, 3, 33, 1)]
CASES += [(6, 5, 2, 7), (16, 13, 1, 40), (37, 15, 9, 3), (64, 26, 1, 0), (260, 3, 33, 1)]


def _build():
    from max.driver import CPU
    from max.dtype import DType
    from max.engine import InferenceSession
    from max.graph import DeviceRef, Graph, TensorType, ops

    cpu = DeviceRef.CPU()
    inputs = []
    for e in ALL_ENCODINGS:
        inputs += [
            TensorType(DType.float32, (f"m_{e}", f"k_{e}"), cpu),
            TensorType(DType.uint8, (f"n_{e}", f"b_{e}"), cpu),
            TensorType(DType.float32, (1, f"n_{e}"), cpu),
        ]
    with Graph("quantized_kernels", input_types=inputs, custom_extensions=[kernels.package()]) as graph:
        outputs = []
        for i, e in enumerate(ALL_ENCODINGS):
            x, w, bias = (v.tensor for v in graph.inputs[3 * i : 3 * i + 3])
            code = {"encoding": kernels.ENCODING_CODES[e]}
            out = TensorType(DType.float32, (x.shape[0], w.shape[0]), cpu)
            for name, args in (("zoo_qrowdot", [x, w]), ("zoo_qrowdot_bias", [x, w, bias]), ("zoo_qrowdot_bias_gelu_tanh", [x, w, bias])):
                outputs.append(ops.custom(name, device=cpu, values=args, out_types=[out], parameters=code)[0])
            values = TensorType(DType.float32, (w.shape[0], x.shape[1]), cpu)
            outputs.append(ops.custom("zoo_dequantize", device=cpu, values=[w], out_types=[values], parameters=code)[0])
        graph.output(*outputs)
    return InferenceSession(devices=[CPU()]).load(graph)


@pytest.fixture(scope="module")
def model():
    return _build()


def _run(model, case, rng, encoded=random_encoded):
    """Per encoding, for one case: (x, weight, bias, [row-dot, + bias, + GELU, dequantized])."""
    from max.driver import Buffer

    rows, n, blocks, extra = case
    arrays, made = [], {}
    for e in ALL_ENCODINGS:
        values = ENCODINGS[e][0]
        cols = blocks * (32 if values == 1 else values) + (extra if values == 1 else 0)
        weight = encoded(e, n, cols, rng)
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        bias = rng.standard_normal((1, n)).astype(np.float32)
        made[e] = (x, weight, bias)
        arrays += [x, weight.data, bias]
    out = [o.to_numpy() for o in model.execute(*(Buffer.from_numpy(np.ascontiguousarray(a)) for a in arrays))]
    return {e: (*made[e], out[4 * i : 4 * i + 4]) for i, e in enumerate(ALL_ENCODINGS)}


@pytest.fixture(scope="module")
def results(model):
    """Per case and encoding: (x, weight, bias, [row-dot, + bias, + GELU, dequantized])."""
    rng = np.random.default_rng(0)
    return {(case, e): found for case in CASES for e, found in _run(model, case, rng).items()}


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
@pytest.mark.parametrize("case", CASES)
def test_dequantize_is_the_reference_decoding(results, case, encoding):
    """Bit for bit the `gguf` package's NumPy decoders (llama.cpp's dequantize_row_*)."""
    _, weight, _, (_, _, _, values) = results[case, encoding]
    np.testing.assert_array_equal(values, weight.dequantize())


@pytest.mark.parametrize("encoding", ALL_ENCODINGS)
@pytest.mark.parametrize("case", CASES)
def test_row_dot_equals_numpy(results, case, encoding):
    """x @ w.T on the decoded weights, in float32 arithmetic; + bias; + tanh-GELU. For the
    integer encodings (`INTEGER_DOT_ENCODINGS`), x is first quantized to 8 bits per block of 32
    (as llama.cpp does), the rest is exact integer dot products scaled in float32: the same
    tolerance holds. bf16 tiles (16 rows or more, an even column count) round x to bf16 where
    MAX builds the kernels for a target with AVX512-BF16 (its pair products), and only there:
    /proc/cpuinfo cannot tell (a VM here listed avx512_bf16 and the kernels were built without
    it), so x as it is and x rounded are both candidates there, and the nearer must hold."""
    x, weight, bias, (plain, biased, gelu, _) = results[case, encoding]
    w = weight.dequantize().T.astype(np.float64)
    candidates = [quantized_activations(x) if encoding in INTEGER_DOT_ENCODINGS else x.astype(np.float64)]
    if encoding == "bf16" and x.shape[0] >= 16 and x.shape[1] % 2 == 0:
        candidates.append(bf16_rounded(x))
    expected = min((xs @ w for xs in candidates), key=lambda product: float(np.abs(plain - product).max()))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(plain, expected, rtol=0, atol=2e-6 * scale)
    np.testing.assert_allclose(biased, expected + bias, rtol=0, atol=2e-6 * scale)
    y = expected + bias
    reference = 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y**3)))
    np.testing.assert_allclose(gelu, reference, rtol=0, atol=4e-6 * scale)


def _every_int8(encoding, rows, cols, rng):
    """`random_encoded`, but Q8_0 quants take every int8 value: GGML's encoder writes -127..127,
    a file may hold -128 too."""
    if encoding != "q8_0":
        return random_encoded(encoding, rows, cols, rng)
    data = rng.integers(0, 256, size=(rows, cols // 32, 34), dtype=np.uint8)
    data[..., :2] = rng.uniform(0.001, 0.01, size=(rows, cols // 32)).astype(np.float16).view(np.uint8).reshape(rows, -1, 2)
    return QuantizedWeight("q8_0", (rows, cols), data.reshape(rows, -1))


@pytest.mark.parametrize("rows", [2, 20])
def test_q8_0_row_dot_takes_every_int8_weight(model, rows):
    x, weight, _, (plain, _, _, _) = _run(model, (rows, 9, 6, 0), np.random.default_rng(3), _every_int8)["q8_0"]
    assert (weight.data.reshape(9, 6, 34)[..., 2:].view(np.int8) == -128).any()
    expected = quantized_activations(x) @ weight.dequantize().T.astype(np.float64)
    np.testing.assert_allclose(plain, expected, rtol=0, atol=2e-6 * max(1.0, float(np.abs(expected).max())))
