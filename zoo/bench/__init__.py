"""Benchmarks: `zoo bench` (zoo against transformers on the same weights) and `zoo bench-moe`.

`measure` times runners, `runners` holds the two sides, `run` prepares a model
through the same loader as `zoo run` and puts it together, `report` prints it,
`moe` compares mixture-of-experts routing with a dense model.
"""
