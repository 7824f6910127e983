"""`zoo verify`: an architecture (or a checkpoint directory) against its transformers reference.

For each of the architecture's `Variant`s (small configs its plugin declares),
verify builds a transformers model with seeded random weights (norm scales and
biases random too), saves it as a HF checkpoint, loads that folder through
zoo's own loader, and runs both side by side on a batch of random prompts:

- logits: zoo's KV-cached logits at the prefill and at every decode step
  against transformers' full recompute of the same sequence;
- greedy: zoo's greedy tokens against transformers' greedy `generate`;
- batch: every row of the batch against the same prompt run alone;
- cache: the cached decode's logits against zoo's own one-call recompute.

A directory is checked the same way on its own weights. Nothing here is
imported by `zoo --help`; torch, transformers and MAX load when it runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.architecture import Architecture, Variant, resolve
from zoo.core.errors import UnsupportedModelError, ZooError
from zoo.core.registry import Registry

TOLERANCE = 1e-4  # absolute, on logits of magnitude ~1-10 in float32
SEED = 0
# The reference runs the modeling file's own attention: transformers' sdpa path silently
# drops arguments such as Gemma 2's attention soft-cap (logits then differ by whole units).
REFERENCE_ATTENTION = "eager"

Log = Callable[[str], None]


@dataclass
class VariantReport:
    """How one variant compared; `failures` says what went wrong, by check and step."""

    architecture: str
    variant: str
    prompt_lengths: list[int]
    new_tokens: int
    step_logit_diffs: list[float] = field(default_factory=list)
    """Max |zoo - transformers| over the batch, per step (0 is the prefill)."""
    greedy_tokens_equal: bool = False
    batch_vs_single_diff: float = 0.0
    cached_vs_recomputed_diff: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def verify(target: str, registry: Registry, *, log: Log | None = None) -> list[VariantReport]:
    """Checks a registered architecture's variants, or a checkpoint directory's own weights."""
    path = Path(target).expanduser()
    if path.is_dir():
        return [verify_directory(path, registry, log=log)]
    architecture = registry.architectures.get(target)
    if architecture is None:
        registry.check_unique(target)
        known = ", ".join(sorted(registry.architectures))
        raise UnsupportedModelError(f"{target!r} is neither a registered architecture nor a checkpoint directory (known: {known})")
    if not architecture.variants:
        raise UnsupportedModelError(f"architecture {target!r} (plugin {architecture.plugin!r}) declares no variants to verify")
    return [verify_variant(architecture, variant, registry, log=log) for variant in architecture.variants]


def reference_class(architecture: Architecture) -> Any:
    try:
        return resolve(architecture.reference_class)
    except (ImportError, AttributeError) as error:
        raise UnsupportedModelError(
            f"{architecture.name}: reference class {architecture.reference_class!r} cannot be imported ({error})"
        ) from None


def random_reference(architecture: Architecture, hf_config: Mapping[str, Any], seed: int = SEED) -> Any:
    """The transformers reference model for `hf_config`, every weight, norm scale and bias random."""
    import torch
    from transformers import AutoConfig
    from transformers.utils import logging

    logging.disable_progress_bar()
    fields = {k: v for k, v in hf_config.items() if k not in ("model_type",)}
    model_type = hf_config.get("model_type")
    if not model_type:
        raise ZooError(f"variant config for {architecture.name} needs a model_type")
    config = AutoConfig.for_model(model_type, attn_implementation=REFERENCE_ATTENTION, **fields)
    torch.manual_seed(seed)
    model = reference_class(architecture)(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1:  # norm scales and biases: random around their initial value
                param.add_(torch.randn_like(param) * 0.2)
            else:
                param.normal_(0.0, 0.2)
    return model


def verify_variant(architecture: Architecture, variant: Variant, registry: Registry, *, log: Log | None = None) -> VariantReport:
    """Builds the variant's random reference, saves it, loads it with zoo and compares."""
    hf = random_reference(architecture, variant.hf_config)
    with tempfile.TemporaryDirectory(prefix="zoo-verify-") as folder:
        hf.save_pretrained(folder)
        model = _load(folder, registry, log)
    return compare(architecture.name, variant.name, hf, model, variant.prompt_lengths, variant.new_tokens)


def verify_directory(path: Path, registry: Registry, *, log: Log | None = None) -> VariantReport:
    """A checkpoint directory's own weights against transformers' `from_pretrained` of it."""
    from zoo.core.resolve import resolve_model

    resolved = resolve_model(str(path), registry)
    hf = reference_class(resolved.architecture).from_pretrained(str(path), attn_implementation=REFERENCE_ATTENTION).float().eval()
    model = _load(str(path), registry, log)
    return compare(resolved.architecture.name, str(path), hf, model, (7, 3), 8)


def _load(folder: str, registry: Registry, log: Log | None) -> Any:
    from zoo.core.loader import compile_prepared, prepare_model

    prepared = prepare_model(folder, registry, need_tokenizer=False)
    if log:
        log(f"compiling {prepared.resolved.architecture.name} ({prepared.config.n_layers} layers)")
    return compile_prepared(prepared, device="cpu", dtype="float32", verbose=False)


def compare(architecture: str, variant: str, hf: Any, model: Any, lengths: Sequence[int], new_tokens: int) -> VariantReport:
    """Runs zoo and transformers side by side; fills in every check."""
    from zoo.core.runtime.engine import Engine
    from zoo.core.runtime.sampling import SamplingOptions

    report = VariantReport(architecture, variant, list(lengths), new_tokens)
    vocab = model.config.vocab_size
    rng = np.random.default_rng(SEED)
    prompts = [rng.integers(0, vocab, size=n).tolist() for n in lengths]
    engine = Engine(model)
    steps = min(new_tokens, model.config.context_length - max(lengths))
    options = SamplingOptions(greedy=True, max_new_tokens=steps)

    batch_logits: list[np.ndarray] = []
    tokens = np.array(list(engine.generate(prompts, options, on_logits=lambda x: batch_logits.append(x.copy()))))
    tolerance = TOLERANCE
    for step in range(steps):
        worst = 0.0
        for row, prompt in enumerate(prompts):
            sequence = list(prompt) + [int(t) for t in tokens[:step, row]]
            expected = _reference_logits(hf, sequence)
            worst = max(worst, float(np.abs(batch_logits[step][row] - expected).max()))
        report.step_logit_diffs.append(worst)
        if worst > tolerance:
            report.failures.append(f"logits: step {step} ({'prefill' if step == 0 else 'decode'}) differs from transformers by {worst:.3g} > {tolerance:g}")

    for row, prompt in enumerate(prompts):
        expected_tokens = _reference_greedy(hf, prompt, steps)
        got = [int(t) for t in tokens[:, row]]
        if got != expected_tokens:
            first = next(i for i, (a, b) in enumerate(zip(got, expected_tokens)) if a != b)
            report.failures.append(f"greedy: prompt {row} token {first} is {got[first]}, transformers {expected_tokens[first]}")
    report.greedy_tokens_equal = not any(f.startswith("greedy") for f in report.failures)

    for row, prompt in enumerate(prompts):
        alone: list[np.ndarray] = []
        list(engine.generate([prompt], options, on_logits=lambda x: alone.append(x[0].copy())))
        diff = max(float(np.abs(alone[s] - batch_logits[s][row]).max()) for s in range(steps))
        report.batch_vs_single_diff = max(report.batch_vs_single_diff, diff)
        full = list(prompt) + [int(t) for t in tokens[:, row]]
        recomputed = engine.score(full[:-1])
        cached = np.stack([batch_logits[s][row] for s in range(steps)])
        diff = float(np.abs(recomputed[len(prompt) - 1 :] - cached).max())
        report.cached_vs_recomputed_diff = max(report.cached_vs_recomputed_diff, diff)
    if report.batch_vs_single_diff > tolerance:
        report.failures.append(f"batch: a row differs from its prompt run alone by {report.batch_vs_single_diff:.3g}")
    if report.cached_vs_recomputed_diff > tolerance:
        report.failures.append(f"cache: cached decode differs from recompute by {report.cached_vs_recomputed_diff:.3g}")
    return report


def _reference_logits(hf: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return hf(torch.tensor([ids])).logits[0, -1].float().numpy()


def _reference_greedy(hf: Any, ids: list[int], new_tokens: int) -> list[int]:
    import torch
    from transformers import GenerationConfig

    settings = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), generation_config=settings, attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out[0, len(ids) :].tolist()
