"""A zoo model as a MAX `PipelineModel`, so MAX's scheduler and server can run it.

MAX's text pipeline tokenizes, schedules, samples and streams; each step it
asks the pipeline model for next-token logits of a batch of requests. Here
that step is the zoo engine: every request owns a zoo KV cache (created on
its first step, dropped when MAX releases the request), and its new tokens
(the prompt, possibly in chunks, then one token per step) run through the
same compiled zoo graph that `zoo run` uses. Weights come through MAX's
loader and the architecture's zoo mapper (the weight adapter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from max.driver import Buffer
from max.pipelines.lib.interfaces.pipeline_model import ModelInputs, ModelOutputs, PipelineModelWithKVCache

from zoo.core.runtime.engine import Engine
from zoo.core.runtime.kvcache import KVCache
from zoo.core.loader import LoadedModel, compile_mapped, describe_device, log

from .arch_config import ZooArchConfig
from .registry import zoo_architecture, zoo_config


@dataclass(kw_only=True)
class ZooInputs(ModelInputs):
    """One step's requests (MAX text contexts), in batch order."""

    contexts: list[Any] = field(default_factory=list)


class ZooPipelineModel(PipelineModelWithKVCache[Any, Any, Any]):
    """Runs a zoo architecture for MAX; subclassed per architecture with `model_config_cls` set."""

    model_config_cls: ClassVar[type[ZooArchConfig]] = ZooArchConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._caches: dict[Any, KVCache] = {}
        self.engine = Engine(self._load())

    @property
    def architecture_name(self) -> str:
        return type(self).model_config_cls.zoo_architecture

    def _load(self) -> LoadedModel:
        architecture = zoo_architecture(self.architecture_name)
        config = zoo_config(self.architecture_name, self.huggingface_config)
        mapped = self._load_state_dict()  # MAX's loader + the zoo mapper as weight adapter
        device, dtype = self.devices[0], self.dtype
        log(f"{architecture.name} for max serve on {describe_device(device)}, {dtype.name}; compiling...")
        graph, seconds = compile_mapped(architecture, config, mapped, device, dtype)
        log(f"compiled in {seconds:.1f}s")
        name = str(self.pipeline_config.model.model_path)
        return LoadedModel(name, architecture, config, None, graph, device, dtype, name, seconds)

    def _prepare_initial_token_inputs(
        self,
        replica_batches: Sequence[Sequence[Any]],
        kv_cache_inputs: Any = None,
        return_n_logits: int = 1,
    ) -> ZooInputs:
        return ZooInputs(contexts=[ctx for batch in replica_batches for ctx in batch], kv_cache_inputs=kv_cache_inputs)

    def execute(self, model_inputs: ModelInputs) -> ModelOutputs:
        assert isinstance(model_inputs, ZooInputs)
        rows = [self._step(ctx) for ctx in model_inputs.contexts]
        logits = Buffer.from_numpy(np.ascontiguousarray(np.stack(rows).astype(np.float32)))
        if not self.devices[0].is_host:
            logits = logits.to(self.devices[0])
        return ModelOutputs(logits=logits, next_token_logits=logits)

    def _step(self, ctx: Any) -> np.ndarray:
        """Feeds the request's tokens not yet in its cache; returns its next-token logits."""
        end = ctx.tokens.current_position
        cache = self._caches.get(ctx.request_id)
        if cache is None or cache.filled >= end:  # new request (or MAX rewound it): start over
            capacity = max(min(int(ctx.max_length), self.max_seq_len), end)
            cache = self.engine.new_cache(1, capacity)
            self._caches[ctx.request_id] = cache
        tokens = np.asarray(ctx.tokens.all[cache.filled : end])
        _, logits = self.engine.extend(tokens.tolist(), cache)
        return logits

    def release(self, request_id: Any) -> None:
        """Frees a finished request's cache."""
        self._caches.pop(request_id, None)
