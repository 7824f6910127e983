"""The core: interfaces, the one resolution and load path, and everything architectures share.

- `errors`, `config`, `architecture`, `registry`: what plugins and users see.
- `resolve` (model reference -> source, config, architecture) and `loader`
  (-> a compiled model): the one path every command and the API take.
- `checkpoints/`: where weights come from and how they are read.
- `blocks/`: the shared model blocks and zoo's decode kernels (these import MAX).
- `runtime/`: the KV-cached engine, sampling and text generation.

Nothing here imports MAX or torch at import time except `blocks/`, which is
imported only once a model is built, so `zoo --help` and `zoo list` start fast.
"""
