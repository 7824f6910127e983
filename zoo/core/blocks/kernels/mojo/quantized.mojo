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
  from a shared counter, as `zoo_rowdot` does for float32 weights. Decoding
  is what bounds this on a CPU, so `block_dot` multiplies each chunk's 32
  products by its scale once (and Q4_K/Q5_K mins by the chunk's sum of x)
  rather than scaling every value first.
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
comptime Floats = Pointer[Float32, _]
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


comptime Lanes = SIMD[DType.float32, 16]


@always_inline
def broadcast_half(p: Bytes) -> Lanes:
    """The float16 at p, as float32 in every lane."""
    return SIMD[DType.float16, 16](p.bitcast[Float16]().load()).cast[DType.float32]()


@always_inline
def dot32(q: Chunk, x: Chunk) -> Lanes:
    """The 32 products q * x folded into 16 lanes."""
    var lo = q.slice[16, offset=0]() * x.slice[16, offset=0]()
    return q.slice[16, offset=16]().fma(x.slice[16, offset=16](), lo)


@always_inline
def k_scales_mins(scales: Bytes) -> Tuple[SIMD[DType.float32, 8], SIMD[DType.float32, 8]]:
    """The eight 6-bit scales and mins of a Q4_K/Q5_K super-block."""
    var raw = scales.load[width=16]()  # 12 bytes used
    var a = raw.slice[4, offset=0]()
    var b = raw.slice[4, offset=4]()
    var c = raw.slice[4, offset=8]()
    var sc = (a & 63).join((c & 15) | ((a >> 6) << 4))
    var mn = (b & 63).join((c >> 4) | ((b >> 6) << 4))
    return (sc.cast[DType.float32](), mn.cast[DType.float32]())


@always_inline
def block_dot[enc: Int](block: Bytes, x: Floats, xs: Floats, mut acc: Lanes, mut off: SIMD[DType.float32, 8]):
    """Adds the dot product of one storage block with x (at the block's first value) to
    acc (16 lanes to be summed) and, for Q4_K/Q5_K, the mins' share (d_min * m * sum of
    the chunk's x, `xs` holding those sums) to `off` (subtracted at the end).

    The per-chunk scale multiplies a chunk's 32 products once, instead of each value."""
    comptime if enc == BF16 or enc == F16:
        var w = decode_chunk[enc](block, 0)
        var xv = x.load[width=CHUNK]()
        acc = w.slice[16, offset=0]().fma(xv.slice[16, offset=0](), acc)
        acc = w.slice[16, offset=16]().fma(xv.slice[16, offset=16](), acc)
    elif enc == Q8_0:
        var q = (block + 2).bitcast[Int8]().load[width=CHUNK]()
        acc = broadcast_half(block).fma(dot32(q.cast[DType.float32](), x.load[width=CHUNK]()), acc)
    elif enc == Q4_0:
        var raw = (block + 2).load[width=16]()
        var lo = ((raw & 15).cast[DType.int8]() - 8).cast[DType.float32]() * x.load[width=16]()
        var p = ((raw >> 4).cast[DType.int8]() - 8).cast[DType.float32]().fma(x.load[width=16](16), lo)
        acc = broadcast_half(block).fma(p, acc)
    elif enc == Q4_K or enc == Q5_K:
        var d = half(block)
        var dmin = half(block + 2)
        var sm = k_scales_mins(block + 4)
        var scale = sm[0] * d
        off = (sm[1] * dmin).fma(xs.load[width=8](), off)
        comptime QS = 16 if enc == Q4_K else 48
        var qh = SIMD[DType.uint8, CHUNK](0)
        comptime if enc == Q5_K:
            qh = (block + 16).load[width=CHUNK]()
        comptime for pair in range(4):
            var raw = (block + QS + 32 * pair).load[width=CHUNK]()
            comptime for half_ in range(2):
                comptime c = 2 * pair + half_
                var q = (raw >> UInt8(4 * half_)) & 15
                comptime if enc == Q5_K:
                    q = q | (((qh >> UInt8(c)) & 1) << 4)
                var p = dot32(q.cast[DType.float32](), x.load[width=CHUNK](c * CHUNK))
                acc = Lanes(scale[c]).fma(p, acc)
    else:  # Q6_K
        var d = half(block + 208)
        var scales = (block + 192).bitcast[Int8]().load[width=16]().cast[DType.float32]() * d
        comptime for h in range(2):
            var qh = (block + 128 + 32 * h).load[width=CHUNK]()
            comptime for quarter in range(4):
                comptime c = 4 * h + quarter
                var ql = (block + 64 * h + 32 * (quarter % 2)).load[width=CHUNK]()
                var q = (((ql >> UInt8(4 * (quarter // 2))) & 15) | (((qh >> UInt8(2 * quarter)) & 3) << 4)).cast[DType.int8]() - 32
                var y = q.cast[DType.float32]() * x.load[width=CHUNK](c * CHUNK)
                acc = Lanes(scales[2 * c]).fma(y.slice[16, offset=0](), acc)
                acc = Lanes(scales[2 * c + 1]).fma(y.slice[16, offset=16](), acc)


def chunk_sums(x: Floats, sums: Pointer[Float32, MutUntrackedOrigin], rows: Int, k: Int):
    """Per row of x, the sum of each 32-value chunk (Q4_K/Q5_K subtract their mins' share)."""
    var chunks = k // CHUNK
    for m in range(rows):
        for c in range(chunks):
            sums.store(m * chunks + c, x.load[width=CHUNK](m * k + c * CHUNK).reduce_add())


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
    comptime Offsets = SIMD[DType.float32, 8]
    var rows = x.dim_size(0)
    var k = x.dim_size(1)
    var n = w.dim_size(0)
    var row_bytes = w.dim_size(1)
    var blocks_per_row = k // BV
    var xp = x.unsafe_ptr()
    var wp = w.unsafe_ptr()
    var bp = bias.unsafe_ptr()
    var op = output.unsafe_ptr()
    var sums = alloc[Float32](rows * (k // CHUNK) + 1)
    comptime if enc == Q4_K or enc == Q5_K:
        chunk_sums(xp, sums, rows, k)
    var workers = num_physical_cores()
    var block = (n + workers * BLOCKS_PER_CORE - 1) // (workers * BLOCKS_PER_CORE)
    block = ((block + 3) // 4) * 4
    var blocks = (n + block - 1) // block
    var next_block = alloc[Int64](1)
    next_block[0] = 0

    def finish(m: Int, j: Int, acc: Lanes, off: Offsets, tail: Float32) {var op, var bp, var n}:
        var y = acc.reduce_add() - off.reduce_add() + tail
        comptime if with_bias:
            y += bp.load(j)
        comptime if activation == GELU_TANH:
            comptime c = sqrt(2 / 3.141592653589793)
            y = 0.5 * y * (1 + tanh(Float32(c) * (y + 0.044715 * y * y * y)))
        op.store(m * n + j, y)

    def work(worker: Int) {var rows, var k, var n, var row_bytes, var blocks_per_row, var xp, var wp, var sums, var block, var blocks, var next_block, var finish}:
        var chunks = k // CHUNK
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
                    var xs = sums + m * chunks
                    var a0 = Lanes(0)
                    var a1 = Lanes(0)
                    var a2 = Lanes(0)
                    var a3 = Lanes(0)
                    var o0 = Offsets(0)
                    var o1 = Offsets(0)
                    var o2 = Offsets(0)
                    var o3 = Offsets(0)
                    for s in range(blocks_per_row):
                        var off = s * BB
                        if m == 0:
                            comptime options = PrefetchOptions().for_read().high_locality()
                            comptime for line in range((BB + 63) // 64):
                                prefetch[options](w0 + off + line * 64 + PREFETCH_AHEAD)
                                prefetch[options](w0 + row_bytes + off + line * 64 + PREFETCH_AHEAD)
                                prefetch[options](w0 + 2 * row_bytes + off + line * 64 + PREFETCH_AHEAD)
                                prefetch[options](w0 + 3 * row_bytes + off + line * 64 + PREFETCH_AHEAD)
                        var xb = xrow + s * BV
                        var xsb = xs + s * CHUNKS
                        block_dot[enc](w0 + off, xb, xsb, a0, o0)
                        block_dot[enc](w0 + row_bytes + off, xb, xsb, a1, o1)
                        block_dot[enc](w0 + 2 * row_bytes + off, xb, xsb, a2, o2)
                        block_dot[enc](w0 + 3 * row_bytes + off, xb, xsb, a3, o3)
                    finish(m, j, a0, o0, tail_dot[enc](w0, xrow, blocks_per_row, k))
                    finish(m, j + 1, a1, o1, tail_dot[enc](w0 + row_bytes, xrow, blocks_per_row, k))
                    finish(m, j + 2, a2, o2, tail_dot[enc](w0 + 2 * row_bytes, xrow, blocks_per_row, k))
                    finish(m, j + 3, a3, o3, tail_dot[enc](w0 + 3 * row_bytes, xrow, blocks_per_row, k))
                j += 4
            while j < end:
                var wr = wp + j * row_bytes
                for m in range(rows):
                    var xrow = xp + m * k
                    var acc = Lanes(0)
                    var offs = Offsets(0)
                    for s in range(blocks_per_row):
                        block_dot[enc](wr + s * BB, xrow + s * BV, sums + m * chunks + s * CHUNKS, acc, offs)
                    finish(m, j, acc, offs, tail_dot[enc](wr, xrow, blocks_per_row, k))
                j += 1

    sync_parallelize(work, workers)
    next_block.free()
    sums.free()


@always_inline
def tail_dot[enc: Int](wrow: Bytes, xrow: Floats, blocks_per_row: Int, k: Int) -> Float32:
    """The values of a bf16/f16 row past its last full chunk, dotted with x (0 otherwise)."""
    var t: Float32 = 0
    comptime if enc == BF16 or enc == F16:
        for i in range(blocks_per_row * CHUNK, k):
            t += xrow.load(i) * decode_scalar[enc](wrow, i)
    return t


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
