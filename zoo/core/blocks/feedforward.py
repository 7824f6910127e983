"""Dense feed-forward layers: gated (SwiGLU, GeGLU) and plain two-layer MLPs."""

from __future__ import annotations

from typing import Literal

from max.experimental import functional as F
from max.experimental.nn import Module
from max.experimental.tensor import Tensor

from .linear import Projection

Activation = Literal["silu", "gelu_tanh", "gelu"]


def activate(x: Tensor, activation: Activation) -> Tensor:
    if activation == "silu":
        return F.silu(x)
    return F.gelu(x, approximate="tanh" if activation == "gelu_tanh" else "none")


class GatedMLP(Module):
    """down(act(gate(x)) * up(x)): SwiGLU with silu (Llama), GeGLU with tanh-GELU (Gemma).
    Gate and up projections are one fused matmul (`gate_up_proj`, gate rows first)."""

    def __init__(self, hidden_size: int, inner_size: int, *, activation: Activation = "silu", bias: bool = False) -> None:
        self.inner_size = inner_size
        self.activation = activation
        self.gate_up_proj = Projection(hidden_size, 2 * inner_size, bias=bias)
        self.down_proj = Projection(inner_size, hidden_size, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = F.split(self.gate_up_proj(x), [self.inner_size, self.inner_size], axis=-1)
        return self.down_proj(activate(gate, self.activation) * up)


class PlainMLP(Module):
    """down(act(up(x))) (GPT-2, GPT-NeoX); the CPU decode graph fuses a biased tanh-GELU into the up-projection."""

    def __init__(self, hidden_size: int, inner_size: int, *, activation: Activation = "gelu_tanh", bias: bool = True) -> None:
        self.up_proj = Projection(hidden_size, inner_size, bias=bias)
        self.down_proj = Projection(inner_size, hidden_size, bias=bias)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        if self.activation == "gelu_tanh" and isinstance(self.up_proj.bias, Tensor):
            up = self.up_proj(x, activation="gelu_tanh")
        else:
            up = activate(self.up_proj(x), self.activation)
        return self.down_proj(up)
