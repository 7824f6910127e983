"""The weight formats the core always reads (registered under plugin name "core"), beside HF folders."""

from __future__ import annotations

from zoo.core.architecture import WeightFormat

GGUF = WeightFormat(
    name="gguf",
    matches="zoo.core.checkpoints.gguf:matches",
    load="zoo.core.checkpoints.gguf:load",
    read_config="zoo.core.checkpoints.gguf:read_config",
    description="llama.cpp's GGUF file: config and tokenizer from its metadata; F32/F16/BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K-Q6_K, IQ4_NL, IQ4_XS tensors",
    with_registry=True,
)

CORE_FORMATS = (GGUF,)
