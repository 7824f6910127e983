"""A sparse mixture-of-experts feed-forward (Mixtral's), as a drop-in `DecoderBlock` part.

Routing, per token and inside the compiled graph, follows transformers'
`MixtralSparseMoeBlock`: router logits (a bias-free linear, in the model
dtype) -> softmax over all experts in float32 -> the top-k probabilities ->
divided by their sum (unless `normalize` is off: Qwen's `norm_topk_prob`). The token's output is the sum of its k SwiGLU experts'
outputs, each scaled by its weight (applied and accumulated in float32).

Two ways to apply the experts, both over a trace-time Python loop on the
experts (never on tokens):

- grouped (the default on CPU): for each expert, `F.nonzero` lists the tokens
  routed to it (a data-dependent dimension), those rows are gathered, run
  through the expert and scatter-added back. Each expert runs only on its own
  tokens, and an expert no token picked does no work and reads no weights, so
  a decode step of one sequence reads k experts, not all of them.
- dense (the default on accelerators): every expert runs on every token and
  its output is scaled by a routing weight that is zero unless the expert was
  picked. Shape-static, only dense kernels, but n_experts / k times the
  feed-forward compute and weight reads. On a GPU the grouped form's
  data-dependent shapes would cost a host round trip per expert and layer;
  a GPU-grade path would use MAX's `grouped_matmul_ragged` kernels (which have
  no CPU implementation). Neither GPU choice has been measured here.

Measured on a 2-core CPU, float32, median of interleaved runs. One layer,
hidden 1024, expert inner 1024, 8 experts, top-2, ms per call:

    tokens              1    4 (decode batch)   64 (prefill)   512 (prefill)
    grouped           1.5         3.0              10.3            42
    dense             4.6         5.5              18.1           108

Whole model (`zoo bench-moe`: hidden 512, 4 layers, 8
experts of inner 1024, top-2), decode ms/token at context 16: grouped 6.8,
dense 16.6, and 5.5 for a dense Llama of the same active size (one SwiGLU of
inner 2048), so routing costs the grouped form about 1.2x. The grouped
form's price is compile time: its data-dependent dimensions make a graph
about twice as slow to compile (134 s against 67 s for the layer above).

A third form, gathering each token's k experts' weights (`F.gather` on the
stacked weights, then rank-4 batched matmuls), was slower than grouped even for
one decoded token and grew with the token count (seconds for 512 tokens), as
it materialises k weight matrices per token; it is not kept.
"""

from __future__ import annotations

from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Module, ModuleList
from max.experimental.tensor import Tensor

from .feedforward import Activation, GatedMLP
from .linear import Projection


class SparseMoE(Module):
    """Top-k routed SwiGLU experts mapping (batch, seqlen, hidden) -> the same shape.

    `name` must be unique within the model (the layer, say): it names the
    data-dependent token-count dimensions of the grouped form. `grouped` picks
    the form; `None` picks grouped on CPU and dense on accelerators. `activation` is the
    experts' gate activation (silu: SwiGLU).
    """

    def __init__(
        self,
        hidden_size: int,
        inner_size: int,
        n_experts: int,
        top_k: int,
        *,
        name: str,
        grouped: bool | None = None,
        normalize: bool = True,
        activation: Activation = "silu",
    ) -> None:
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k ({top_k}) must be between 1 and n_experts ({n_experts})")
        self.hidden_size = hidden_size
        self.top_k = top_k
        self.name = name
        self.grouped = grouped
        self.normalize = normalize
        self.router = Projection(hidden_size, n_experts, bias=False)
        self.experts = ModuleList([GatedMLP(hidden_size, inner_size, activation=activation) for _ in range(n_experts)])

    def route(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(weights float32, expert indices int64), both (tokens, top_k), for x (tokens, hidden)."""
        probs = F.softmax(self.router(x).cast(DType.float32), axis=-1)
        weights, indices = F.top_k(probs, self.top_k, axis=-1)
        return (weights / F.sum(weights, axis=-1) if self.normalize else weights), indices

    def forward(self, x: Tensor) -> Tensor:
        batch, seqlen = x.shape[0], x.shape[1]
        tokens = x.reshape((batch * seqlen, self.hidden_size))
        weights, indices = self.route(tokens)
        grouped = self.grouped if self.grouped is not None else x.device.is_host
        apply = self._grouped if grouped else self._dense
        return apply(tokens, weights, indices).cast(x.dtype).reshape((batch, seqlen, self.hidden_size))

    def _expert_weight(self, weights: Tensor, indices: Tensor, expert: int) -> Tensor:
        """Each token's weight for `expert`, (tokens, 1) float32: zero unless picked."""
        return F.sum(F.where(indices == expert, weights, 0.0), axis=-1)

    def _grouped(self, tokens: Tensor, weights: Tensor, indices: Tensor) -> Tensor:
        """Each expert on the rows routed to it, scatter-added back; float32 (tokens, hidden)."""
        out = F.zeros_like(tokens).cast(DType.float32)
        count = tokens.shape[0]
        for e, expert in enumerate(self.experts):
            weight = self._expert_weight(weights, indices, e)
            rows = F.nonzero(weight.reshape((count,)), out_dim=f"{self.name}_expert{e}_tokens")
            picked = rows.reshape((rows.shape[0],))
            y = expert(F.gather(tokens, picked, axis=0)).cast(DType.float32)
            out = F.scatter_nd_add(out, y * F.gather(weight, picked, axis=0), rows)
        return out

    def _dense(self, tokens: Tensor, weights: Tensor, indices: Tensor) -> Tensor:
        """Every expert on every row, weighted (zero if not picked) and summed; float32."""
        out = None
        for e, expert in enumerate(self.experts):
            y = expert(tokens).cast(DType.float32) * self._expert_weight(weights, indices, e)
            out = y if out is None else out + y
        return out
