"""The core: interfaces, registry, weights, tokenizer and the generation engine.

Nothing here imports MAX or torch at module import time except `layers`,
`heads` and `engine`, which are only imported once a model is actually run.
"""
