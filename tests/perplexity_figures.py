"""Perplexity of float32 vs bf16 vs q8_0 vs q4_k GGUF files that `zoo quantize` writes, by zoo and by
llama-perplexity, on ../shared/data/texts/little-stories.txt (windows of 128 tokens):
stories260K's real weights and a larger random Llama. Not a test: run it by hand,

    python tests/perplexity_figures.py [--json]

zoo scores each file twice: as it runs it by default (weights kept encoded, quantized matmuls with
8-bit activations where zoo or MAX has them) and decoded to float32 at load (--dtype float32).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import STORIES  # noqa: E402
from gguf_fixtures import GGUF_DATA, TEXT, llamacpp_perplexity  # noqa: E402

TARGETS = ("f32", "bf16", "q8_0", "q4_k")
CONTEXT = 128
LARGER = dict(vocab_size=512, hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
              num_key_value_heads=4, max_position_embeddings=256, rms_norm_eps=1e-5)


def larger_random_llama(folder: Path) -> Path:
    """A random Llama of 512 hidden, 4 layers (K-quant-sized rows), with stories260K's vocabulary."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**LARGER, initializer_range=0.1, bos_token_id=1, eos_token_id=2)).save_pretrained(str(folder))
    shutil.copy(STORIES / "tok512.model", folder / "tokenizer.model")
    return folder


def zoo_perplexity(path: Path, dtype: str | None) -> float:
    from zoo.api import Model
    from zoo.core.loader import load_model

    model = Model(load_model(str(path), device="cpu", dtype=dtype, verbose=False))
    return model.perplexity(TEXT.read_text().removesuffix("\n"), context=CONTEXT).perplexity


def figures(name: str, source: Path, workdir: Path, tokenizer: Path | None = None) -> dict:
    from zoo.core.checkpoints.quantize import quantize_model

    rows = {}
    for target in TARGETS:
        out = workdir / f"{name}-{target}.gguf"
        written = quantize_model(str(source), target, out, tokenizer=tokenizer)
        rows[target] = {
            "types": written.type_counts(),
            "zoo": round(zoo_perplexity(out, None), 4),
            "zoo decoded": round(zoo_perplexity(out, "float32"), 4),
            "llama.cpp": round(llamacpp_perplexity(out, CONTEXT), 4),
            "bytes": out.stat().st_size,
        }
        print(name, target, rows[target], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        result = {
            "stories260K": figures("stories260K", STORIES / "hf", work, tokenizer=STORIES / "tok512.model"),
            "random-llama-512x4": figures("random-llama", larger_random_llama(work / "random-llama"), work),
        }
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
        return
    for model, rows in result.items():
        print(f"{model} (window {CONTEXT}, {TEXT.name})")
        print(f"  {'type':6} {'zoo':>10} {'decoded':>10} {'llama.cpp':>10} {'diff':>8}  tensor types")
        for target, row in rows.items():
            diff = (row["zoo"] - row["llama.cpp"]) / row["llama.cpp"]
            print(f"  {target:6} {row['zoo']:10.4f} {row['zoo decoded']:10.4f} {row['llama.cpp']:10.4f} {diff:+8.2%}  {row['types']}")


if __name__ == "__main__":
    main()
