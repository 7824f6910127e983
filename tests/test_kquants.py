"""zoo's K-quant encoders (Q4_K, Q5_K, Q6_K) against llama.cpp's: llama-quantize's output for
the same float32 tensors (../shared/data/gguf/llama-256-*), decoded by the `gguf` package."""

from __future__ import annotations

import numpy as np
import pytest

from gguf_fixtures import GGUF_DATA
from zoo.core.checkpoints.kquants import quantize_k
from zoo.core.checkpoints.quantized import QuantizedWeight
from zoo.core.errors import WeightsError


def llama_cpp_tensors(encoding: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(float32 original, llama-quantize's blocks) of every `encoding` tensor in llama-256's K-quant files."""
    from gguf import GGUFReader

    originals = {t.name: np.array(t.data) for t in GGUFReader(str(GGUF_DATA / "llama-256-f32.gguf")).tensors}
    found = []
    for kind in ("Q4_K_M", "Q5_K_M", "Q6_K"):
        for tensor in GGUFReader(str(GGUF_DATA / f"llama-256-{kind}.gguf")).tensors:
            if tensor.tensor_type.name.lower() == encoding:
                found.append((originals[tensor.name], np.array(tensor.data)))
    return found


@pytest.mark.parametrize("encoding", ["q4_k", "q5_k", "q6_k"])
def test_blocks_are_llama_quantizes(encoding):
    """Nearly every row byte for byte (the rest differ in float rounding), the same error overall."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    pairs = llama_cpp_tensors(encoding)
    assert pairs
    same = rows = ours_error = theirs_error = 0
    for original, theirs in pairs:
        ours = QuantizedWeight.quantize(original, encoding).data  # encoded on every core, by runs of rows
        assert ours.shape == theirs.shape
        same += int((ours == theirs).all(axis=1).sum())
        rows += len(ours)
        kind = GGMLQuantizationType[encoding.upper()]
        ours_error += float(((dequantize(ours, kind).reshape(original.shape) - original) ** 2).sum())
        theirs_error += float(((dequantize(theirs, kind).reshape(original.shape) - original) ** 2).sum())
    assert same / rows > 0.95
    assert abs(ours_error / theirs_error - 1) < 1e-3


@pytest.mark.parametrize("encoding", ["q4_k", "q6_k", "q8_0", "q4_0", "bf16"])
def test_encoding_by_runs_of_rows_gives_the_bytes_of_one_call(encoding):
    """A row count that is no multiple of the run length: the same bytes as one call over the whole."""
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    weight = np.random.default_rng(7).normal(0, 0.05, size=(45, 512)).astype(np.float32)
    if encoding.endswith("_k"):
        whole = quantize_k(weight, encoding)
    else:
        whole = quantize(weight, GGMLQuantizationType[encoding.upper()]).view(np.uint8)
    np.testing.assert_array_equal(QuantizedWeight.quantize(weight, encoding).data, whole)


@pytest.mark.parametrize("encoding, bound", [("q4_k", 0.08), ("q5_k", 0.04), ("q6_k", 0.02)])
def test_quantized_weight_round_trip(encoding, bound):
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.05, size=(24, 512)).astype(np.float32)
    weight[3] = 0.0  # an all-zero row
    weight[4] = 0.25  # a constant row
    weight[5, :256] *= 40  # blocks of very different ranges
    q = QuantizedWeight.quantize(weight, encoding)
    assert q.encoding == encoding and q.shape == (24, 512)
    back = q.dequantize()
    assert np.all(back[3] == 0)
    np.testing.assert_allclose(back[4], 0.25, rtol=0.01)
    for row in range(24):
        assert np.abs(back[row] - weight[row]).max() <= bound * np.abs(weight[row]).max() + 1e-6, row


def test_rows_of_other_widths_are_refused():
    with pytest.raises(WeightsError, match="q4_k needs rows of a multiple of 256 values"):
        QuantizedWeight.quantize(np.zeros((4, 64), dtype=np.float32), "q4_k")


def test_an_encoding_zoo_has_no_encoder_for_is_refused():
    with pytest.raises(WeightsError, match="no q2_k encoder"):
        QuantizedWeight.quantize(np.ones((2, 256), dtype=np.float32), "q2_k")
