"""A zoo model as a MAX `PipelineModel`, so MAX's scheduler and server can run it.

MAX's text pipeline tokenizes, schedules, samples and streams; each step it
asks the pipeline model for next-token logits of a batch of requests. Here
that step runs on a zoo `CachePool`: one KV cache of `--max-batch-size`
slots x `--max-length` tokens, allocated (and touched) once when the model
loads. A request takes a slot at its first step and gives it back when MAX
releases it (completion, cancellation, client disconnect, preemption); its
prompt (possibly in chunks) runs on its slot alone, and every request that
decodes in a step shares one graph call, whatever length each has reached.
Weights come through MAX's loader and the architecture's zoo mapper (the
weight adapter); a GGUF file's through zoo's own loader (`single_file`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from max.driver import Buffer
from max.pipelines.lib.interfaces.pipeline_model import ModelInputs, ModelOutputs, PipelineModelWithKVCache

from zoo.core.loader import LoadedModel, compile_mapped, describe_device, load_model, log
from zoo.core.runtime.engine import Engine
from zoo.core.runtime.pool import CachePool

from .arch_config import ZooArchConfig
from .registry import zoo_architecture, zoo_config
from .single_file import read_recipe


@dataclass(kw_only=True)
class ZooInputs(ModelInputs):
    """One step's requests (MAX text contexts), in batch order."""

    contexts: list[Any] = field(default_factory=list)


class ZooPipelineModel(PipelineModelWithKVCache[Any, Any, Any]):
    """Runs a zoo architecture for MAX; subclassed per architecture with `model_config_cls` set."""

    model_config_cls: ClassVar[type[ZooArchConfig]] = ZooArchConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trace = os.environ.get("ZOO_SERVE_TRACE_SLOTS", "") not in ("", "0")
        self.greedy = np.zeros(0, dtype=np.int64)
        self.engine = Engine(self._load())
        self.pool = CachePool(self.engine, self.max_batch_size, self.max_seq_len)
        self.pool.cache.touch()
        log(
            f"KV cache pool: {self.max_batch_size} slots x {self.max_seq_len} tokens = "
            f"{self.pool.nbytes / 2**20:.0f} MiB, allocated once"
        )

    @property
    def architecture_name(self) -> str:
        return type(self).model_config_cls.zoo_architecture

    def _load(self) -> LoadedModel:
        recipe = read_recipe(Path(str(self.pipeline_config.model.model_path)))
        if recipe is not None:  # a single file (GGUF): zoo's own loader reads it
            device = "cpu" if self.devices[0].is_host else "gpu"
            return load_model(str(recipe.weights), device=device, dtype=recipe.dtype, need_tokenizer=False)
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
        batch = [(ctx.request_id, self._new_tokens(ctx)) for ctx in model_inputs.contexts]
        self.greedy, logits = self.pool.step(batch)  # the graph's argmax, for ZooTextGenerationPipeline
        buffer = Buffer.from_dlpack(np.ascontiguousarray(logits, dtype=np.float32))
        if not self.devices[0].is_host:
            buffer = buffer.to(self.devices[0])
        return ModelOutputs(logits=buffer, next_token_logits=buffer)

    def _new_tokens(self, ctx: Any) -> list[int]:
        """The request's tokens its slot does not hold yet (taking a slot at its first step)."""
        key, end = ctx.request_id, ctx.tokens.current_position
        if key not in self.pool:
            self.pool.acquire(key)
            if self.trace:
                log(f"slot taken by {key}; {self.pool.used} of {self.pool.slots} in use")
        elif self.pool.length(key) >= end:  # MAX rewound the request: start over
            self.pool.reset(key)
        return ctx.tokens.all[self.pool.length(key) : end].tolist()

    def release(self, request_id: Any) -> None:
        """Gives the finished (or cancelled) request's slot back to the pool."""
        if request_id in self.pool:
            self.pool.release(request_id)
            if self.trace:
                log(f"slot given back by {request_id}; {self.pool.used} of {self.pool.slots} in use")
