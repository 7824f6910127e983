"""Where weights come from and how they are read: model references, hub downloads,
HF checkpoint folders, tokenizers and the pieces of weight mappers."""
