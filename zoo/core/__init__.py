"""The core: interfaces, registry, weights, tokenizer and the generation engine.

Only `layers`, `heads` and `moe` import MAX at module import time; they are
imported once a model is actually built. Everything else imports MAX and
torch inside the functions that need them, so `zoo --help` and `zoo list`
start fast.
"""
