"""The exceptions users see: each carries a one-line message shown as is, without a traceback.

The CLI prints any `ZooError` as `zoo: error: MESSAGE` and exits with status 1;
the Python API raises the same objects, so a program can catch a family of
failures (`except zoo.ModelNotFoundError`) or all of them (`except zoo.ZooError`).
"""


class ZooError(Exception):
    """A user-facing error: the message is shown as is, without a traceback."""


class ModelNotFoundError(ZooError):
    """The model reference names no alias, directory, file or hub repository zoo can use."""


class DownloadError(ZooError):
    """A hub checkpoint could not be fetched (offline, missing, gated)."""


class UnsupportedModelError(ZooError):
    """No plugin runs this architecture, or not this variant of it."""


class ConfigError(ZooError):
    """A config.json (or GGUF metadata) field is missing, mistyped or out of range."""


class WeightsError(ZooError):
    """Weights are missing, corrupt, or do not fit the model (names, shapes, dtypes)."""


class TokenizerError(ZooError):
    """The tokenizer is missing, unreadable, or does not fit the model."""


class OptionsError(ZooError):
    """A sampling or command option is out of range."""


class PromptError(ZooError):
    """A prompt is empty, too long for the context, or holds token ids outside the vocabulary."""


class PluginError(ZooError):
    """A plugin's function failed or returned the wrong thing while zoo was using it."""


def describe_failure(error: BaseException) -> str:
    """One line for an unexpected exception (or `sys.exit`) raised by someone else's code."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
