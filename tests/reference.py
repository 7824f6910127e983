"""transformers as the reference, and zoo's KV-cached decode to compare with it."""

from __future__ import annotations

import numpy as np

from zoo.core.runtime.engine import Engine
from zoo.core.runtime.sampling import SamplingOptions


def reference_logits(hf, ids: list[int]) -> np.ndarray:
    """transformers' last-position logits for `ids`, full recompute."""
    import torch

    with torch.no_grad():
        return hf(torch.tensor([ids])).logits[0, -1].numpy()


def reference_greedy(hf, ids: list[int], new_tokens: int) -> list[int]:
    """transformers greedy `generate`, EOS off so that exactly `new_tokens` come back."""
    import torch
    from transformers import GenerationConfig

    settings = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        mask = torch.ones(1, len(ids), dtype=torch.long)
        out = hf.generate(torch.tensor([ids]), generation_config=settings, attention_mask=mask)
    return out[0, len(ids) :].tolist()


def recomputed_greedy(hf, ids: list[int], new_tokens: int) -> list[int]:
    """Greedy tokens by full recompute at every step (`reference_logits`), for references that
    only take whole sequences."""
    sequence = list(ids)
    for _ in range(new_tokens):
        sequence.append(int(np.argmax(reference_logits(hf, sequence))))
    return sequence[len(ids) :]


def cached_decode(model, prompts: list[list[int]], steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Greedy tokens (steps, batch) and the last-position logits of every KV-cached step."""
    logits: list[np.ndarray] = []
    options = SamplingOptions(greedy=True, max_new_tokens=steps)
    tokens = list(Engine(model).generate(prompts, options, on_logits=lambda x: logits.append(x.copy())))
    return np.array(tokens), logits


def assert_matches_transformers(hf, model, prompts: list[list[int]], steps: int = 10, atol: float = 1e-4) -> float:
    """Each row's logits at every cached step equal transformers' full recompute (within
    `atol`: float32 noise by default); returns the max diff."""
    worst = step_differences(hf, model, prompts, steps)
    assert all(difference <= atol for difference in worst), f"largest logit difference per step: {worst} (atol {atol})"
    return max(worst)


def step_differences(hf, model, prompts: list[list[int]], steps: int = 10) -> list[float]:
    """Each row's largest logit difference from transformers' full recompute, at every cached step."""
    tokens, logits = cached_decode(model, prompts, steps)
    worst = []
    for row, prompt in enumerate(prompts):
        sequence = list(prompt)
        for step, step_logits in enumerate(logits):
            worst.append(float(np.abs(step_logits[row] - reference_logits(hf, sequence)).max()))
            sequence.append(int(tokens[step, row]))
    return worst


def random_hf(kind: str, hf_config: dict, seed: int):
    """A transformers model of `kind` whose every weight, bias and norm scale is random."""
    import torch
    import transformers

    torch.manual_seed(seed)
    fields = {k: v for k, v in hf_config.items() if k not in ("architectures", "model_type")}
    config = getattr(transformers, f"{kind}Config")(initializer_range=0.2, eos_token_id=None, **fields)
    model = getattr(transformers, f"{kind}ForCausalLM")(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.2)
            elif "norm" in name:
                p.normal_(1.0, 0.2)
    return model
