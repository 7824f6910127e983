"""zoo's Mojo row-dot kernel (the one-token decode graph's matmul) against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.core import kernels


def rowdot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    from max.driver import CPU, Buffer
    from max.dtype import DType
    from max.engine import InferenceSession
    from max.graph import DeviceRef, Graph, TensorType, ops

    cpu = DeviceRef.CPU()
    inputs = [TensorType(DType.float32, ("rows", "k"), cpu), TensorType(DType.float32, ("n", "k"), cpu)]
    with Graph("rowdot", input_types=inputs, custom_extensions=[kernels.PACKAGE]) as graph:
        x_in, w_in = graph.inputs
        out = TensorType(DType.float32, (x_in.tensor.shape[0], w_in.tensor.shape[0]), cpu)
        graph.output(ops.custom("zoo_rowdot", device=cpu, values=[x_in, w_in], out_types=[out])[0])
    model = InferenceSession(devices=[CPU()]).load(graph)
    return model.execute(Buffer.from_numpy(x), Buffer.from_numpy(w))[0].to_numpy()


@pytest.mark.parametrize("rows, k, n", [(1, 768, 50257), (3, 100, 7), (2, 16, 4), (1, 5, 1)])
def test_rowdot_equals_numpy(rows, k, n):
    """Shapes with and without SIMD/4-row tails, one row (decode) and several (a batch)."""
    rng = np.random.default_rng(rows * 1000 + k + n)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    np.testing.assert_allclose(rowdot(x, w), x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-4, atol=1e-4)


def test_kernel_applies_to_cpu_float32_only(monkeypatch):
    from max.driver import CPU
    from max.dtype import DType

    assert kernels.applies(CPU(), DType.float32)
    assert not kernels.applies(CPU(), DType.bfloat16)
    monkeypatch.setenv(kernels.SWITCH, "0")
    assert not kernels.applies(CPU(), DType.float32)
