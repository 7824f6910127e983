"""Random-init GPT-2 checkpoints saved like hub checkpoints, and a transformers reference.

TINY is shared with other test files (bench, CLI): same shapes, same compiled graph.
"""

from __future__ import annotations

from pathlib import Path

from conftest import save_gpt2_tokenizer

TINY = dict(n_embd=64, n_layer=2, n_head=4, n_positions=128, vocab_size=50257)
# A second shape: odd head count, custom inner size, exact GELU, other epsilon.
VARIANT = dict(
    n_embd=96, n_layer=3, n_head=3, n_inner=200, n_positions=256, vocab_size=50257,
    activation_function="gelu", layer_norm_epsilon=1e-6,
)
# GPT-2 124M's exact shapes.
FULL_124M = dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257)


def make_checkpoint(folder: Path, seed: int = 0, initializer_range: float = 0.2, **shape) -> object:
    """Saves a random GPT2LMHeadModel (plus the real GPT-2 tokenizer) into `folder`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(initializer_range=initializer_range, **shape)
    model = GPT2LMHeadModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    save_gpt2_tokenizer(folder)
    return model
