"""`zoo_prompt_attention`: attention for many new queries at once (a prompt), in one op.

Written as graph ops, a prompt's attention builds the whole (rows, keys)
score matrix of every head, then masks, softmaxes and multiplies it in
separate passes over memory, and scores the keys a causal mask hides too.
This kernel works per (sequence row, kv head, block of 16 positions): the
block's queries (every head of the kv head's group) are scored only against
the keys their mask lets some of them see, in registers, 6 query rows by 32
keys at a time; each row is softmaxed in place in a small scratch buffer,
and the values are summed 4 rows by 64 dimensions at a time.

Keys outside a row's unmasked span (mask below `SKIP_BELOW`: the causal
future, the engine's unwritten cache slots, a sliding window's past) get a
weight of exactly zero, as `exp(mask - max)` does in the graph.
`settings` holds the score scale and the soft-cap (0: none), as for
`zoo_decode_attention`.
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from std.atomic import Atomic
from std.math import exp, tanh
from std.sys import num_physical_cores
from std.utils import StaticTuple

from .attention import SKIP_BELOW

comptime WIDTH = 16  # float32 lanes
comptime Vec = SIMD[DType.float32, WIDTH]
comptime POSITIONS = 16  # sequence positions per work item
comptime SCORE_ROWS = 6  # query rows scored together (each key vector loaded once for all)
comptime VALUE_ROWS = 4  # query rows whose values are summed together
comptime SERIAL_BELOW = 256 * 1024  # query-key-dimension products under which one core does it all

comptime Floats = Pointer[Float32, _]
comptime Scratch = Pointer[Float32, MutUntrackedOrigin]
comptime Output = Pointer[Float32, MutAnyOrigin]


@always_inline
def score_block[R: Int, V: Int](
    q: Floats, rows: StaticTuple[Int, R], keys: Floats, stride: Int, dim: Int, dest: Scratch, width: Int
):
    """dest[r * width + c * 16 + l] = (query row at q + rows[r]) . key (16 c + l) for V vectors
    of 16 keys, the keys stored transposed from `keys` on (one row of `stride` per dimension)."""
    var acc = StaticTuple[Vec, R * V](fill=Vec(0))
    for d in range(dim):
        var kv = StaticTuple[Vec, V]()
        comptime for c in range(V):
            kv[c] = (keys + d * stride + c * WIDTH).load[width=WIDTH]()
        comptime for r in range(R):
            var qd = Vec(q.load(rows[r] + d))
            comptime for c in range(V):
                acc[r * V + c] = qd.fma(kv[c], acc[r * V + c])
    comptime for r in range(R):
        comptime for c in range(V):
            dest.store(r * width + c * WIDTH, acc[r * V + c])


def score_rows[R: Int](
    q: Floats, rows: StaticTuple[Int, R], keys: Floats, stride: Int, count: Int, dim: Int, dest: Scratch, width: Int
):
    """dest[r * width + j] = (query row at q + rows[r]) . key j for the `count` keys stored
    transposed at `keys`."""
    var j = 0
    while j + 2 * WIDTH <= count:
        score_block[R, 2](q, rows, keys + j, stride, dim, dest + j, width)
        j += 2 * WIDTH
    if j + WIDTH <= count:
        score_block[R, 1](q, rows, keys + j, stride, dim, dest + j, width)
        j += WIDTH
    while j < count:
        comptime for r in range(R):
            var t: Float32 = 0
            for d in range(dim):
                t += q.load(rows[r] + d) * keys.load(d * stride + j)
            dest.store(r * width + j, t)
        j += 1


@always_inline
def value_block[R: Int, V: Int](
    weights: Scratch, width: Int, values: Floats, row_stride: Int, count: Int, o: Output, rows: StaticTuple[Int, R]
):
    """(row at o + rows[r])[c * 16 + l] += sum over j < count of weights[r * width + j] * value
    j's element (c * 16 + l), value j's row starting at values + j * row_stride."""
    var acc = StaticTuple[Vec, R * V]()
    comptime for r in range(R):
        comptime for c in range(V):
            acc[r * V + c] = o.load[width=WIDTH](rows[r] + c * WIDTH)
    for j in range(count):
        var row = values + j * row_stride
        var vv = StaticTuple[Vec, V]()
        comptime for c in range(V):
            vv[c] = row.load[width=WIDTH](c * WIDTH)
        comptime for r in range(R):
            var wj = Vec(weights.load(r * width + j))
            comptime for c in range(V):
                acc[r * V + c] = wj.fma(vv[c], acc[r * V + c])
    comptime for r in range(R):
        comptime for c in range(V):
            o.store(rows[r] + c * WIDTH, acc[r * V + c])


def value_rows[R: Int](
    weights: Scratch, width: Int, values: Floats, row_stride: Int, count: Int, dim: Int, o: Output, rows: StaticTuple[Int, R]
):
    """(row at o + rows[r])[:dim] += sum over j < count of weights[r * width + j] * value row j."""
    var d = 0
    while d + 4 * WIDTH <= dim:
        value_block[R, 4](weights, width, values + d, row_stride, count, o + d, rows)
        d += 4 * WIDTH
    while d + WIDTH <= dim:
        value_block[R, 1](weights, width, values + d, row_stride, count, o + d, rows)
        d += WIDTH
    while d < dim:
        comptime for r in range(R):
            var t = o.load(rows[r] + d)
            for j in range(count):
                t += weights.load(r * width + j) * values.load(j * row_stride + d)
            o.store(rows[r] + d, t)
        d += 1


def live_span(row_mask: Floats, total: Int) -> Tuple[Int, Int]:
    """The first and one past the last key that a row's mask does not hide (all keys when it
    hides every one)."""
    var first = 0
    while first < total and row_mask.load(first) < SKIP_BELOW:
        first += 1
    if first == total:
        return (0, total)
    var last = total
    while last - WIDTH > first and (row_mask + last - WIDTH).load[width=WIDTH]().reduce_max() < SKIP_BELOW:
        last -= WIDTH
    while row_mask.load(last - 1) < SKIP_BELOW:
        last -= 1
    return (first, last)


@always_inline
def row_offset(b: Int, s0: Int, r: Int, group: Int, kv: Int, seqlen: Int, heads: Int, dim: Int) -> Int:
    """Where row r of a work item starts in q and the output, (B, S, H, D): position s0 + r // group,
    head kv * group + r % group."""
    return ((b * seqlen + s0 + r // group) * heads + kv * group + r % group) * dim


def item_rows[R: Int](b: Int, s0: Int, r: Int, group: Int, kv: Int, seqlen: Int, heads: Int, dim: Int) -> StaticTuple[Int, R]:
    """Where rows r .. r + R - 1 of a work item start in q and the output (`row_offset`)."""
    var at = StaticTuple[Int, R]()
    comptime for i in range(R):
        at[i] = row_offset(b, s0, r + i, group, kv, seqlen, heads, dim)
    return at


def score_span[R: Int](
    q: Floats, at: StaticTuple[Int, R], past_keys: Floats, new_keys: Floats, past: Int, seqlen: Int,
    lo: Int, hi: Int, dim: Int, dest: Scratch, width: Int,
):
    """dest[r * width + j - lo] = (query row at q + at[r]) . key j for keys lo .. hi - 1: the
    cached ones (`past` of them, transposed at past_keys), then the new ones (at new_keys)."""
    var start = max(lo, past)
    if lo < past:
        score_rows[R](q, at, past_keys + lo, past, min(hi, past) - lo, dim, dest, width)
    if hi > past:
        score_rows[R](q, at, new_keys + start - past, seqlen, hi - start, dim, dest + start - lo, width)


def sum_values[R: Int](
    weights: Scratch, width: Int, sums: Scratch, past_values: Floats, new_values: Floats, stride: Int, past: Int,
    lo: Int, hi: Int, dim: Int, o: Output, at: StaticTuple[Int, R],
):
    """Output row at o + at[r] = the weights of keys lo .. hi - 1 (row r of `weights`) times
    their values, cached ones then new ones (rows `stride` apart), divided by sums[r]."""
    var start = max(lo, past)
    comptime for i in range(R):
        for d in range(dim):
            o.store(at[i] + d, 0)
    if lo < past:
        value_rows[R](weights, width, past_values + lo * dim, dim, min(hi, past) - lo, dim, o, at)
    if hi > past:
        value_rows[R](weights + start - lo, width, new_values + (start - past) * stride, stride, hi - start, dim, o, at)
    comptime for i in range(R):
        var inverse = 1 / sums.load(i)
        for d in range(dim):
            o.store(at[i] + d, o.load(at[i] + d) * inverse)


@extensibility.register("zoo_prompt_attention")
struct PromptAttention:
    """out[b, s, h] = softmax(cap(q[b, s, h] . keys * scale) + mask[b, s]) @ values, over the
    P cached keys and then the S new ones of head h's kv head.

    q (B, S, H, D); past_k (B, Hkv, D, P) (keys transposed); past_v (B, Hkv, P, D);
    new_k (B, Hkv, D, S) (transposed); new_v (B, S, Hkv, D); mask (B, S, P + S),
    additive; settings (2,): scale, soft-cap (0: none). Dense row-major float32;
    out (B, S, H, D).
    """

    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype = DType.float32, rank=4, ...],
        q: InputTensor[dtype = DType.float32, rank=4, ...],
        past_k: InputTensor[dtype = DType.float32, rank=4, ...],
        past_v: InputTensor[dtype = DType.float32, rank=4, ...],
        new_k: InputTensor[dtype = DType.float32, rank=4, ...],
        new_v: InputTensor[dtype = DType.float32, rank=4, ...],
        mask: InputTensor[dtype = DType.float32, rank=3, ...],
        settings: InputTensor[dtype = DType.float32, rank=1, ...],
    ) raises:
        var batch = q.dim_size(0)
        var seqlen = q.dim_size(1)
        var heads = q.dim_size(2)
        var dim = q.dim_size(3)
        var kv_heads = past_k.dim_size(1)
        var past = past_k.dim_size(3)
        var total = past + seqlen
        var group = heads // kv_heads
        var scale = settings.unsafe_ptr().load(0)
        var cap = settings.unsafe_ptr().load(1)
        var qp = q.unsafe_ptr()
        var kp = past_k.unsafe_ptr()
        var vp = past_v.unsafe_ptr()
        var nkp = new_k.unsafe_ptr()
        var nvp = new_v.unsafe_ptr()
        var mp = mask.unsafe_ptr()
        var op = output.unsafe_ptr()

        # Each row's unmasked span of keys, shared by every head.
        var spans = alloc[Int](2 * batch * seqlen)
        for row in range(batch * seqlen):
            var span = live_span(mp + row * total, total)
            spans.store(2 * row, span[0])
            spans.store(2 * row + 1, span[1])

        var blocks = (seqlen + POSITIONS - 1) // POSITIONS
        var items = batch * kv_heads * blocks
        var next_item = alloc[Int64](1)
        next_item[0] = 0
        var scratch_rows = group * POSITIONS

        def work(worker: Int) {var seqlen, var heads, var dim, var kv_heads, var past, var total, var group, var scale, var cap, var qp, var kp, var vp, var nkp, var nvp, var mp, var op, var spans, var blocks, var items, var next_item, var scratch_rows}:
            var scores = alloc[Float32](scratch_rows * total)
            var sums = alloc[Float32](scratch_rows)
            while True:
                var item = Int(Atomic[Int64].fetch_add(next_item, 1))
                if item >= items:
                    break
                var b = item // (kv_heads * blocks)
                var kv = (item // blocks) % kv_heads
                var s0 = (item % blocks) * POSITIONS
                var positions = min(POSITIONS, seqlen - s0)
                var rows = positions * group  # row r: position s0 + r // group, head kv * group + r % group
                var lo = total
                var hi = 0
                for s in range(s0, s0 + positions):
                    lo = min(lo, spans.load(2 * (b * seqlen + s)))
                    hi = max(hi, spans.load(2 * (b * seqlen + s) + 1))
                var width = hi - lo

                # 1. Scores of keys lo .. hi - 1: cached ones, then new ones.
                var past_keys = kp + (b * kv_heads + kv) * dim * past
                var new_keys = nkp + (b * kv_heads + kv) * dim * seqlen
                var r = 0
                while r < rows:
                    var dest = scores + r * width
                    if r + SCORE_ROWS <= rows:
                        var at = item_rows[SCORE_ROWS](b, s0, r, group, kv, seqlen, heads, dim)
                        score_span[SCORE_ROWS](qp, at, past_keys, new_keys, past, seqlen, lo, hi, dim, dest, width)
                        r += SCORE_ROWS
                    else:
                        var at = item_rows[1](b, s0, r, group, kv, seqlen, heads, dim)
                        score_span[1](qp, at, past_keys, new_keys, past, seqlen, lo, hi, dim, dest, width)
                        r += 1

                # 2. Softmax of each row over its own span; zero weight elsewhere in lo .. hi - 1.
                for r in range(rows):
                    var row = b * seqlen + s0 + r // group
                    var first = spans.load(2 * row)
                    var last = spans.load(2 * row + 1)
                    var line = scores + r * width - lo  # indexed by key
                    var row_mask = mp + row * total
                    var top = Float32(-3.0e38)
                    for j in range(lo, first):
                        line.store(j, 0)
                    var j = first
                    while j + WIDTH <= last:
                        var v = line.load[width=WIDTH](j) * scale
                        if cap > 0:
                            v = cap * tanh(v / cap)
                        v += row_mask.load[width=WIDTH](j)
                        line.store(j, v)
                        top = max(top, v.reduce_max())
                        j += WIDTH
                    while j < last:
                        var v = line.load(j) * scale
                        if cap > 0:
                            v = cap * tanh(v / cap)
                        v += row_mask.load(j)
                        line.store(j, v)
                        top = max(top, v)
                        j += 1
                    var sum: Float32 = 0
                    j = first
                    while j + WIDTH <= last:
                        var e = exp(line.load[width=WIDTH](j) - top)
                        line.store(j, e)
                        sum += e.reduce_add()
                        j += WIDTH
                    while j < last:
                        var e = exp(line.load(j) - top)
                        line.store(j, e)
                        sum += e
                        j += 1
                    for i in range(last, hi):
                        line.store(i, 0)
                    sums.store(r, sum)

                # 3. Values: cached ones, then new ones, summed into the output rows.
                var past_values = vp + (b * kv_heads + kv) * past * dim
                var new_values = nvp + (b * seqlen * kv_heads + kv) * dim
                var stride = kv_heads * dim
                r = 0
                while r < rows:
                    var weights = scores + r * width
                    if r + VALUE_ROWS <= rows:
                        var at = item_rows[VALUE_ROWS](b, s0, r, group, kv, seqlen, heads, dim)
                        sum_values[VALUE_ROWS](weights, width, sums + r, past_values, new_values, stride, past, lo, hi, dim, op, at)
                        r += VALUE_ROWS
                    else:
                        var at = item_rows[1](b, s0, r, group, kv, seqlen, heads, dim)
                        sum_values[1](weights, width, sums + r, past_values, new_values, stride, past, lo, hi, dim, op, at)
                        r += 1
            scores.free()
            sums.free()

        var work_size = batch * heads * seqlen * total * dim
        if work_size < SERIAL_BELOW:
            work(0)
        else:
            sync_parallelize(work, min(items, num_physical_cores()))
        next_item.free()
        spans.free()
