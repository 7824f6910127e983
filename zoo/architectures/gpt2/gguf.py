"""GPT-2 in GGUF files (llama.cpp's `gpt2`): Conv1D weights stored transposed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zoo.core.checkpoints.gguf_layout import GGUFLayout, first_of


def finish(hf: dict[str, Any], file: Any) -> None:
    """llama.cpp's GPT-2 writes 4 * n_embd as the MLP size: the tensors tell the truth;
    its GELU is the tanh approximation (HF's gelu_new)."""
    shape = file.tensor_shape("blk.0.ffn_up.weight")
    if shape is not None:
        hf["n_inner"] = int(shape[0])
    hf["activation_function"] = "gelu_new"


def metadata(meta: dict[str, Any], hf: Mapping[str, Any]) -> None:
    """Only the keys the converter writes for GPT-2 (its MLP size always 4 * n_embd)."""
    meta.clear()
    meta.update({
        "block_count": int(hf["n_layer"]), "context_length": int(first_of(hf, "n_ctx", "n_positions")),
        "embedding_length": int(hf["n_embd"]), "feed_forward_length": 4 * int(hf["n_embd"]),
        "attention.head_count": int(hf["n_head"]), "attention.layer_norm_epsilon": float(hf.get("layer_norm_epsilon", 1e-5)),
    })


LAYOUT = GGUFLayout(
    "gpt2", "gpt2", ("transformer.wte", "transformer.wpe", "transformer.ln_f", "lm_head"),
    ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"), layer_prefix="transformer.h.{bid}.",
    config={"context_length": "n_positions", "embedding_length": "n_embd", "block_count": "n_layer",
            "attention.head_count": "n_head", "attention.layer_norm_epsilon": "layer_norm_epsilon"},
    transposed=("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"), finish=finish, metadata=metadata,
    tied_by_default=True, mlp_bias_flag=False,
)
