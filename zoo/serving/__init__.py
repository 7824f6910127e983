"""Serving zoo models through MAX's own server (`max serve`).

`max_architectures` is the module `max serve --custom-architectures` imports:
it turns every registered zoo architecture (built-in or plugin) into a MAX
`SupportedArchitecture`. `command` builds and runs that `max serve` command
for `zoo serve`. Nothing here is imported by `zoo --help` or `zoo list`.
"""
