"""Kernels for weights kept in GGML block encodings (and bfloat16/float16).

A weight is (n, row_bytes) uint8: each row is a run of blocks along the
columns, exactly as GGUF stores it. Every encoding is read 32 values at a
time (a "chunk"): a Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/IQ4_NL block is one chunk, a super-block of
256 values (the K-quants, IQ4_XS) is eight, and bf16/f16 rows are cut into chunks of 32 values
(64 bytes) with a scalar tail. `decode_chunk` turns one chunk into 32
float32 values exactly as the reference decoders do (the `gguf` package's
NumPy code, llama.cpp's `dequantize_row_*`).

- `zoo_qrowdot` (+ `_bias`, + `_bias_gelu_tanh`): y = x @ w.T for a few rows
  of float32 x (the decode step), reading each weight byte once from memory.
  The cores take blocks of weight rows from a shared counter, as `zoo_rowdot`
  does for float32 weights (a few long blocks each), and stream each weight row
  once, front to back, prefetching ahead, against up to four rows of x at a
  time, with several accumulators.
  Every encoding but Q4_0, bf16 and f16 is multiplied in integers, as llama.cpp does: each row
  of x is first quantized to 8 bits per block of 32 (`quantize_rows`), then
  each block is an int8 dot product (AVX-512 VNNI's vpdpbusd where the CPU has
  it) scaled in float32. That rounds x about as finely as Q8_0 rounds the weights.
  bf16/f16 and Q4_0 are decoded and multiplied in float32 (a Q4_0 block's 32
  products scaled once, `q4_0_block_dot`).
  From a few rows of x on (prefill, `tiled_rows`), the integer encodings, bf16 and f16 take
  `tiled_dot`: x is laid out with 16 rows side by side in each vector, a
  panel of a few weight rows is decoded once into a small buffer (bytes for
  the integer dot products, float32 for bf16/f16) and multiplied by every
  tile of x, one weight value broadcast against 16 rows of x per instruction
  (512-bit vpdpbusd; FMA), with the same integer products and per-block
  scaling as the row path. Where the CPU has AVX512-BF16, bf16 rows of an even
  length are multiplied as llama.cpp does: x rounded to bf16, two products per
  float32 lane summed by one vdpbf16ps, each weight pair read as stored.
- `zoo_dequantize`: the float32 (n, cols) values, for the embedding rows a
  step looks up.

The encoding is the op's `encoding` parameter (the codes below).
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from std.atomic import Atomic
from std.math import iota, sqrt, tanh
from std.memory import bitcast, stack_allocation
from std.sys import CompilationTarget, num_physical_cores
from std.sys.intrinsics import PrefetchOptions, llvm_intrinsic, prefetch
from std.utils import StaticTuple

comptime BF16 = 0
comptime F16 = 1
comptime Q8_0 = 2
comptime Q4_0 = 3
comptime Q4_K = 4
comptime Q5_K = 5
comptime Q6_K = 6
comptime Q4_1 = 7
comptime Q5_0 = 8
comptime Q5_1 = 9
comptime Q3_K = 10
comptime IQ4_NL = 11
comptime IQ4_XS = 12
comptime Q2_K = 13

comptime CHUNK = 32  # values decoded at a time
comptime BLOCKS_PER_CORE = 4  # work items per core: few, so each core streams long runs of rows
comptime RUNS_PER_CORE = 16  # work items per core in the many-rows path
comptime PREFETCH_AHEAD = 2048  # bytes ahead in the weight rows
comptime NO_ACTIVATION = 0
comptime GELU_TANH = 1

comptime Bytes = Pointer[UInt8, _]
comptime Floats = Pointer[Float32, _]
comptime Chunk = SIMD[DType.float32, CHUNK]


def block_values[enc: Int]() -> Int:
    """Values per storage block (bf16/f16 rows are read in chunks of 32)."""
    comptime if enc == Q4_K or enc == Q5_K or enc == Q6_K or enc == Q2_K or enc == Q3_K or enc == IQ4_XS:
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
    comptime if enc == Q4_1:
        return 20
    comptime if enc == Q5_0:
        return 22
    comptime if enc == Q5_1:
        return 24
    comptime if enc == Q3_K:
        return 110
    comptime if enc == IQ4_NL:
        return 18
    comptime if enc == IQ4_XS:
        return 136
    comptime if enc == Q2_K:
        return 84
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
    comptime if enc == Q4_0:
        var q = (block + 2).load[width=16]()
        var both = (q & 15).join(q >> 4)
        return (both.cast[DType.float32]() - 8) * half(block)
    comptime if small_blocks[enc]():
        var q = small_quants[enc](block).cast[DType.float32]()
        comptime if has_mins[enc]():
            return q * half(block) + half(block + 2)
        return (q - Float32(offset_of[enc]())) * half(block)
    comptime if enc == Q4_K or enc == Q5_K:
        var sm = k_scale_min(block + 4, c)
        var q = k_quants[enc](block, (block + 16).load[width=CHUNK](), c)
        return (half(block) * sm[0]) * q.cast[DType.float32]() - half(block + 2) * sm[1]
    var scales = sub_scales[enc](block)
    comptime if enc == Q2_K:
        var q = offset_quants[enc](block, c).cast[DType.float32]()
        var mins = sub_mins(block)
        var scale = SIMD[DType.float32, 16](scales[2 * c]).join(SIMD[DType.float32, 16](scales[2 * c + 1]))
        var low = SIMD[DType.float32, 16](mins[2 * c]).join(SIMD[DType.float32, 16](mins[2 * c + 1]))
        return scale * q - low
    var q = offset_quants[enc](block, c).cast[DType.float32]() - Float32(offset_of[enc]())
    comptime if sub_blocks[enc]() == 2:
        return SIMD[DType.float32, 16](scales[2 * c]).join(SIMD[DType.float32, 16](scales[2 * c + 1])) * q
    return scales[c] * q


@always_inline
def q6_k_quants(block: Bytes, c: Int) -> SIMD[DType.uint8, CHUNK]:
    """Chunk c's 32 quants (0..63, each 32 above its value) of a Q6_K super-block: ql[128],
    qh[64], int8 scales[16], d; chunk c is quarter c % 4 of half c // 4."""
    var h = c // 4
    var quarter = c % 4
    var ql = (block + 64 * h + 32 * (quarter % 2)).load[width=CHUNK]()
    var qh = (block + 128 + 32 * h).load[width=CHUNK]()
    return ((ql >> UInt8(4 * (quarter // 2))) & 15) | (((qh >> UInt8(2 * quarter)) & 3) << 4)


def small_blocks[enc: Int]() -> Bool:
    """Whether `enc` is one of GGML's 32-value blocks multiplied in integers, x = d * (q - offset)
    or d * q + m: Q8_0 (d; int8 quants, read 128 above), Q4_1 (d, m), Q5_0 (d; quants 16
    above), Q5_1 (d, m) and IQ4_NL (d; 4-bit indices into a table of 16 int8 values, read
    128 above)."""
    return enc == Q8_0 or enc == Q4_1 or enc == Q5_0 or enc == Q5_1 or enc == IQ4_NL


def scaled_blocks[enc: Int]() -> Bool:
    """Whether `enc` is a super-block of 256 values with a scale per sub-block,
    x = d * scale * (q - offset): Q6_K and Q3_K (16 sub-blocks of 16, signed scales) and
    IQ4_XS (8 of 32); or, with a min per sub-block, x = d * scale * q - d_min * min: Q2_K
    (16 of 16)."""
    return enc == Q6_K or enc == Q3_K or enc == IQ4_XS or enc == Q2_K


def share_shift[enc: Int]() -> Int:
    """log2 of 128 over `enc`'s quant offset: its dot products start from x's `unsigned_share`
    shifted right this far."""
    comptime if enc == Q5_0:
        return 3
    comptime if enc == Q6_K:
        return 2
    comptime if enc == Q3_K:
        return 5
    comptime if enc == Q2_K:
        return 7
    return 0


def offset_of[enc: Int]() -> Int:
    """How far above its value each quant of `enc` is read (128, 16, 32 or 4; Q2_K's 1 is the
    weight of its mins' term, x's sums)."""
    return 128 >> share_shift[enc]()


# IQ4_NL's 16 values (llama.cpp's kvalues_iq4nl), each plus 128
comptime IQ4_VALUES = SIMD[DType.uint8, 16](1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241)


@always_inline
def iq4_quants(raw: SIMD[DType.uint8, 16]) -> SIMD[DType.uint8, CHUNK]:
    """The 32 quants of 16 IQ4_NL/IQ4_XS bytes (values 0-15 in the low nibbles, 16-31 in the
    high ones), each its table value + 128."""
    return IQ4_VALUES._dynamic_shuffle(raw & 15).join(IQ4_VALUES._dynamic_shuffle(raw >> 4))


@always_inline
def small_quants[enc: Int](block: Bytes) -> SIMD[DType.uint8, CHUNK]:
    """The 32 quants of a `small_blocks` block: Q8_0's int8 quants + 128; Q4_1 (0..15), Q5_0
    or Q5_1 (0..31): values 0-15 in the low nibbles of its 16 quant bytes, 16-31 in the high
    ones, Q5's fifth bits, value i's at bit i, in the 32-bit word before them; IQ4_NL's table
    values + 128."""
    comptime if enc == Q8_0:
        return (block + 2).load[width=CHUNK]() ^ 128
    comptime if enc == IQ4_NL:
        return iq4_quants((block + 2).load[width=16]())
    comptime QS = 4 if enc == Q4_1 else (6 if enc == Q5_0 else 8)
    var raw = (block + QS).load[width=16]()
    var q = (raw & 15).join(raw >> 4)
    comptime if enc != Q4_1:
        var qh = SIMD[DType.uint32, CHUNK]((block + QS - 4).bitcast[UInt32]().load())
        q |= (((qh >> iota[DType.uint32, CHUNK]()) & 1) << 4).cast[DType.uint8]()
    return q


@always_inline
def offset_quants[enc: Int](block: Bytes, c: Int) -> SIMD[DType.uint8, CHUNK]:
    """Chunk c's 32 quants of a `scaled_blocks` super-block, each `offset_of` above its value.
    Q6_K: ql[128], qh[64], int8 scales[16], d; chunk c is quarter c % 4 of half c // 4.
    Q3_K: hmask[32] (chunk c's third bits at bit c), qs[64] (chunk c's low 2 bits at bits
    2 * (c % 4) of half c // 4), scales[12], d. IQ4_XS: d, scales_h[2], scales_l[4], qs[128]
    (16 bytes per chunk). Q2_K: scales[16], qs[64] (as Q3_K's), d, d_min; its quants (0..3)
    are not offset."""
    comptime if enc == Q6_K:
        return q6_k_quants(block, c)
    comptime if enc == Q3_K or enc == Q2_K:
        comptime QS = 32 if enc == Q3_K else 16
        var low = ((block + QS + 32 * (c // 4)).load[width=CHUNK]() >> UInt8(2 * (c % 4))) & 3
        comptime if enc == Q2_K:
            return low
        return low | (((block.load[width=CHUNK]() >> UInt8(c)) & 1) << 2)
    return iq4_quants((block + 8 + 16 * c).load[width=16]())


@always_inline
def sub_mins(block: Bytes) -> SIMD[DType.float32, 16]:
    """d_min times each sub-block's 4-bit min (high nibbles of scales) of a Q2_K super-block."""
    return ((block.load[width=16]() >> 4).cast[DType.float32]()) * half(block + 82)


@always_inline
def sub_scales[enc: Int](block: Bytes) -> SIMD[DType.float32, 16]:
    """d times each sub-block's scale of a `scaled_blocks` super-block, in order: Q6_K's int8
    scales; Q3_K's 6-bit ones less 32 (low nibbles: sub-blocks 0-7 in bytes 0-7, 8-15 in
    their high nibbles; the top two bits in bytes 8-11, shifted by 0, 2, 4, 6 for sub-blocks
    0-3, 4-7, 8-11, 12-15); IQ4_XS's 8 6-bit ones less 32 (low nibbles in scales_l, two a byte;
    top bits two each in scales_h), lanes 8-15 zero; Q2_K's 4-bit ones (low nibbles)."""
    comptime if enc == Q2_K:
        return ((block.load[width=16]() & 15).cast[DType.float32]()) * half(block + 80)
    comptime if enc == Q6_K:
        return (block + 192).bitcast[Int8]().load[width=16]().cast[DType.float32]() * half(block + 208)
    comptime if enc == Q3_K:
        var low = (block + 96).load[width=8]()
        var top = (block + 104).load[width=4]()
        var high = ((top & 3).join((top >> 2) & 3)).join(((top >> 4) & 3).join(top >> 6))
        var sc = (low & 15).join(low >> 4) | (high << 4)
        return (sc.cast[DType.int8]() - 32).cast[DType.float32]() * half(block + 108)
    var low = (block + 4).load[width=4]()
    var nibbles = (low & 15).interleave(low >> 4)
    var top = SIMD[DType.uint16, 8]((block + 2).bitcast[UInt16]().load())
    var high = ((top >> (iota[DType.uint16, 8]() * 2)) & 3).cast[DType.uint8]()
    var sc = ((nibbles | (high << 4)).cast[DType.int8]() - 32).cast[DType.float32]() * half(block)
    return sc.join(SIMD[DType.float32, 8](0))


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
def q4_0_block_dot(block: Bytes, x: Floats, mut acc: Lanes):
    """Adds the dot product of one Q4_0 block with x (at the block's first value) to acc
    (16 lanes to be summed); the block's scale multiplies its 32 products once."""
    var raw = (block + 2).load[width=16]()
    var lo = ((raw & 15).cast[DType.int8]() - 8).cast[DType.float32]() * x.load[width=16]()
    var p = ((raw >> 4).cast[DType.int8]() - 8).cast[DType.float32]().fma(x.load[width=16](16), lo)
    acc = broadcast_half(block).fma(p, acc)


# --- integer dot products ----------------------------------------------------------------------

comptime VNNI = CompilationTarget.has_vnni()
comptime WIDE_VNNI = VNNI and CompilationTarget.has_avx512f()  # 512-bit vpdpbusd
comptime Quants = SIMD[DType.int8, CHUNK]
comptime Octet = SIMD[DType.float32, 8]
comptime Ints = SIMD[DType.int32, 8]
comptime QBytes = Pointer[Int8, _]


def integer_dots[enc: Int]() -> Bool:
    """Whether `enc` is multiplied in integers against x quantized to 8 bits."""
    return enc == Q4_K or enc == Q5_K or small_blocks[enc]() or scaled_blocks[enc]()


def has_mins[enc: Int]() -> Bool:
    """Whether `enc` has per-block mins (Q4_K, Q5_K, Q4_1, Q5_1): its products take x's
    block sums."""
    return enc == Q4_K or enc == Q5_K or enc == Q4_1 or enc == Q5_1


def quants_at[enc: Int]() -> Int:
    """Offset of the 4-bit quants in a Q4_K/Q5_K super-block (Q5_K's fifth bits come first)."""
    return 48 if enc == Q5_K else 16


@always_inline
def k_quants[enc: Int](block: Bytes, qh: SIMD[DType.uint8, CHUNK], c: Int) -> SIMD[DType.uint8, CHUNK]:
    """Sub-block c's 32 quants of a Q4_K (0..15) or Q5_K (0..31, with its fifth bits from qh,
    the super-block's bytes 16..47) super-block."""
    var raw = (block + quants_at[enc]() + 32 * (c // 2)).load[width=CHUNK]()
    var q = (raw >> UInt8(4 * (c % 2))) & 15
    comptime if enc == Q5_K:
        q |= ((qh >> UInt8(c)) & 1) << 4
    return q


def needs_shares[enc: Int]() -> Bool:
    """Whether `enc`'s integer dot products take x's `unsigned_share` (offset quants)."""
    return integer_dots[enc]() and not has_mins[enc]()


def quantize_rows[shares: Bool](
    x: Floats,
    rows: Int,
    k: Int,
    xq: Pointer[Int8, MutUntrackedOrigin],
    xd: Pointer[Float32, MutUntrackedOrigin],
    sums: Pointer[Float32, MutUntrackedOrigin],
    xc: Pointer[Int32, MutUntrackedOrigin],
):
    """x in blocks of 32 as llama.cpp's Q8_0 activations: int8 q = round(x * 127 / max|x|)
    (ties to even), scale d = max|x| / 127 (kept in float32), and d * sum(q) per block;
    with `shares`, also each block's `unsigned_share` (8 int32)."""
    var blocks = k // CHUNK
    for m in range(rows):
        for b in range(blocks):
            var v = x.load[width=CHUNK](m * k + b * CHUNK)
            var amax = abs(v).reduce_max()
            var inv = Float32(127) / amax if amax > 0 else Float32(0)
            var q = llvm_intrinsic["llvm.roundeven", Chunk](v * inv).cast[DType.int8]()
            var d = amax / 127
            xq.store(m * k + b * CHUNK, q)
            comptime if shares:
                xc.store((m * blocks + b) * 8, unsigned_share(q))
            xd.store(m * blocks + b, d)
            sums.store(m * blocks + b, d * Float32(q.cast[DType.int32]().reduce_add()))


@always_inline
def dot_u8_i8(acc: Ints, a: SIMD[DType.uint8, CHUNK], b: Quants) -> Ints:
    """acc + the 32 products a * b (a unsigned, b signed) summed in int32, four consecutive
    ones to a lane (VNNI's vpdpbusd; elsewhere the same sums from int32 products), so lanes
    0-3 hold values 0-15 and lanes 4-7 values 16-31."""
    comptime if VNNI:
        return llvm_intrinsic["llvm.x86.avx512.vpdpbusd.256", Ints](acc, a, b)
    else:
        var products = a.cast[DType.int32]() * b.cast[DType.int32]()
        var pairs = products.deinterleave()
        var sums = (pairs[0] + pairs[1]).deinterleave()  # 16 sums of two, then 8 of four
        return acc + sums[0] + sums[1]


@always_inline
def unsigned_share(x: Quants) -> Ints:
    """-128 times x, summed as `dot_u8_i8` sums products: what
    `dot_u8_i8(unsigned_share(x), w + 128 as unsigned bytes, x)` adds to leave w . x."""
    return Ints(0) - dot_u8_i8(Ints(0), SIMD[DType.uint8, CHUNK](128), x)


# --- one weight row x MR rows of x --------------------------------------------------------------


comptime Totals = Pointer[Float32, MutUntrackedOrigin]


@always_inline
def row_sum[W: Int, A: Int, MR: Int, m: Int](acc: StaticTuple[SIMD[DType.float32, W], A * MR]) -> Float32:
    """The sum of row m's A accumulators, acc[a * MR + m] (the row kernels' accumulator layout)."""
    var t = acc[m]
    comptime for a in range(1, A):
        t += acc[a * MR + m]
    return t.reduce_add()


@always_inline
def prefetch_ahead[BB: Int](step: Bytes):
    """Prefetches the BB bytes PREFETCH_AHEAD past `step` in the weight rows. The hardware
    prefetcher alone falls behind with several rows of x (more arithmetic per weight byte),
    and takes a while to start on each new stretch of rows: decode steps multiply by many
    small weights one after another, each a fresh stream."""
    comptime options = PrefetchOptions().for_read().high_locality()
    comptime for line in range((BB + 63) // 64):
        prefetch[options](step + PREFETCH_AHEAD + line * 64)


def small_block_row[enc: Int, MR: Int](
    w: Bytes, k: Int, xq: QBytes, xd: Floats, xs: Floats, xc: Pointer[Int32, _], totals: Totals
):
    """totals[m] = the `small_blocks` row at w . quantized row m of x: per block an
    unsigned-by-signed int8 dot product of the quants with x times both scales, U blocks at a
    time into separate accumulators. A quant offset is x's `unsigned_share` shifted by
    `share_shift` (Q8_0's and IQ4_NL's 128 the share itself, Q5_0's 16 an eighth of it);
    Q4_1/Q5_1's min is multiplied by x's scale times its quants' sum."""
    comptime BB = block_bytes[enc]()
    comptime U = 4 // MR
    var blocks = k // CHUNK
    var acc = StaticTuple[Octet, U * MR](fill=Octet(0))
    var offs = StaticTuple[Float32, MR](fill=Float32(0))

    @always_inline
    def step[u: Int](s: Int) {mut acc, mut offs, var w, var k, var xq, var xd, var xs, var xc, var blocks}:
        var block = w + s * BB
        var q = small_quants[enc](block)
        var dw = broadcast_half(block).slice[8, offset=0]()
        comptime for m in range(MR):
            var b = m * blocks + s
            var xv = (xq + m * k + s * CHUNK).load[width=CHUNK]()
            var start = Ints(0)
            comptime if needs_shares[enc]():
                start = (xc + b * 8).load[width=8]() >> Int32(share_shift[enc]())
            else:
                offs[m] += half(block + 2) * xs.load(b)
            var p = dot_u8_i8(start, q, xv).cast[DType.float32]() * Octet(xd.load(b))
            acc[u * MR + m] = p.fma(dw, acc[u * MR + m])

    var s = 0
    while s + U <= blocks:
        prefetch_ahead[U * BB](w + s * BB)
        comptime for u in range(U):
            step[u](s + u)
        s += U
    while s < blocks:
        step[0](s)
        s += 1
    comptime for m in range(MR):
        totals.store(m, row_sum[8, U, MR, m](acc) + offs[m])


comptime SEGMENT = 32  # K-quant super-blocks whose scales are worked out ahead of their dot products


def k_quant_row[enc: Int, MR: Int](w: Bytes, k: Int, xq: QBytes, xd: Floats, xs: Floats, totals: Totals):
    """As `small_block_row` for Q4_K and Q5_K: per 32-value sub-block an unsigned-by-signed int8 dot
    product times d * scale * x's scale, less d_min * min * (x's scale * sum of its quants).
    The scales of up to SEGMENT super-blocks are worked out first, so that the dot products
    take each from memory."""
    comptime BB = block_bytes[enc]()
    comptime A = 4 // MR  # accumulators per row of x, taken by sub-block in turn
    var blocks = k // 256
    var chunks = k // CHUNK
    var acc = StaticTuple[Octet, A * MR](fill=Octet(0))
    var offs = StaticTuple[Octet, MR](fill=Octet(0))
    var scales = stack_allocation[MR * SEGMENT * 8, Float32]()
    for start in range(0, blocks, SEGMENT):
        var end = min(start + SEGMENT, blocks)
        for s in range(start, end):
            var block = w + s * BB
            var sm = k_scales_mins(block + 4)
            var scale = sm[0] * half(block)
            var mins = sm[1] * half(block + 2)
            comptime for m in range(MR):
                scales.store((m * SEGMENT + s - start) * 8, scale * xd.load[width=8](m * chunks + s * 8))
                offs[m] = mins.fma(xs.load[width=8](m * chunks + s * 8), offs[m])
        for s in range(start, end):
            var block = w + s * BB
            prefetch_ahead[BB](block)
            var qh = (block + 16).load[width=CHUNK]()  # Q5_K's fifth bits
            comptime for c in range(8):
                var q = k_quants[enc](block, qh, c)
                comptime for m in range(MR):
                    var xv = (xq + m * k + s * 256 + c * CHUNK).load[width=CHUNK]()
                    var p = dot_u8_i8(Ints(0), q, xv).cast[DType.float32]()
                    var sx = Octet(scales.load((m * SEGMENT + s - start) * 8 + c))
                    acc[(c % A) * MR + m] = p.fma(sx, acc[(c % A) * MR + m])
    comptime for m in range(MR):
        totals.store(m, row_sum[8, A, MR, m](acc) - offs[m].reduce_add())


def scaled_row[enc: Int, MR: Int](w: Bytes, k: Int, xq: QBytes, xd: Floats, xc: Pointer[Int32, _], totals: Totals):
    """As `small_block_row` for the `scaled_blocks` (Q6_K, Q3_K, IQ4_XS, Q2_K): per 32-value
    chunk an unsigned-by-signed int8 dot product of the quants with x, plus x's
    `unsigned_share` shifted by `share_shift` for the quants' offset; each sub-block's lanes
    (Q6_K/Q3_K/Q2_K: 0-3 for values 0-15, 4-7 for 16-31) take d times its scale, times x's
    block scale. Q2_K's mins instead take the shifted share (minus x's sums, per lane) times
    d_min * min."""
    comptime BB = block_bytes[enc]()
    comptime S = sub_blocks[enc]()
    comptime A = 4 // MR  # accumulators per row of x, taken by chunk in turn
    var blocks = k // 256
    var chunks = k // CHUNK
    var acc = StaticTuple[Octet, A * MR](fill=Octet(0))
    for s in range(blocks):
        var block = w + s * BB
        prefetch_ahead[BB](block)
        var scales = sub_scales[enc](block)
        var mins = SIMD[DType.float32, 16](0)
        comptime if enc == Q2_K:
            mins = sub_mins(block)
        comptime for c in range(8):
            var q = offset_quants[enc](block, c)
            var scale: Octet
            var low = Octet(0)
            comptime if S == 2:
                scale = SIMD[DType.float32, 4](scales[2 * c]).join(SIMD[DType.float32, 4](scales[2 * c + 1]))
                low = SIMD[DType.float32, 4](mins[2 * c]).join(SIMD[DType.float32, 4](mins[2 * c + 1]))
            else:
                scale = Octet(scales[c])
            comptime for m in range(MR):
                var b = m * chunks + s * 8 + c
                var xv = (xq + m * k + s * 256 + c * CHUNK).load[width=CHUNK]()
                var offset = (xc + b * 8).load[width=8]() >> Int32(share_shift[enc]())
                var a = acc[(c % A) * MR + m]
                var xs = Octet(xd.load(b))
                comptime if enc == Q2_K:
                    a = dot_u8_i8(Ints(0), q, xv).cast[DType.float32]().fma(scale * xs, a)
                    a = offset.cast[DType.float32]().fma(low * xs, a)
                else:
                    a = dot_u8_i8(offset, q, xv).cast[DType.float32]().fma(scale * xs, a)
                acc[(c % A) * MR + m] = a
    comptime for m in range(MR):
        totals.store(m, row_sum[8, A, MR, m](acc))


def half_row[enc: Int, MR: Int](w: Bytes, k: Int, x: Floats, totals: Totals):
    """As `small_block_row` for a bf16/f16 row, in float32: each chunk converted once for MR rows of
    x, two chunks at a time into separate accumulators."""
    comptime U = 2 if MR == 1 else 1
    var chunks = k // CHUNK
    var acc = StaticTuple[Chunk, U * MR](fill=Chunk(0))
    var s = 0
    while s + U <= chunks:
        prefetch_ahead[U * 64](w + s * 64)
        comptime for u in range(U):
            var wv = decode_chunk[enc](w, s + u)
            comptime for m in range(MR):
                acc[u * MR + m] = wv.fma(x.load[width=CHUNK](m * k + (s + u) * CHUNK), acc[u * MR + m])
        s += U
    while s < chunks:
        var wv = decode_chunk[enc](w, s)
        comptime for m in range(MR):
            acc[m] = wv.fma(x.load[width=CHUNK](m * k + s * CHUNK), acc[m])
        s += 1
    comptime for m in range(MR):
        totals.store(m, row_sum[CHUNK, U, MR, m](acc) + tail_dot[enc](w, x + m * k, chunks, k))


def q4_0_row[MR: Int](w: Bytes, k: Int, x: Floats, totals: Totals):
    """As `small_block_row` for Q4_0, decoded to float32 (`q4_0_block_dot`)."""
    var blocks = k // CHUNK
    var acc = StaticTuple[Lanes, MR](fill=Lanes(0))
    for s in range(blocks):
        var block = w + s * 18
        prefetch_ahead[18](block)
        comptime for m in range(MR):
            var a = acc[m]
            q4_0_block_dot(block, x + m * k + s * CHUNK, a)
            acc[m] = a
    comptime for m in range(MR):
        totals.store(m, acc[m].reduce_add())


def row_dot[enc: Int, MR: Int](
    w: Bytes, k: Int, x: Floats, xq: QBytes, xd: Floats, xs: Floats, xc: Pointer[Int32, _], totals: Totals
):
    """totals[m] = the weight row at w . row m of x (x, its quantized form xq/xd, its block
    sums xs and shares xc all start at that row)."""
    comptime if small_blocks[enc]():
        small_block_row[enc, MR](w, k, xq, xd, xs, xc, totals)
    elif has_mins[enc]():
        k_quant_row[enc, MR](w, k, xq, xd, xs, totals)
    elif scaled_blocks[enc]():
        scaled_row[enc, MR](w, k, xq, xd, xc, totals)
    elif enc == BF16 or enc == F16:
        half_row[enc, MR](w, k, x, totals)
    else:
        q4_0_row[MR](w, k, x, totals)


# --- many rows of x (prefill): a panel of weight rows against 16 rows of x per vector -----------

comptime LANES = 16  # rows of x side by side in one vector
comptime TILE_BYTES = 256 * 1024  # x's tiles multiplied by one panel in turn (kept in L2)
comptime Wide = SIMD[DType.float32, LANES]
comptime WideInts = SIMD[DType.int32, LANES]
comptime Words = SIMD[DType.int8, 4 * LANES]
comptime MutFloats = Pointer[Float32, MutUntrackedOrigin]


def tiled[enc: Int]() -> Bool:
    """Whether `enc` has the many-rows path (its integer dot products need 512-bit VNNI)."""
    comptime if integer_dots[enc]():
        return WIDE_VNNI
    return enc == BF16 or enc == F16


def sub_blocks[enc: Int]() -> Int:
    """Scales per 32-value chunk in `enc`: Q6_K, Q3_K and Q2_K scale each 16 values."""
    return 2 if enc == Q6_K or enc == Q3_K or enc == Q2_K else 1


def tiled_rows[enc: Int]() -> Int:
    """Rows of x from which `tiled_dot` is faster than the row path (measured: fewer rows
    leave too many of a tile's 16 lanes empty)."""
    comptime if integer_dots[enc]():
        return 6
    return 16


def panel_rows[enc: Int]() -> Int:
    """Weight rows packed and multiplied together by the tile kernels."""
    comptime if integer_dots[enc]():
        return 6
    return 12


@always_inline
def activate[activation: Int, width: Int](y: SIMD[DType.float32, width]) -> SIMD[DType.float32, width]:
    """y through `activation` (tanh-GELU, or none)."""
    comptime if activation == GELU_TANH:
        comptime c = sqrt(2 / 3.141592653589793)
        return 0.5 * y * (1 + tanh(Float32(c) * (y + 0.044715 * y * y * y)))
    return y


def tile_quantized[enc: Int](
    xq: QBytes, xd: Floats, sums: Floats, rows: Int, k: Int,
    xt: Pointer[Int8, MutUntrackedOrigin], xdt: MutFloats, xst: MutFloats, xct: Pointer[Int32, MutUntrackedOrigin],
):
    """x quantized by `quantize_rows`, 16 rows to a tile, in the lanes the tile kernels read:
    per tile and 4 columns, each row's 4 quants (`xt`); per tile and block of 32, each row's
    scale (`xdt`) and, for the encodings with mins, its scale times the sum of its quants (`xst`);
    for the encodings with offset quants, per sub-block (`sub_blocks`) the weights' offset (`offset_of`)
    times minus the sum of its quants (`xct`). Rows past the last are zero."""
    comptime S = sub_blocks[enc]()
    comptime OFFSET = offset_of[enc]()
    var chunks = k // CHUNK
    var tiles = (rows + LANES - 1) // LANES
    for t in range(tiles):
        var words = (xt + t * LANES * k).bitcast[Int32]()
        for l in range(LANES):
            var m = t * LANES + l
            var live = m < rows
            for c in range(chunks):
                var at = (t * chunks + c) * LANES + l
                var q = (xq + m * k + c * CHUNK).load[width=CHUNK]() if live else Quants(0)
                xdt.store(at, xd.load(m * chunks + c) if live else 0)
                comptime if has_mins[enc]():
                    xst.store(at, sums.load(m * chunks + c) if live else 0)
                else:
                    comptime for h in range(S):
                        var part = q.slice[CHUNK // S, offset = h * CHUNK // S]()
                        xct.store(((t * chunks + c) * S + h) * LANES + l, Int32(-OFFSET) * part.cast[DType.int32]().reduce_add())
                var qw = bitcast[DType.int32, CHUNK // 4](q)
                comptime for i in range(CHUNK // 4):
                    words.store((c * 8 + i) * LANES + l, qw[i])


def tile_floats(x: Floats, rows: Int, k: Int, xt: MutFloats):
    """x, 16 rows to a tile: per tile and column, the 16 rows' values (zero past the last row)."""
    var tiles = (rows + LANES - 1) // LANES
    for t in range(tiles):
        for l in range(LANES):
            var m = t * LANES + l
            for i in range(k):
                xt.store((t * k + i) * LANES + l, x.load(m * k + i) if m < rows else 0)


def pack_panel[enc: Int](
    w: Bytes, row_bytes: Int, count: Int, k: Int,
    wq: Pointer[UInt8, MutUntrackedOrigin], wf: MutFloats, ws: MutFloats, wm: MutFloats,
):
    """The `count` weight rows at w as the tile kernels read them, panel_rows[enc]() rows
    (the last one repeated past `count`): the integer encodings as one unsigned byte per value
    (`wq`, row after row: `small_quants`, `offset_quants` or the 4- and 5-bit K-quants) with,
    per block of 32 (Q6_K, Q3_K, Q2_K: of 16) and row, the scale (`ws`: the 32-value blocks' d,
    the super-blocks' d * scale) and the min (`wm`: Q4_1/Q5_1's m, Q4_K/Q5_K's -d_min * min,
    Q2_K's d_min * min); bf16/f16 as float32 (`wf`, row after row)."""
    comptime R = panel_rows[enc]()
    var chunks = k // CHUNK
    for r in range(R):
        var row = w + min(r, count - 1) * row_bytes
        comptime if small_blocks[enc]():
            for s in range(chunks):
                var block = row + s * block_bytes[enc]()
                wq.store(r * k + s * CHUNK, small_quants[enc](block))
                ws.store(s * R + r, half(block))
                comptime if has_mins[enc]():
                    wm.store(s * R + r, half(block + 2))
        elif has_mins[enc]():
            for s in range(k // 256):
                var block = row + s * block_bytes[enc]()
                var sm = k_scales_mins(block + 4)
                var scale = sm[0] * half(block)
                var mins = sm[1] * half(block + 2)
                var qh = (block + 16).load[width=CHUNK]()
                comptime for c in range(8):
                    wq.store(r * k + s * 256 + c * CHUNK, k_quants[enc](block, qh, c))
                    ws.store((s * 8 + c) * R + r, scale[c])
                    wm.store((s * 8 + c) * R + r, -mins[c])
        elif scaled_blocks[enc]():
            comptime S = sub_blocks[enc]()
            for s in range(k // 256):
                var block = row + s * block_bytes[enc]()
                var scales = sub_scales[enc](block)
                comptime for c in range(8):
                    wq.store(r * k + s * 256 + c * CHUNK, offset_quants[enc](block, c))
                    comptime for h in range(S):
                        ws.store(((s * 8 + c) * S + h) * R + r, scales[S * c + h])
                comptime if enc == Q2_K:
                    var mins = sub_mins(block)
                    comptime for i in range(16):
                        wm.store((s * 16 + i) * R + r, mins[i])
        else:
            for s in range(chunks):
                wf.store(r * k + s * CHUNK, decode_chunk[enc](row, s))
            for i in range(chunks * CHUNK, k):
                wf.store(r * k + i, decode_scalar[enc](row, i))


@always_inline
def dot_words(acc: WideInts, w: Bytes, x: Words) -> WideInts:
    """acc + per lane the four products of the bytes at w (unsigned, the same in every lane)
    with the lane's four bytes of x (signed), summed (512-bit vpdpbusd)."""
    var wv = bitcast[DType.uint8, 4 * LANES](SIMD[DType.uint32, LANES](w.bitcast[UInt32]().load()))
    return llvm_intrinsic["llvm.x86.avx512.vpdpbusd.512", WideInts](acc, wv, x)


def int_tile[enc: Int, XZ: Int](
    wq: Bytes, ws: Floats, wm: Floats, k: Int,
    xt: QBytes, xdt: Floats, xst: Floats, xct: Pointer[Int32, _], res: MutFloats,
):
    """res[(r * XZ + z) * 16 + l] = panel row r . row l of tile z (the XZ tiles from xt on,
    with their scales and sums from xdt, xst, xct): per block of 32 (Q6_K, Q3_K, Q2_K: of 16) an
    integer dot product per lane, then scaled in float32 as `small_block_row`, `k_quant_row` and
    `scaled_row` do."""
    comptime R = panel_rows[enc]()
    comptime S = sub_blocks[enc]()
    comptime WORDS = CHUNK // 4 // S  # 4-byte words of x per sub-block
    var chunks = k // CHUNK
    var acc = StaticTuple[Wide, R * XZ](fill=Wide(0))
    for c in range(chunks):
        comptime for h in range(S):
            var dots = StaticTuple[WideInts, R * XZ](fill=WideInts(0))
            comptime if needs_shares[enc]() and enc != Q2_K:
                comptime for z in range(XZ):
                    var share = (xct + ((z * chunks + c) * S + h) * LANES).load[width=LANES]()
                    comptime for r in range(R):
                        dots[r * XZ + z] = share
            comptime for i in range(h * WORDS, (h + 1) * WORDS):
                var xv = StaticTuple[Words, XZ]()
                comptime for z in range(XZ):
                    xv[z] = (xt + z * LANES * k + (c * 8 + i) * 4 * LANES).load[width=4 * LANES]()
                comptime for r in range(R):
                    comptime for z in range(XZ):
                        dots[r * XZ + z] = dot_words(dots[r * XZ + z], wq + r * k + c * CHUNK + 4 * i, xv[z])
            comptime for z in range(XZ):
                var xd = (xdt + (z * chunks + c) * LANES).load[width=LANES]()
                comptime for r in range(R):
                    var p = dots[r * XZ + z].cast[DType.float32]()
                    var a = acc[r * XZ + z]
                    comptime if needs_shares[enc]():
                        var sub = (c * S + h) * R + r
                        a = (p * xd).fma(Wide(ws.load(sub)), a)
                        comptime if enc == Q2_K:
                            var share = (xct + ((z * chunks + c) * S + h) * LANES).load[width=LANES]()
                            a = (share.cast[DType.float32]() * xd).fma(Wide(wm.load(sub)), a)
                    else:
                        a = p.fma(xd * Wide(ws.load(c * R + r)), a)
                        a = Wide(wm.load(c * R + r)).fma((xst + (z * chunks + c) * LANES).load[width=LANES](), a)
                    acc[r * XZ + z] = a
    comptime for a in range(R * XZ):
        res.store(a * LANES, acc[a])


def float_tile[R: Int, XZ: Int](wf: Floats, k: Int, xt: Floats, res: MutFloats):
    """res[(r * XZ + z) * 16 + l] = panel row r . row l of tile z (the R float32 rows of the
    panel, k apart from wf on, against the XZ float tiles from xt on)."""
    var acc = StaticTuple[Wide, R * XZ](fill=Wide(0))
    for i in range(k):
        var xv = StaticTuple[Wide, XZ]()
        comptime for z in range(XZ):
            xv[z] = (xt + (z * k + i) * LANES).load[width=LANES]()
        comptime for r in range(R):
            var wv = Wide(wf.load(r * k + i))
            comptime for z in range(XZ):
                acc[r * XZ + z] = wv.fma(xv[z], acc[r * XZ + z])
    comptime for a in range(R * XZ):
        res.store(a * LANES, acc[a])


comptime BF16_DOTS = CompilationTarget._has_feature["avx512bf16"]()  # 512-bit vdpbf16ps
comptime Pairs = SIMD[DType.bfloat16, 2 * LANES]


def tile_pairs(x: Floats, rows: Int, k: Int, xt: Pointer[BFloat16, MutUntrackedOrigin]):
    """x rounded to bfloat16 (to nearest, ties to even), 16 rows to a tile: per tile and pair of
    columns, each row's two values side by side (zero past the last row). k is even."""
    var tiles = (rows + LANES - 1) // LANES
    var pairs = k // 2
    var words = xt.bitcast[UInt32]()
    for t in range(tiles):
        for l in range(LANES):
            var m = t * LANES + l
            var i = 0
            while i + CHUNK <= k:
                var v = x.load[width=CHUNK](m * k + i) if m < rows else Chunk(0)
                var packed = bitcast[DType.uint32, CHUNK // 2](v.cast[DType.bfloat16]())
                comptime for p in range(CHUNK // 2):
                    words.store((t * pairs + i // 2 + p) * LANES + l, packed[p])
                i += CHUNK
            while i < k:
                var v = SIMD[DType.float32, 2](x.load(m * k + i), x.load(m * k + i + 1)) if m < rows else SIMD[DType.float32, 2](0)
                words.store((t * pairs + i // 2) * LANES + l, bitcast[DType.uint32, 1](v.cast[DType.bfloat16]())[0])
                i += 2


def pair_tile[XZ: Int](w: Bytes, row_bytes: Int, count: Int, k: Int, xt: Pointer[BFloat16, _], res: MutFloats):
    """res[(r * XZ + z) * 16 + l] = bf16 weight row r of the panel at w (the last of its `count`
    rows repeated) . row l of tile z (the XZ pair tiles from xt on): per pair of columns, one
    vdpbf16ps of the pair broadcast against the 16 rows' pairs, summed in float32."""
    comptime R = panel_rows[BF16]()
    var pairs = k // 2
    var at = StaticTuple[Int, R]()
    comptime for r in range(R):
        at[r] = min(r, count - 1) * row_bytes
    var acc = StaticTuple[Wide, R * XZ](fill=Wide(0))
    for p in range(pairs):
        var xv = StaticTuple[Pairs, XZ]()
        comptime for z in range(XZ):
            xv[z] = (xt + (z * pairs + p) * 2 * LANES).load[width=2 * LANES]()
        comptime for r in range(R):
            var word = (w + at[r] + 4 * p).bitcast[UInt32]().load()
            var wv = bitcast[DType.bfloat16, 2 * LANES](SIMD[DType.uint32, LANES](word))
            comptime for z in range(XZ):
                acc[r * XZ + z] = llvm_intrinsic["llvm.x86.avx512bf16.dpbf16ps.512", Wide](acc[r * XZ + z], wv, xv[z])
    comptime for a in range(R * XZ):
        res.store(a * LANES, acc[a])


def tile_group(k: Int, x_bytes: Int) -> Int:
    """Tiles of x (16 rows of k values of `x_bytes` each) per work item of the tile kernels: an
    even count that fits in TILE_BYTES, so that they stay in L2 while each panel meets them."""
    return max(2, TILE_BYTES // (LANES * k * x_bytes) // 2 * 2)


def panel_run(panels: Int) -> Int:
    """Panels per work item of the tile kernels: about RUNS_PER_CORE items per core and group."""
    return max(1, panels // (num_physical_cores() * RUNS_PER_CORE))


@always_inline
def claim_work(next_item: Pointer[Int64, MutUntrackedOrigin], tiles: Int, group: Int, panels: Int, run: Int) -> StaticTuple[Int, 4]:
    """The next work item of the tile kernels from the shared counter, as (t0, t1, p0, p1):
    tiles t0 .. t1 - 1 (a group) by panels p0 .. p1 - 1 (a run); t0 == t1 once all are taken."""
    var runs = (panels + run - 1) // run
    var groups = (tiles + group - 1) // group
    var item = Int(Atomic[Int64].fetch_add(next_item, 1))
    if item >= groups * runs:
        return StaticTuple[Int, 4](0, 0, 0, 0)
    var t0 = (item // runs) * group
    var p0 = (item % runs) * run
    return StaticTuple[Int, 4](t0, min(t0 + group, tiles), p0, min(p0 + run, panels))


@always_inline
def store_tiles[with_bias: Bool, activation: Int](
    res: Floats, t: Int, tz: Int, j: Int, count: Int, rows: Int, n: Int, op: Pointer[Float32, MutAnyOrigin], bp: Floats
):
    """Writes a tile kernel's `res` (tiles t .. t + tz - 1, tz <= 2, by panel rows j .. j + count - 1)
    into the (rows, n) output at op: plus the bias, through the activation, live lanes only."""
    for r in range(count):
        comptime for z in range(2):
            if z < tz:
                var y = res.load[width=LANES]((r * tz + z) * LANES)
                comptime if with_bias:
                    y += bp.load(j + r)
                y = activate[activation, LANES](y)
                var m = (t + z) * LANES
                for l in range(min(LANES, rows - m)):
                    op.store((m + l) * n + j + r, y[l])


def tiled_dot[
    enc: Int, with_bias: Bool, activation: Int, pairs: Bool = False
](
    output: OutputTensor[dtype = DType.float32, rank=2, ...],
    x: InputTensor[dtype = DType.float32, rank=2, ...],
    w: InputTensor[dtype = DType.uint8, rank=2, ...],
    bias: InputTensor[dtype = DType.float32, rank=2, ...],
):
    """`qrow_dot` for many rows of x. x is laid out in tiles of 16 rows (quantized first for
    the integer encodings, rounded to bf16 pairs with `pairs`); the cores take (group of
    tiles, run of panels) from a shared counter, pack each panel of weight rows once (bf16
    pairs are read as stored) and multiply it by every tile of the group, two at a time."""
    comptime R = panel_rows[enc]()
    comptime S = sub_blocks[enc]()
    comptime INTS = integer_dots[enc]()
    comptime FLOATS = not INTS and not pairs
    var rows = x.dim_size(0)
    var k = x.dim_size(1)
    var n = w.dim_size(0)
    var row_bytes = w.dim_size(1)
    var xp = x.unsafe_ptr()
    var wp = w.unsafe_ptr()
    var bp = bias.unsafe_ptr()
    var op = output.unsafe_ptr()
    var chunks = k // CHUNK
    var tiles = (rows + LANES - 1) // LANES
    var xq = alloc[Int8](rows * k if INTS else 1)
    var xd = alloc[Float32](rows * chunks + 1)
    var sums = alloc[Float32](rows * chunks + 1)
    var xt = alloc[Int8](tiles * LANES * k if INTS else 1)
    var xft = alloc[Float32](tiles * LANES * k if FLOATS else 1)
    var xbt = alloc[BFloat16](tiles * LANES * k if pairs else 1)
    var xdt = alloc[Float32](tiles * chunks * LANES + 1)
    var xst = alloc[Float32](tiles * chunks * LANES if has_mins[enc]() else 1)
    var xct = alloc[Int32](tiles * chunks * S * LANES if needs_shares[enc]() else 1)
    comptime if INTS:
        quantize_rows[False](xp, rows, k, xq, xd, sums, xct)
        tile_quantized[enc](xq, xd, sums, rows, k, xt, xdt, xst, xct)
    elif pairs:
        tile_pairs(xp, rows, k, xbt)
    else:
        tile_floats(xp, rows, k, xft)
    var group = tile_group(k, 1 if INTS else 2 if pairs else 4)
    var panels = (n + R - 1) // R
    var run = panel_run(panels)
    var workers = num_physical_cores()
    var next_item = alloc[Int64](1)
    next_item[0] = 0

    def work(worker: Int) {var rows, var k, var n, var row_bytes, var wp, var bp, var op, var chunks, var tiles, var xt, var xft, var xbt, var xdt, var xst, var xct, var group, var panels, var run, var next_item}:
        var wq = alloc[UInt8](R * k if INTS else 1)
        var wf = alloc[Float32](R * k if FLOATS else 1)
        var ws = alloc[Float32](R * chunks * S + 1)
        var wm = alloc[Float32](R * chunks * S + 1)
        var res = alloc[Float32](R * 2 * LANES)
        while True:
            var item = claim_work(next_item, tiles, group, panels, run)
            if item[0] == item[1]:
                break
            var t0 = item[0]
            var t1 = item[1]
            for p in range(item[2], item[3]):
                var j = p * R
                var count = min(R, n - j)
                comptime if not pairs:
                    pack_panel[enc](wp + j * row_bytes, row_bytes, count, k, wq, wf, ws, wm)
                var t = t0
                while t < t1:
                    var tz = min(2, t1 - t)
                    comptime if INTS:
                        var xa = t * chunks * LANES
                        if tz == 2:
                            int_tile[enc, 2](wq, ws, wm, k, xt + t * LANES * k, xdt + xa, xst + xa, xct + xa * S, res)
                        else:
                            int_tile[enc, 1](wq, ws, wm, k, xt + t * LANES * k, xdt + xa, xst + xa, xct + xa * S, res)
                    elif pairs:
                        if tz == 2:
                            pair_tile[2](wp + j * row_bytes, row_bytes, count, k, xbt + t * LANES * k, res)
                        else:
                            pair_tile[1](wp + j * row_bytes, row_bytes, count, k, xbt + t * LANES * k, res)
                    else:
                        if tz == 2:
                            float_tile[R, 2](wf, k, xft + t * LANES * k, res)
                        else:
                            float_tile[R, 1](wf, k, xft + t * LANES * k, res)
                    store_tiles[with_bias, activation](res, t, tz, j, count, rows, n, op, bp)
                    t += tz
        wq.free()
        wf.free()
        ws.free()
        wm.free()
        res.free()

    sync_parallelize(work, workers)
    next_item.free()
    xq.free()
    xd.free()
    sums.free()
    xt.free()
    xft.free()
    xbt.free()
    xdt.free()
    xst.free()
    xct.free()


def qrow_dot[
    enc: Int, with_bias: Bool, activation: Int
](
    output: OutputTensor[dtype = DType.float32, rank=2, ...],
    x: InputTensor[dtype = DType.float32, rank=2, ...],
    w: InputTensor[dtype = DType.uint8, rank=2, ...],
    bias: InputTensor[dtype = DType.float32, rank=2, ...],
):
    """output[m, j] = activation(sum over k of x[m, k] * w[j, k] (+ bias[0, j]))."""
    comptime if tiled[enc]():
        if x.dim_size(0) >= tiled_rows[enc]():
            comptime if enc == BF16 and BF16_DOTS:
                if x.dim_size(1) % 2 == 0:
                    tiled_dot[enc, with_bias, activation, True](output, x, w, bias)
                    return
            tiled_dot[enc, with_bias, activation](output, x, w, bias)
            return
    var rows = x.dim_size(0)
    var k = x.dim_size(1)
    var n = w.dim_size(0)
    var row_bytes = w.dim_size(1)
    var xp = x.unsafe_ptr()
    var wp = w.unsafe_ptr()
    var bp = bias.unsafe_ptr()
    var op = output.unsafe_ptr()
    var chunks = k // CHUNK
    var xq = alloc[Int8](rows * k if integer_dots[enc]() else 1)
    var xc = alloc[Int32](rows * chunks * 8 if needs_shares[enc]() else 1)
    var xd = alloc[Float32](rows * chunks + 1)
    var sums = alloc[Float32](rows * chunks + 1)
    comptime if integer_dots[enc]():
        quantize_rows[needs_shares[enc]()](xp, rows, k, xq, xd, sums, xc)
    var workers = num_physical_cores()
    var block = (n + workers * BLOCKS_PER_CORE - 1) // (workers * BLOCKS_PER_CORE)
    var blocks = (n + block - 1) // block
    var next_block = alloc[Int64](1)
    next_block[0] = 0

    def finish(m: Int, j: Int, total: Float32) {var op, var bp, var n}:
        var y = total
        comptime if with_bias:
            y += bp.load(j)
        op.store(m * n + j, activate[activation, 1](y))

    def work(worker: Int) {var rows, var k, var n, var row_bytes, var xp, var wp, var xq, var xd, var sums, var xc, var chunks, var block, var blocks, var next_block, var finish}:
        var totals = alloc[Float32](16)
        while True:
            var b = Int(Atomic[Int64].fetch_add(next_block, 1))
            if b >= blocks:
                break
            var j = b * block
            var end = min(j + block, n)
            while j < end:
                var wr = wp + j * row_bytes
                var m = 0
                while m < rows:
                    var at = m * k
                    var ac = m * chunks
                    var mr = 4 if rows - m >= 4 else (2 if rows - m >= 2 else 1)
                    if mr == 4:
                        row_dot[enc, 4](wr, k, xp + at, xq + at, xd + ac, sums + ac, xc + ac * 8, totals)
                    elif mr == 2:
                        row_dot[enc, 2](wr, k, xp + at, xq + at, xd + ac, sums + ac, xc + ac * 8, totals)
                    else:
                        row_dot[enc, 1](wr, k, xp + at, xq + at, xd + ac, sums + ac, xc + ac * 8, totals)
                    for i in range(mr):
                        finish(m + i, j, totals.load(i))
                    m += mr
                j += 1
        totals.free()

    sync_parallelize(work, workers)
    next_block.free()
    xq.free()
    xc.free()
    xd.free()
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
