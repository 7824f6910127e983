"""The GPT-2 weight mapper as a pure function, and the real GPT-2 tokenizer."""

from __future__ import annotations

import torch

from conftest import GPT2_TOKENIZER
from zoo.architectures.gpt2.config import GPT2Config
from zoo.architectures.gpt2.weights import map_weights
from zoo.core.checkpoints.tokenizer import load_tokenizer

CONFIG = GPT2Config.from_hf({"n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16, "vocab_size": 11})


def checkpoint(prefix: str) -> dict[str, torch.Tensor]:
    e = 8
    return {
        f"{prefix}wte.weight": torch.randn(11, e),
        f"{prefix}wpe.weight": torch.randn(16, e),
        f"{prefix}h.0.ln_1.weight": torch.randn(e),
        f"{prefix}h.0.attn.c_attn.weight": torch.randn(e, 3 * e),
        f"{prefix}h.0.attn.c_attn.bias": torch.randn(3 * e),
        f"{prefix}h.0.attn.bias": torch.ones(1, 1, 16, 16),
        f"{prefix}h.0.attn.masked_bias": torch.tensor(-1e4),
        f"{prefix}h.0.mlp.c_fc.weight": torch.randn(e, 4 * e),
        f"{prefix}h.0.mlp.c_proj.weight": torch.randn(4 * e, e),
        f"{prefix}ln_f.bias": torch.randn(e),
        "lm_head.weight": torch.randn(11, e),
    }


def test_conv1d_weights_are_transposed_and_renamed():
    source = checkpoint("transformer.")
    mapped = map_weights(source, CONFIG)
    assert torch.equal(mapped["layers.0.attention.qkv_proj.weight"], source["transformer.h.0.attn.c_attn.weight"].T)
    assert torch.equal(mapped["layers.0.attention.qkv_proj.bias"], source["transformer.h.0.attn.c_attn.bias"])
    assert torch.equal(mapped["layers.0.mlp.up_proj.weight"], source["transformer.h.0.mlp.c_fc.weight"].T)
    assert torch.equal(mapped["layers.0.mlp.down_proj.weight"], source["transformer.h.0.mlp.c_proj.weight"].T)
    assert torch.equal(mapped["embed_tokens.weight"], source["transformer.wte.weight"])
    assert torch.equal(mapped["learned_positions.embedding.weight"], source["transformer.wpe.weight"])
    assert torch.equal(mapped["layers.0.attn_norm.weight"], source["transformer.h.0.ln_1.weight"])
    assert "final_norm.bias" in mapped


def test_buffers_and_tied_head_are_dropped_with_or_without_prefix():
    with_prefix = map_weights(checkpoint("transformer."), CONFIG)
    without = map_weights(checkpoint(""), CONFIG)
    assert set(with_prefix) == set(without)
    assert not any("masked_bias" in k or k.endswith("attn.bias") or k.startswith("lm_head") for k in with_prefix)


def test_unknown_names_pass_through_for_the_loader_to_report():
    mapped = map_weights({"transformer.h.0.extra.weight": torch.zeros(2)}, CONFIG)
    assert list(mapped) == ["h.0.extra.weight"]


def test_real_gpt2_tokenizer_round_trips():
    tokenizer = load_tokenizer(GPT2_TOKENIZER)
    text = "Hello world, this is GPT-2."
    ids = tokenizer.encode(text)
    assert ids == [15496, 995, 11, 428, 318, 402, 11571, 12, 17, 13]
    assert tokenizer.decode(ids) == text
    unicode = "naïve café — 東京 🚀"
    assert tokenizer.decode(tokenizer.encode(unicode)) == unicode
    assert tokenizer.eos_token_ids == (50256,)
