"""The MAX-side config and memory planner of a zoo architecture.

MAX's text pipeline always allocates a paged KV cache from the architecture's
config. zoo models keep their own cache pool instead (`pipeline_model`), so
the paged cache is declared at the smallest shape (one layer, one head): the
scheduler still accounts tokens per request, but almost no memory goes to it.
The pool's memory, `--max-batch-size` x `--max-length` tokens of keys and
values, is what `ZooMemoryPlanner` reserves when MAX plans memory, so a
server that would not fit fails at start with MAX's out-of-memory message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from max.pipelines.kv_cache.memory_planner import PagedMemoryPlanner
from max.pipelines.lib.interfaces.arch_config import ArchConfigWithAttentionKVCache

from zoo.core.config import ModelConfig

from .registry import zoo_config
from .sizing import DEFAULT_MAX_BATCH_SIZE, pool_bytes

# The paged cache MAX allocates but zoo never reads, declared tiny (64 bytes a token in float32).
PAGED_LAYERS, PAGED_KV_HEADS, PAGED_HEAD_DIM = 1, 1, 8


@dataclass
class ZooArchConfig(ArchConfigWithAttentionKVCache):
    """Config for one zoo architecture; subclassed per architecture with `zoo_architecture` set."""

    DEFAULT_ENCODING: ClassVar[Any] = "float32"
    SUPPORTED_ENCODINGS: ClassVar[set[Any]] = {"float32", "bfloat16"}
    zoo_architecture: ClassVar[str] = ""

    @property
    def num_key_value_heads(self) -> int:
        return PAGED_KV_HEADS

    @property
    def head_dim(self) -> int:
        return PAGED_HEAD_DIM

    @property
    def num_layers(self) -> int:
        return PAGED_LAYERS

    @classmethod
    def model_config(cls, huggingface_config: Any) -> ModelConfig:
        return zoo_config(cls.zoo_architecture, huggingface_config)

    @classmethod
    def calculate_max_seq_len(cls, huggingface_config: Any, model_config: Any) -> int:
        """The user's `--max-length`, bounded by the model's context length."""
        limit = cls.model_config(huggingface_config).context_length
        wanted = getattr(model_config, "max_length", None)
        if wanted and wanted > limit:
            raise ValueError(f"--max-length {wanted} exceeds the model's context length {limit}")
        return int(wanted or limit)

    @classmethod
    def construct_kv_params(
        cls,
        huggingface_config: Any,
        pipeline_config: Any,
        devices: list[Any],
        kv_cache_config: Any,
        cache_dtype: Any,
    ) -> Any:
        return kv_cache_config.to_params(
            dtype=cache_dtype,
            n_kv_heads=PAGED_KV_HEADS,
            head_dim=PAGED_HEAD_DIM,
            num_layers=PAGED_LAYERS,
            devices=devices,
            data_parallel_degree=pipeline_config.model.data_parallel_degree,
        )


class ZooMemoryPlanner(PagedMemoryPlanner):
    """MAX's paged planner, with the zoo cache pool reserved up front (as activation memory,
    which MAX subtracts before it sizes anything else) and a batch of
    `DEFAULT_MAX_BATCH_SIZE` when none is given."""

    def infer_max_batch_size(self, pipeline_config: Any, devices: list[Any], weights_size: int) -> int:
        return DEFAULT_MAX_BATCH_SIZE

    def estimate_activation_memory(self, pipeline_config: Any, huggingface_config: Any) -> int:
        arch = self._config
        slots = pipeline_config.runtime.max_batch_size or DEFAULT_MAX_BATCH_SIZE
        config = type(arch).model_config(huggingface_config or arch.huggingface_config)
        return pool_bytes(config, arch.dtype.size_in_bytes, slots, int(arch.max_seq_len))
