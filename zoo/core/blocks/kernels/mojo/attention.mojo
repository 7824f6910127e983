"""`zoo_decode_attention`: one new query per row against its KV cache.

The decode step's attention is small but, written as graph ops, it is a
dozen of them per layer (score matmuls, concatenation, mask, softmax, value
matmuls). This kernel does it per (row, head) in three short passes that each read
memory front to back, so the cache streams at the memory's pace:

1. scores: the head's keys are stored transposed, one row of P slots per
   dimension, and the rows follow each other; each row adds q[d] times
   itself to a scratch row of P scores (which stays in L1);
2. softmax over the scores, the mask and the new token's own score;
3. values: one (P, D) block, row after row, summed with the weights.

Cached slots at the end of the cache whose mask is below `SKIP_BELOW` (the
engine's unwritten slots) are not read: their weight is exactly zero.

`settings` holds the score scale and the soft-cap (Gemma 2: scores become
cap * tanh(score / cap) before the mask; 0 turns it off).
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from std.math import exp, tanh
from std.sys import num_physical_cores

comptime WIDTH = 16  # float32 lanes
comptime SKIP_BELOW: Float32 = -1e20  # exp(mask + score - max) is exactly 0 below this
comptime SERIAL_BELOW = 32 * 1024  # cached keys (values) per call under which one core does it all


@extensibility.register("zoo_decode_attention")
struct DecodeAttention:
    """out[b, h] = softmax(cap(q[b, h] . keys * scale) + mask[b]) @ values, for head h's kv head.

    q (B, H, D); past_k (B, Hkv, D, P) (keys transposed);
    past_v (B, Hkv, P, D); new_k, new_v (B, Hkv, D); mask (B, P + 1), additive,
    over the P cached slots then the new token; settings (2,): scale, soft-cap
    (0: none). Dense row-major float32.
    """

    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype = DType.float32, rank=3, ...],
        q: InputTensor[dtype = DType.float32, rank=3, ...],
        past_k: InputTensor[dtype = DType.float32, rank=4, ...],
        past_v: InputTensor[dtype = DType.float32, rank=4, ...],
        new_k: InputTensor[dtype = DType.float32, rank=3, ...],
        new_v: InputTensor[dtype = DType.float32, rank=3, ...],
        mask: InputTensor[dtype = DType.float32, rank=2, ...],
        settings: InputTensor[dtype = DType.float32, rank=1, ...],
    ) raises:
        var heads = q.dim_size(1)
        var dim = q.dim_size(2)
        var kv_heads = past_k.dim_size(1)
        var past = past_k.dim_size(3)
        var group = heads // kv_heads
        var scale = settings.unsafe_ptr().load(0)
        var cap = settings.unsafe_ptr().load(1)
        var tasks = q.dim_size(0) * heads
        var qp = q.unsafe_ptr()
        var kp = past_k.unsafe_ptr()
        var vp = past_v.unsafe_ptr()
        var nkp = new_k.unsafe_ptr()
        var nvp = new_v.unsafe_ptr()
        var mp = mask.unsafe_ptr()
        var op = output.unsafe_ptr()

        def work(task: Int) {var heads, var dim, var kv_heads, var past, var group, var scale, var cap, var qp, var kp, var vp, var nkp, var nvp, var mp, var op}:
            var b = task // heads
            var kv = b * kv_heads + (task % heads) // group
            var qrow = qp + task * dim
            var out = op + task * dim
            var keys = kp + kv * dim * past
            var values = vp + kv * past * dim
            var row_mask = mp + b * (past + 1)
            var new_key = nkp + kv * dim
            var new_value = nvp + kv * dim
            var live = past
            while live > 0 and row_mask.load(live - 1) < SKIP_BELOW:
                live -= 1
            var vector_end = live - live % WIDTH
            var scores = alloc[Float32](live + 1)

            # 1. Scores: every key row streams once into the scratch row.
            for p in range(live):
                scores.store(p, 0)
            for d in range(dim):
                var qd = qrow.load(d) * scale
                var key_row = keys + d * past
                var p = 0
                while p < vector_end:
                    scores.store(p, scores.load[width=WIDTH](p) + qd * key_row.load[width=WIDTH](p))
                    p += WIDTH
                while p < live:
                    scores.store(p, scores.load(p) + qd * key_row.load(p))
                    p += 1

            # 2. Softmax, the new token last (soft-capped first, when asked).
            var s_new: Float32 = 0
            for d in range(dim):
                s_new += qrow.load(d) * new_key.load(d)
            s_new = s_new * scale
            if cap > 0:
                s_new = cap * tanh(s_new / cap)
                var c = 0
                while c < vector_end:
                    scores.store(c, cap * tanh(scores.load[width=WIDTH](c) / cap))
                    c += WIDTH
                while c < live:
                    scores.store(c, cap * tanh(scores.load(c) / cap))
                    c += 1
            s_new = s_new + row_mask.load(past)
            var top = s_new
            var p = 0
            while p < vector_end:
                var s = scores.load[width=WIDTH](p) + row_mask.load[width=WIDTH](p)
                scores.store(p, s)
                top = max(top, s.reduce_max())
                p += WIDTH
            while p < live:
                var s = scores.load(p) + row_mask.load(p)
                scores.store(p, s)
                top = max(top, s)
                p += 1
            var w_new = exp(s_new - top)
            var total = w_new
            p = 0
            while p < vector_end:
                var w = exp(scores.load[width=WIDTH](p) - top)
                scores.store(p, w)
                total += w.reduce_add()
                p += WIDTH
            while p < live:
                var w = exp(scores.load(p) - top)
                scores.store(p, w)
                total += w
                p += 1

            # 3. Values: the (live, D) block row after row, four rows per pass over out.
            for d in range(dim):
                out.store(d, w_new * new_value.load(d))
            var dim_end = dim - dim % WIDTH
            p = 0
            while p + 4 <= live:
                var w0 = scores.load(p)
                var w1 = scores.load(p + 1)
                var w2 = scores.load(p + 2)
                var w3 = scores.load(p + 3)
                var v0 = values + p * dim
                var v1 = v0 + dim
                var v2 = v1 + dim
                var v3 = v2 + dim
                var d = 0
                while d < dim_end:
                    var acc = out.load[width=WIDTH](d) + w0 * v0.load[width=WIDTH](d) + w1 * v1.load[width=WIDTH](d)
                    out.store(d, acc + w2 * v2.load[width=WIDTH](d) + w3 * v3.load[width=WIDTH](d))
                    d += WIDTH
                while d < dim:
                    out.store(d, out.load(d) + w0 * v0.load(d) + w1 * v1.load(d) + w2 * v2.load(d) + w3 * v3.load(d))
                    d += 1
                p += 4
            while p < live:
                var w = scores.load(p)
                var vrow = values + p * dim
                for d in range(dim):
                    out.store(d, out.load(d) + w * vrow.load(d))
                p += 1
            var inverse = 1 / total
            for d in range(dim):
                out.store(d, out.load(d) * inverse)
            scores.free()

        # The (row, head) tasks go to the cores in contiguous runs, one run each; a small
        # cache is read by the calling core alone (starting threads would cost more).
        var workers = 1 if q.dim_size(0) * kv_heads * past * dim < SERIAL_BELOW else min(tasks, num_physical_cores())
        var per = (tasks + workers - 1) // workers

        def run(worker: Int) {var tasks, var per, var work}:
            for task in range(worker * per, min(tasks, (worker + 1) * per)):
                work(task)

        if workers == 1:
            run(0)
        else:
            sync_parallelize(run, workers)
