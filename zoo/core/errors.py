"""The one exception type the CLI turns into a one-line error."""


class ZooError(Exception):
    """A user-facing error: the message is shown as is, without a traceback."""
