"""The module `max serve --custom-architectures` imports: every zoo architecture for MAX.

`ARCHITECTURES` holds one MAX `SupportedArchitecture` per architecture in the
zoo registry (built-ins and third-party plugins alike), named by its HF
`architectures` value, so MAX picks it for any checkpoint of that kind, in
place of MAX's own implementation of the same name.
"""

from __future__ import annotations

from typing import Any

from max.graph.weights import WeightsFormat
from max.pipelines.context import TextContext
from max.pipelines.lib import SupportedArchitecture
from max.pipelines.modeling.types import PipelineTask

from zoo.core.architecture import Architecture
from zoo.plugins.manager import get_registry

from .arch_config import ZooArchConfig, ZooMemoryPlanner
from .pipeline import ZooTextGenerationPipeline
from .pipeline_model import ZooPipelineModel
from .tokenizer import ZooTokenizer
from .weights import ZooWeightAdapter


def supported_architecture(architecture: Architecture) -> Any:
    """The MAX registration of one zoo architecture."""
    config = _module_class(f"Zoo{architecture.name}Config", ZooArchConfig, zoo_architecture=architecture.name)
    model = _module_class(f"Zoo{architecture.name}", ZooPipelineModel, model_config_cls=config)
    tokenizer = _module_class(f"Zoo{architecture.name}Tokenizer", ZooTokenizer, zoo_architecture=architecture.name)
    return SupportedArchitecture(
        name=architecture.name,
        example_repo_ids=[alias.repo_id for alias in get_registry().aliases.values() if alias.architecture == architecture.name],
        default_encoding=config.DEFAULT_ENCODING,
        supported_encodings=set(config.SUPPORTED_ENCODINGS),
        pipeline_model=model,
        tokenizer=tokenizer,
        context_type=TextContext,
        default_weights_format=WeightsFormat.safetensors,
        weight_adapters={WeightsFormat.safetensors: ZooWeightAdapter(architecture.name)},
        task=PipelineTask.TEXT_GENERATION,
        config=config,
        memory_planner=ZooMemoryPlanner,
        pipeline_cls=ZooTextGenerationPipeline,
        multi_gpu_supported=False,
        supports_overlap_scheduler=False,
        supports_device_graph_capture=False,
    )


def _module_class(name: str, base: type, **attributes: Any) -> type:
    """A subclass defined as an attribute of this module, so MAX's worker processes can unpickle it."""
    cls = type(name, (base,), {"__module__": __name__, **attributes})
    globals()[name] = cls
    return cls


ARCHITECTURES = [supported_architecture(a) for a in get_registry().architectures.values()]
