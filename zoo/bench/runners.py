"""The two sides of `zoo bench`: zoo's engine and transformers' `generate`, each timed per token."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from zoo.core.errors import ZooError

from .measure import Timing

if TYPE_CHECKING:
    from zoo.core.runtime.engine import RunnableModel


class ZooRunner:
    """Greedy generation through zoo's KV-cached engine."""

    def __init__(self, model: RunnableModel) -> None:
        from zoo.core.runtime.engine import Engine

        self.engine = Engine(model)

    def __call__(self, prompt: list[int], new_tokens: int) -> Timing:
        from zoo.core.runtime.sampling import SamplingOptions

        options = SamplingOptions(greedy=True, max_new_tokens=new_tokens)
        started = time.perf_counter()
        steps = self.engine.generate([prompt], options)
        tokens = [int(next(steps)[0])]
        first = time.perf_counter()
        tokens += [int(step[0]) for step in steps]
        finished = time.perf_counter()
        return Timing(first - started, finished - first, tokens)


class HFRunner:
    """Greedy `generate` of a transformers model, timed token by token through a streamer."""

    def __init__(self, model: Any, torch_device: str) -> None:
        self.model = model
        self.torch_device = torch_device

    def describe(self) -> dict[str, Any]:
        import transformers

        return {
            "transformers_version": transformers.__version__,
            "transformers_device": self.torch_device,
            "transformers_attention": getattr(self.model.config, "_attn_implementation", None),
        }

    def __call__(self, prompt: list[int], new_tokens: int) -> Timing:
        import torch

        ids = torch.tensor([prompt], dtype=torch.long, device=self.torch_device)
        clock = _TokenClock()
        with torch.inference_mode():
            started = time.perf_counter()
            out = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                num_beams=1,
                use_cache=True,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=_pad_token_id(self.model.config),
                streamer=clock,
            )
        stamps = clock.stamps
        if len(stamps) != new_tokens + 1:  # the prompt, then one stamp per new token
            raise ZooError(f"transformers streamed {len(stamps) - 1} tokens, expected {new_tokens}")
        tokens = [int(t) for t in out[0, len(prompt) :]]
        return Timing(stamps[1] - started, stamps[-1] - stamps[1], tokens)


class _TokenClock:
    """A transformers streamer (duck-typed `BaseStreamer`) that only notes when each `put` happens:
    once for the prompt, then once per new token."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, value: Any) -> None:
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def _pad_token_id(config: Any) -> int:
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        eos = getattr(config, "eos_token_id", None)
        pad = eos[0] if isinstance(eos, (list, tuple)) else eos
    return int(pad) if pad is not None else 0


def random_hf_model(hf_config: dict[str, Any], seed: int) -> Any:
    """A transformers causal LM with `hf_config`'s shapes and seeded random weights, in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(hf_config)
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise ZooError("the model's config has no model_type, so transformers cannot build it")
    try:
        config = AutoConfig.for_model(model_type, **fields)
    except (ValueError, KeyError) as error:
        raise ZooError(f"transformers cannot build a {model_type!r} model: {error}") from None
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def hf_model_on(hf_config: dict[str, Any], tensors: dict[str, Any], folder: Any = None) -> Any:
    """transformers' model on the same weights: `from_pretrained` on a HF directory, else the tensors loaded in."""
    from transformers import AutoModelForCausalLM

    if folder is not None:
        return AutoModelForCausalLM.from_pretrained(str(folder))
    model = random_hf_model(hf_config, 0)
    result = model.load_state_dict(tensors, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    missing = sorted(set(result.missing_keys) - tied)
    if missing:
        raise ZooError(f"transformers' model does not take these weights (missing {', '.join(missing[:5])}); use --no-transformers")
    return model
