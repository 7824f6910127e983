"""`zoo_rowdot`: y = x @ w.T (+ bias, + GELU) for a few rows of x, streaming w once.

A decode step multiplies one row per sequence by every weight matrix, so its
cost is reading the weights from memory. The weight rows are cut into blocks
that the cores take in turn from a shared counter (a core slowed by anything
else simply takes fewer blocks). Within a block, four weight rows at a time
are prefetched ahead and dotted with every row of x in 16-wide SIMD, so each
weight byte is loaded from memory once.

From `TILED_ROWS` rows of x on (a short prompt), x is laid out with 16 rows side
by side per vector and each panel of 12 weight rows is multiplied by every
tile of x (`tile_floats`, `float_tile`, shared with `zoo_qrowdot`): one
weight value broadcast against 16 rows per FMA. MAX's matmul is faster from
a few dozen rows on, and the prompt graph picks between the two as it runs
(`kernels.linear`).
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from std.atomic import Atomic
from std.sys import num_physical_cores
from std.sys.intrinsics import PrefetchOptions, prefetch

from .quantized import (
    GELU_TANH, LANES, NO_ACTIVATION, Floats, MutFloats, activate, claim_work, float_tile, panel_run, store_tiles,
    tile_floats, tile_group,
)

comptime WIDTH = 16  # float32 lanes per dot-product step
comptime BLOCKS_PER_CORE = 16  # enough blocks for the cores to even out
comptime PREFETCH_AHEAD = 256  # floats (1 KiB) ahead in each weight row
comptime TILED_ROWS = 16  # rows of x from which `tiled_row_dot` is faster than the row path
comptime PANEL = 12  # weight rows multiplied together by `float_tile`



def row_dot[
    with_bias: Bool, activation: Int = NO_ACTIVATION
](
    output: OutputTensor[dtype = DType.float32, rank=2, ...],
    x: InputTensor[dtype = DType.float32, rank=2, ...],
    w: InputTensor[dtype = DType.float32, rank=2, ...],
    bias: InputTensor[dtype = DType.float32, rank=2, ...],
):
    """`bias` is (1, n), read only when `with_bias`."""
    if x.dim_size(0) >= TILED_ROWS:
        tiled_row_dot[with_bias, activation](output, x, w, bias)
        return
    var rows = x.dim_size(0)
    var k = x.dim_size(1)
    var n = w.dim_size(0)
    var xp = x.unsafe_ptr()
    var wp = w.unsafe_ptr()
    var bp = bias.unsafe_ptr()
    var op = output.unsafe_ptr()
    var workers = num_physical_cores()
    var block = (n + workers * BLOCKS_PER_CORE - 1) // (workers * BLOCKS_PER_CORE)
    block = ((block + 3) // 4) * 4
    var blocks = (n + block - 1) // block
    var next_block = alloc[Int64](1)
    next_block[0] = 0

    def finish(m: Int, j: Int, total: Float32) {var op, var bp, var n}:
        var y = total
        comptime if with_bias:
            y += bp.load(j)
        op.store(m * n + j, activate[activation, 1](y))

    def work(worker: Int) {var rows, var k, var n, var xp, var wp, var op, var block, var blocks, var next_block, var finish}:
        while True:
            var b = Int(Atomic[Int64].fetch_add(next_block, 1))
            if b >= blocks:
                break
            var j = b * block
            var end = min(j + block, n)
            while j + 4 <= end:
                var w0 = wp + j * k
                for m in range(rows):
                    var xrow = xp + m * k
                    var a0 = SIMD[DType.float32, WIDTH](0)
                    var a1 = SIMD[DType.float32, WIDTH](0)
                    var a2 = SIMD[DType.float32, WIDTH](0)
                    var a3 = SIMD[DType.float32, WIDTH](0)
                    var i = 0
                    while i + WIDTH <= k:
                        if m == 0:
                            comptime options = PrefetchOptions().for_read().high_locality()
                            prefetch[options](w0 + i + PREFETCH_AHEAD)
                            prefetch[options](w0 + k + i + PREFETCH_AHEAD)
                            prefetch[options](w0 + 2 * k + i + PREFETCH_AHEAD)
                            prefetch[options](w0 + 3 * k + i + PREFETCH_AHEAD)
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
                    finish(m, j, t0)
                    finish(m, j + 1, t1)
                    finish(m, j + 2, t2)
                    finish(m, j + 3, t3)
                j += 4
            while j < end:
                var wr = wp + j * k
                for m in range(rows):
                    var xrow = xp + m * k
                    var acc = SIMD[DType.float32, WIDTH](0)
                    var i = 0
                    while i + WIDTH <= k:
                        acc += xrow.load[width=WIDTH](i) * wr.load[width=WIDTH](i)
                        i += WIDTH
                    var t = acc.reduce_add()
                    while i < k:
                        t += xrow.load(i) * wr.load(i)
                        i += 1
                    finish(m, j, t)
                j += 1

    sync_parallelize(work, workers)
    next_block.free()


def panel_by_tiles[
    with_bias: Bool, activation: Int
](
    panel: Floats, k: Int, xt: Floats, t0: Int, t1: Int, j: Int, count: Int, rows: Int, n: Int,
    op: Pointer[Float32, MutAnyOrigin], bp: Floats, res: MutFloats,
):
    """Output rows of tiles t0 .. t1 - 1 (from xt) for weight rows j .. j + count - 1 (the
    PANEL rows at `panel`, k apart), two tiles at a time."""
    var t = t0
    while t < t1:
        var tz = min(2, t1 - t)
        if tz == 2:
            float_tile[PANEL, 2](panel, k, xt + t * LANES * k, res)
        else:
            float_tile[PANEL, 1](panel, k, xt + t * LANES * k, res)
        store_tiles[with_bias, activation](res, t, tz, j, count, rows, n, op, bp)
        t += tz


def tiled_row_dot[
    with_bias: Bool, activation: Int
](
    output: OutputTensor[dtype = DType.float32, rank=2, ...],
    x: InputTensor[dtype = DType.float32, rank=2, ...],
    w: InputTensor[dtype = DType.float32, rank=2, ...],
    bias: InputTensor[dtype = DType.float32, rank=2, ...],
):
    """`row_dot` for many rows of x: the cores take (group of tiles, run of panels) from a
    shared counter and multiply each panel of 12 weight rows, read in place, by every
    tile of the group, two at a time (the last panel is copied, its last row repeated)."""
    var rows = x.dim_size(0)
    var k = x.dim_size(1)
    var n = w.dim_size(0)
    var xp = x.unsafe_ptr()
    var wp = w.unsafe_ptr()
    var bp = bias.unsafe_ptr()
    var op = output.unsafe_ptr()
    var tiles = (rows + LANES - 1) // LANES
    var xt = alloc[Float32](tiles * LANES * k)
    tile_floats(xp, rows, k, xt)
    var group = tile_group(k, 4)
    var panels = (n + PANEL - 1) // PANEL
    var run = panel_run(panels)
    var workers = num_physical_cores()
    var next_item = alloc[Int64](1)
    next_item[0] = 0

    def work(worker: Int) {var rows, var k, var n, var wp, var bp, var op, var tiles, var xt, var group, var panels, var run, var next_item}:
        var last = alloc[Float32](PANEL * k)
        var res = alloc[Float32](PANEL * 2 * LANES)
        while True:
            var item = claim_work(next_item, tiles, group, panels, run)
            if item[0] == item[1]:
                break
            var t0 = item[0]
            var t1 = item[1]
            for p in range(item[2], item[3]):
                var j = p * PANEL
                var count = min(PANEL, n - j)
                if count == PANEL:
                    panel_by_tiles[with_bias, activation](wp + j * k, k, xt, t0, t1, j, count, rows, n, op, bp, res)
                else:
                    for r in range(PANEL):
                        var source = wp + (j + min(r, count - 1)) * k
                        for i in range(k):
                            last.store(r * k + i, source.load(i))
                    panel_by_tiles[with_bias, activation](last, k, xt, t0, t1, j, count, rows, n, op, bp, res)
        last.free()
        res.free()

    sync_parallelize(work, workers)
    next_item.free()
    xt.free()


@extensibility.register("zoo_rowdot")
struct RowDot:
    """out[m, n] = sum over k of x[m, k] * w[n, k] (dense row-major float32)."""

    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype = DType.float32, rank=2, ...],
        x: InputTensor[dtype = DType.float32, rank=2, ...],
        w: InputTensor[dtype = DType.float32, rank=2, ...],
    ) raises:
        row_dot[False](output, x, w, w)


@extensibility.register("zoo_rowdot_bias")
struct RowDotBias:
    """out[m, n] = bias[0, n] + sum over k of x[m, k] * w[n, k] (dense row-major float32)."""

    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype = DType.float32, rank=2, ...],
        x: InputTensor[dtype = DType.float32, rank=2, ...],
        w: InputTensor[dtype = DType.float32, rank=2, ...],
        bias: InputTensor[dtype = DType.float32, rank=2, ...],
    ) raises:
        row_dot[True](output, x, w, bias)


@extensibility.register("zoo_rowdot_bias_gelu_tanh")
struct RowDotBiasGeluTanh:
    """gelu_tanh(bias[0, n] + sum over k of x[m, k] * w[n, k]): GPT-2's MLP up-projection."""

    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype = DType.float32, rank=2, ...],
        x: InputTensor[dtype = DType.float32, rank=2, ...],
        w: InputTensor[dtype = DType.float32, rank=2, ...],
        bias: InputTensor[dtype = DType.float32, rank=2, ...],
    ) raises:
        row_dot[True, GELU_TANH](output, x, w, bias)
