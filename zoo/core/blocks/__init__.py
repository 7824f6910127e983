"""The shared model blocks every architecture is built from, and zoo's decode kernels.

`decoder.build_decoder(config)` assembles a whole decoder-only model from a
`zoo.core.config.DecoderConfig`; the parts (`attention`, `feedforward`,
`norms`, `positions`, `moe`) are also usable on their own. Modules here
import MAX when they are imported, so only model-building code imports them;
`rope` is NumPy only.
"""
