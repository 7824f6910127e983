"""`zoo_rowdot`: y = x @ w.T for a few rows of x, streaming w once.

A decode step multiplies one row per sequence by every weight matrix, so its
cost is reading the weights. This kernel splits w's rows into chunks spread
over the cores; each chunk takes four rows of w at a time and forms their
SIMD dot products with every row of x, so each weight byte is loaded once.
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from std.sys import num_physical_cores

comptime WIDTH = 16  # float32 lanes per dot-product step
comptime CHUNKS_PER_CORE = 8


@extensibility.register("zoo_rowdot")
struct RowDot:
    """Computes out[m, n] = sum over k of x[m, k] * w[n, k] (dense row-major float32)."""

    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype = DType.float32, rank=2, ...],
        x: InputTensor[dtype = DType.float32, rank=2, ...],
        w: InputTensor[dtype = DType.float32, rank=2, ...],
    ) raises:
        var rows = x.dim_size(0)
        var k = x.dim_size(1)
        var n = w.dim_size(0)
        var xp = x.unsafe_ptr()
        var wp = w.unsafe_ptr()
        var op = output.unsafe_ptr()
        var chunks = num_physical_cores() * CHUNKS_PER_CORE
        var per = (n + chunks - 1) // chunks

        def work(chunk: Int) {var rows, var k, var n, var xp, var wp, var op, var per}:
            var start = chunk * per
            var end = min(start + per, n)
            for m in range(rows):
                var xrow = xp + m * k
                var j = start
                while j + 4 <= end:
                    var a0 = SIMD[DType.float32, WIDTH](0)
                    var a1 = SIMD[DType.float32, WIDTH](0)
                    var a2 = SIMD[DType.float32, WIDTH](0)
                    var a3 = SIMD[DType.float32, WIDTH](0)
                    var w0 = wp + j * k
                    var i = 0
                    while i + WIDTH <= k:
                        var xv = xrow.load[width=WIDTH](i)
                        a0 += xv * w0.load[width=WIDTH](i)
                        a1 += xv * w0.load[width=WIDTH](i + k)
                        a2 += xv * w0.load[width=WIDTH](i + 2 * k)
                        a3 += xv * w0.load[width=WIDTH](i + 3 * k)
                        i += WIDTH
                    var t0 = a0.reduce_add()
                    var t1 = a1.reduce_add()
                    var t2 = a2.reduce_add()
                    var t3 = a3.reduce_add()
                    while i < k:
                        var xs = xrow.load(i)
                        t0 += xs * w0.load(i)
                        t1 += xs * w0.load(i + k)
                        t2 += xs * w0.load(i + 2 * k)
                        t3 += xs * w0.load(i + 3 * k)
                        i += 1
                    op.store(m * n + j, t0)
                    op.store(m * n + j + 1, t1)
                    op.store(m * n + j + 2, t2)
                    op.store(m * n + j + 3, t3)
                    j += 4
                while j < end:
                    var acc = SIMD[DType.float32, WIDTH](0)
                    var wr = wp + j * k
                    var i = 0
                    while i + WIDTH <= k:
                        acc += xrow.load[width=WIDTH](i) * wr.load[width=WIDTH](i)
                        i += WIDTH
                    var t = acc.reduce_add()
                    while i < k:
                        t += xrow.load(i) * wr.load(i)
                        i += 1
                    op.store(m * n + j, t)
                    j += 1

        sync_parallelize(work, chunks)
