"""MAX's text-generation pipeline, taking the zoo graph's own greedy token when it can.

The zoo graph computes each row's argmax together with its logits. When every
request of a step is greedy (temperature 0 or top-k 1) and asks for nothing
that needs the logits on MAX's side (penalties, minimum tokens, logit
processors, log-probabilities, label scores, structured output), the step
takes those tokens instead of running MAX's sampler graph over the logits.
Any other step is MAX's own, unchanged. `ZOO_SERVE_MAX_SAMPLER=1` makes every
step MAX's (to compare).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from max.pipelines.lib.pipeline_variants.text_generation import TextGenerationPipeline
from max.pipelines.lib.pipeline_variants.utils import update_context_and_prepare_responses


class ZooTextGenerationPipeline(TextGenerationPipeline):
    """`TextGenerationPipeline` with a greedy fast path (see the module docstring)."""

    def _execute(self, inputs: Any) -> Any:
        batch = inputs.flat_batch
        if not batch or inputs.enable_log_probs or os.environ.get("ZOO_SERVE_MAX_SAMPLER", "") not in ("", "0"):
            return super()._execute(inputs)
        if not all(_plain_greedy(ctx) for ctx in batch):
            return super()._execute(inputs)
        model_inputs, bitmask, flat_batch = self.prepare_batch(inputs.batches)
        assert bitmask is None  # no request asked for structured output
        outputs = self._launch_forward_pass(model_inputs, flat_batch, step=0)
        tokens = np.array(self._pipeline_model.greedy, dtype=np.int64)
        limit = self.vocab_size  # the tokenizer's ids: MAX's sampler never picks a padded row
        if limit is not None and (tokens >= limit).any():
            logits = outputs.logits.to_numpy()
            for row in np.flatnonzero(tokens >= limit):
                tokens[row] = int(np.argmax(logits[row, :limit]))
        responses = update_context_and_prepare_responses(tokens[:, None], flat_batch, enable_log_probs=False)
        for ctx in batch:
            self._kv_manager.step(ctx)
        return responses


def _plain_greedy(ctx: Any) -> bool:
    """Whether MAX's sampler would take the argmax of this request's raw logits."""
    params = ctx.sampling_params
    return (
        params.top_k == 1
        and not params.needs_penalties
        and not params.min_new_tokens
        and params.logits_processors is None
        and ctx.json_schema is None
        and getattr(ctx, "grammar", None) is None
        and getattr(ctx, "matcher", None) is None
        and getattr(ctx, "label_token_ids", None) is None
        and not getattr(ctx, "grammar_enforced", False)
    )
