"""`zoo_decode_attention`: one new query per row against its KV cache.

The decode step's attention is small but, written as graph ops, it is a
dozen of them per layer (score matmuls, concatenation, mask, softmax, value
matmuls). This kernel does it in one pass per (row, head) with an online
softmax: the new token's own key and value seed the running maximum, sum
and output, then the cached slots are folded in sixteen at a time.
"""

import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from std.math import exp, sqrt

comptime WIDTH = 16  # float32 lanes


@extensibility.register("zoo_decode_attention")
struct DecodeAttention:
    """out[b, h] = softmax(q[b, h] . keys / sqrt(D) + mask[b]) @ values, for head h's kv head.

    q (B, H, D); past_k (B, Hkv, D, P) (keys transposed);
    past_v (B, Hkv, P, D); new_k, new_v (B, Hkv, D); mask (B, P + 1), additive,
    over the P cached slots then the new token. Dense row-major float32.
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
    ) raises:
        var heads = q.dim_size(1)
        var dim = q.dim_size(2)
        var kv_heads = past_k.dim_size(1)
        var past = past_k.dim_size(3)
        var group = heads // kv_heads
        var scale = 1 / sqrt(Float32(dim))
        var tasks = q.dim_size(0) * heads
        var qp = q.unsafe_ptr()
        var kp = past_k.unsafe_ptr()
        var vp = past_v.unsafe_ptr()
        var nkp = new_k.unsafe_ptr()
        var nvp = new_v.unsafe_ptr()
        var mp = mask.unsafe_ptr()
        var op = output.unsafe_ptr()

        def work(task: Int) {var heads, var dim, var kv_heads, var past, var group, var scale, var qp, var kp, var vp, var nkp, var nvp, var mp, var op}:
            var b = task // heads
            var kv = b * kv_heads + (task % heads) // group
            var qrow = qp + task * dim
            var out = op + task * dim
            var keys = kp + kv * dim * past
            var values = vp + kv * past * dim
            var row_mask = mp + b * (past + 1)
            # Seed with the new token: its weight is exp(0) = 1.
            var new_key = nkp + kv * dim
            var new_value = nvp + kv * dim
            var s_new: Float32 = 0
            for d in range(dim):
                s_new += qrow.load(d) * new_key.load(d)
            var running_max = s_new * scale + row_mask.load(past)
            var total: Float32 = 1
            for d in range(dim):
                out.store(d, new_value.load(d))
            var p = 0
            while p + WIDTH <= past:
                var s = SIMD[DType.float32, WIDTH](0)
                for d in range(dim):
                    s += qrow.load(d) * keys.load[width=WIDTH](d * past + p)
                s = s * scale + row_mask.load[width=WIDTH](p)
                var block_max = max(s.reduce_max(), running_max)
                var rescale = exp(running_max - block_max)
                var w = exp(s - block_max)
                total = total * rescale + w.reduce_add()
                running_max = block_max
                for d in range(dim):
                    out.store(d, out.load(d) * rescale)
                for i in range(WIDTH):
                    var weight = w[i]
                    var vrow = values + (p + i) * dim
                    var d = 0
                    while d + WIDTH <= dim:
                        out.store(d, out.load[width=WIDTH](d) + weight * vrow.load[width=WIDTH](d))
                        d += WIDTH
                    while d < dim:
                        out.store(d, out.load(d) + weight * vrow.load(d))
                        d += 1
                p += WIDTH
            while p < past:
                var s: Float32 = 0
                for d in range(dim):
                    s += qrow.load(d) * keys.load(d * past + p)
                s = s * scale + row_mask.load(p)
                var new_max = max(s, running_max)
                var rescale = exp(running_max - new_max)
                var weight = exp(s - new_max)
                total = total * rescale + weight
                running_max = new_max
                var vrow = values + p * dim
                for d in range(dim):
                    out.store(d, out.load(d) * rescale + weight * vrow.load(d))
                p += 1
            var inverse = 1 / total
            for d in range(dim):
                out.store(d, out.load(d) * inverse)

        sync_parallelize(work, tasks)
