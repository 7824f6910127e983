"""Kernels for weights kept in GGML block encodings (and bfloat16/float16).

A weight is (n, row_bytes) uint8: each row is a run of blocks along the
columns, exactly as GGUF stores it. Every encoding is read 32 values at a
time (a "chunk"): a Q8_0/Q4_0 block is one chunk, a K-quant super-block of
256 values is eight, and bf16/f16 rows are cut into chunks of 32 values
(64 bytes) with a scalar tail. `decode_chunk` turns one chunk into 32
float32 values exactly as the reference decoders do (the `gguf` package's
NumPy code, llama.cpp's `dequantize_row_*`).

- `zoo_qrowdot` (+ `_bias`, + `_bias_gelu_tanh`): y = x @ w.T for a few rows
  of float32 x (the decode step), reading each weight byte once from memory
  and accumulating in float32; weight rows are taken four at a time in blocks
  from a shared counter, as `zoo_rowdot` does for float32 weights.
- `zoo_dequantize`: the float32 (n, cols) values, for the prefill graph's
  matmul and for embedding rows.

The encoding is the op's `encoding` parameter (the codes below).
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from std.atomic import Atomic
from std.math import sqrt, tanh
from std.memory import bitcast
from std.sys import num_physical_cores
from std.sys.intrinsics import PrefetchOptions, prefetch

comptime BF16 = 0
comptime F16 = 1
comptime Q8_0 = 2
comptime Q4_0 = 3
comptime Q4_K = 4
comptime Q5_K = 5
comptime Q6_K = 6

comptime CHUNK = 32  # values decoded at a time
comptime BLOCKS_PER_CORE = 16
comptime PREFETCH_AHEAD = 1024  # bytes ahead in each weight row
comptime NO_ACTIVATION = 0
comptime GELU_TANH = 1

comptime Bytes = Pointer[UInt8, _]
comptime Floats = Pointer[Float32, MutAnyOrigin]
comptime Chunk = SIMD[DType.float32, CHUNK]


def block_values[enc: Int]() -> Int:
    """Values per storage block (bf16/f16 rows are read in chunks of 32)."""
    comptime if enc == Q4_K or enc == Q5_K or enc == Q6_K:
        return 256
    return 32


def block_bytes[enc: Int]() -> Int:
    """Bytes per storage block (for bf16/f16: per 32 values)."""
    comptime if enc == BF16 or enc == F16:
        return 64
    comptime if enc == Q8_0:
        return 34
    comptime if enc == Q4_0:
        return 18
    comptime if enc == Q4_K:
        return 144
    comptime if enc == Q5_K:
        return 176
    return 210


@always_inline
def half(p: Bytes) -> Float32:
    """The little-endian float16 at p, as float32."""
    return p.bitcast[Float16]().load().cast[DType.float32]()


@always_inline
def k_scale_min(scales: Bytes, j: Int) -> Tuple[Float32, Float32]:
    """Sub-block j's 6-bit scale and min of a Q4_K/Q5_K super-block."""
    if j < 4:
        return (Float32(Int(scales.load(j)) & 63), Float32(Int(scales.load(j + 4)) & 63))
    var sc = (Int(scales.load(j + 4)) & 0xF) | ((Int(scales.load(j - 4)) >> 6) << 4)
    var mn = (Int(scales.load(j + 4)) >> 4) | ((Int(scales.load(j)) >> 6) << 4)
    return (Float32(sc), Float32(mn))


@always_inline
def decode_chunk[enc: Int](block: Bytes, c: Int) -> Chunk:
    """Values 32c .. 32c + 31 of the storage block at `block`, as float32."""
    comptime if enc == BF16:
        var raw = (block + 64 * c).bitcast[UInt16]().load[width=CHUNK]()
        return bitcast[DType.float32, CHUNK](raw.cast[DType.uint32]() << 16)
    comptime if enc == F16:
        return (block + 64 * c).bitcast[Float16]().load[width=CHUNK]().cast[DType.float32]()
    comptime if enc == Q8_0:
        var q = (block + 2).bitcast[Int8]().load[width=CHUNK]()
        return q.cast[DType.float32]() * half(block)
    comptime if enc == Q4_0:
        var q = (block + 2).load[width=16]()
        var both = (q & 15).join(q >> 4)
        return (both.cast[DType.float32]() - 8) * half(block)
    comptime if enc == Q4_K:
        var d = half(block)
        var dmin = half(block + 2)
        var sm = k_scale_min(block + 4, c)
        var q = (block + 16 + 32 * (c // 2)).load[width=CHUNK]()
        q = (q >> UInt8(4 * (c % 2))) & 15
        return (d * sm[0]) * q.cast[DType.float32]() - dmin * sm[1]
    comptime if enc == Q5_K:
        var d = half(block)
        var dmin = half(block + 2)
        var sm = k_scale_min(block + 4, c)
        var qh = (block + 16).load[width=CHUNK]()
        var q = (block + 48 + 32 * (c // 2)).load[width=CHUNK]()
        q = ((q >> UInt8(4 * (c % 2))) & 15) | (((qh >> UInt8(c)) & 1) << 4)
        return (d * sm[0]) * q.cast[DType.float32]() - dmin * sm[1]
    # Q6_K: ql[128], qh[64], int8 scales[16], d; chunk c is quarter c % 4 of half c // 4.
    var h = c // 4
    var quarter = c % 4
    var ql = (block + 64 * h + 32 * (quarter % 2)).load[width=CHUNK]()
    var qh = (block + 128 + 32 * h).load[width=CHUNK]()
    var q = ((ql >> UInt8(4 * (quarter // 2))) & 15) | (((qh >> UInt8(2 * quarter)) & 3) << 4)
    var d = half(block + 208)
    var scales = (block + 192).bitcast[Int8]()
    var lo = d * Float32(scales.load(2 * c))
    var hi = d * Float32(scales.load(2 * c + 1))
    var scale = SIMD[DType.float32, 16](lo).join(SIMD[DType.float32, 16](hi))
    return scale * (q.cast[DType.int8]() - 32).cast[DType.float32]()


@always_inline
def decode_scalar[enc: Int](row: Bytes, i: Int) -> Float32:
    """Value i of a bf16/f16 row (the tail past the last full chunk)."""
    comptime if enc == BF16:
        var bits = UInt32((row + 2 * i).bitcast[UInt16]().load())
        return bitcast[DType.float32, 1](bits << 16)[0]
    return half(row + 2 * i)


def qrow_dot[
    enc: Int, with_bias: Bool, activation: Int
](
    output: OutputTensor[dtype = DType.float32, rank=2, ...],
    x: InputTensor[dtype = DType.float32, rank=2, ...],
    w: InputTensor[dtype = DType.uint8, rank=2, ...],
    bias: InputTensor[dtype = DType.float32, rank=2, ...],
):
    """output[m, j] = activation(sum over k of x[m, k] * w[j, k] (+ bias[0, j]))."""
    comptime BV = block_values[enc]()
    comptime BB = block_bytes[enc]()
    comptime CHUNKS = BV // CHUNK
    var rows = x.dim_size(0)
    var k = x.dim_size(1)
    var n = w.dim_size(0)
    var row_bytes = w.dim_size(1)
    var blocks_per_row = k // BV
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
        comptime if activation == GELU_TANH:
            comptime c = sqrt(2 / 3.141592653589793)
            y = 0.5 * y * (1 + tanh(Float32(c) * (y + 0.044715 * y * y * y)))
        op.store(m * n + j, y)

    def tail(wrow: Bytes, xrow: Floats) {var k, var blocks_per_row} -> Float32:
        var t: Float32 = 0
        comptime if enc == BF16 or enc == F16:
            for i in range(blocks_per_row * CHUNK, k):
                t += xrow.load(i) * decode_scalar[enc](wrow, i)
        return t

    def work(worker: Int) {var rows, var k, var n, var row_bytes, var blocks_per_row, var xp, var wp, var block, var blocks, var next_block, var finish, var tail}:
        while True:
            var b = Int(Atomic[Int64].fetch_add(next_block, 1))
            if b >= blocks:
                break
            var j = b * block
            var end = min(j + block, n)
            while j + 4 <= end:
                var w0 = wp + j * row_bytes
                for m in range(rows):
                    var xrow = xp + m * k
                    var a0 = Chunk(0)
                    var a1 = Chunk(0)
                    var a2 = Chunk(0)
                    var a3 = Chunk(0)
                    for s in range(blocks_per_row):
                        var off = s * BB
                        if m == 0:
                            comptime options = PrefetchOptions().for_read().high_locality()
                            comptime for line in range((BB + 63) // 64):
                                prefetch[options](w0 + off + line * 64 + PREFETCH_AHEAD)
                                prefetch[options](w0 + row_bytes + off + line * 64 + PREFETCH_AHEAD)
                                prefetch[options](w0 + 2 * row_bytes + off + line * 64 + PREFETCH_AHEAD)
                                prefetch[options](w0 + 3 * row_bytes + off + line * 64 + PREFETCH_AHEAD)
                        comptime for c in range(CHUNKS):
                            var xv = xrow.load[width=CHUNK](s * BV + c * CHUNK)
                            a0 += xv * decode_chunk[enc](w0 + off, c)
                            a1 += xv * decode_chunk[enc](w0 + row_bytes + off, c)
                            a2 += xv * decode_chunk[enc](w0 + 2 * row_bytes + off, c)
                            a3 += xv * decode_chunk[enc](w0 + 3 * row_bytes + off, c)
                    finish(m, j, a0.reduce_add() + tail(w0, xrow))
                    finish(m, j + 1, a1.reduce_add() + tail(w0 + row_bytes, xrow))
                    finish(m, j + 2, a2.reduce_add() + tail(w0 + 2 * row_bytes, xrow))
                    finish(m, j + 3, a3.reduce_add() + tail(w0 + 3 * row_bytes, xrow))
                j += 4
            while j < end:
                var wr = wp + j * row_bytes
                for m in range(rows):
                    var xrow = xp + m * k
                    var acc = Chunk(0)
                    for s in range(blocks_per_row):
                        comptime for c in range(CHUNKS):
                            acc += xrow.load[width=CHUNK](s * BV + c * CHUNK) * decode_chunk[enc](wr + s * BB, c)
                    finish(m, j, acc.reduce_add() + tail(wr, xrow))
                j += 1

    sync_parallelize(work, workers)
    next_block.free()


def dequantize_rows[enc: Int](
    output: OutputTensor[dtype = DType.float32, rank=2, ...],
    w: InputTensor[dtype = DType.uint8, rank=2, ...],
):
    """output[j, :] = the float32 values of row j, rows spread over the cores."""
    comptime BV = block_values[enc]()
    comptime BB = block_bytes[enc]()
    comptime CHUNKS = BV // CHUNK
    var n = w.dim_size(0)
    var row_bytes = w.dim_size(1)
    var k = output.dim_size(1)
    var blocks_per_row = k // BV
    var wp = w.unsafe_ptr()
    var op = output.unsafe_ptr()
    var workers = num_physical_cores()
    var per = (n + workers - 1) // workers

    def work(worker: Int) {var n, var row_bytes, var k, var blocks_per_row, var wp, var op, var per}:
        for j in range(worker * per, min(n, (worker + 1) * per)):
            var wrow = wp + j * row_bytes
            var orow = op + j * k
            for s in range(blocks_per_row):
                comptime for c in range(CHUNKS):
                    orow.store(s * BV + c * CHUNK, decode_chunk[enc](wrow + s * BB, c))
            comptime if enc == BF16 or enc == F16:
                for i in range(blocks_per_row * CHUNK, k):
                    orow.store(i, decode_scalar[enc](wrow, i))

    sync_parallelize(work, workers)


@extensibility.register("zoo_qrowdot")
struct QRowDot:
    """out[m, n] = sum over k of x[m, k] * w[n, k], w in `encoding`."""

    @staticmethod
    def execute[
        target: StaticString, encoding: Int
    ](
        output: OutputTensor[dtype = DType.float32, rank=2, ...],
        x: InputTensor[dtype = DType.float32, rank=2, ...],
        w: InputTensor[dtype = DType.uint8, rank=2, ...],
    ) raises:
        qrow_dot[encoding, False, NO_ACTIVATION](output, x, w, x)


@extensibility.register("zoo_qrowdot_bias")
struct QRowDotBias:
    """out[m, n] = bias[0, n] + sum over k of x[m, k] * w[n, k], w in `encoding`."""

    @staticmethod
    def execute[
        target: StaticString, encoding: Int
    ](
        output: OutputTensor[dtype = DType.float32, rank=2, ...],
        x: InputTensor[dtype = DType.float32, rank=2, ...],
        w: InputTensor[dtype = DType.uint8, rank=2, ...],
        bias: InputTensor[dtype = DType.float32, rank=2, ...],
    ) raises:
        qrow_dot[encoding, True, NO_ACTIVATION](output, x, w, bias)


@extensibility.register("zoo_qrowdot_bias_gelu_tanh")
struct QRowDotBiasGeluTanh:
    """gelu_tanh(bias[0, n] + sum over k of x[m, k] * w[n, k]), w in `encoding`."""

    @staticmethod
    def execute[
        target: StaticString, encoding: Int
    ](
        output: OutputTensor[dtype = DType.float32, rank=2, ...],
        x: InputTensor[dtype = DType.float32, rank=2, ...],
        w: InputTensor[dtype = DType.uint8, rank=2, ...],
        bias: InputTensor[dtype = DType.float32, rank=2, ...],
    ) raises:
        qrow_dot[encoding, True, GELU_TANH](output, x, w, bias)


@extensibility.register("zoo_dequantize")
struct Dequantize:
    """out[n, :] = the float32 values of row n of w, in `encoding`."""

    @staticmethod
    def execute[
        target: StaticString, encoding: Int
    ](
        output: OutputTensor[dtype = DType.float32, rank=2, ...],
        w: InputTensor[dtype = DType.uint8, rank=2, ...],
    ) raises:
        dequantize_rows[encoding](output, w)
