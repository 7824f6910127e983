"""The `zoo` command line: a thin layer over the library (`zoo.api`, `zoo.core`).

Only click, pydantic and pluggy load for `zoo --help` and `zoo list`; MAX,
torch and transformers are imported when a model is actually loaded. Every
user error, click's usage errors included, is one `zoo: error:` line and exit
status 1; Ctrl-C ends the output line and exits 130.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def _interrupted() -> NoReturn:
    """Ctrl-C: end the output line, say so, exit 130."""
    for stream, text in ((sys.stdout, "\n"), (sys.stderr, "zoo: interrupted\n")):
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass
    sys.exit(130)


try:  # Ctrl-C while zoo starts is still an interruption, not a traceback
    import click

    from zoo.core.errors import ZooError

    from .bench import bench_command, bench_moe_command
    from .catalog import info_command, list_command
    from .common import CONTEXT_SETTINGS
    from .evaluate import perplexity_command
    from .loadtest import loadtest_command
    from .quantize import quantize_command
    from .run import run_command
    from .serve import serve_command
    from .verify import verify_command
except KeyboardInterrupt:
    _interrupted()

__all__ = ["cli", "main"]


class Interrupted(BaseException):
    """Ctrl-C inside a command, carried past click (which would print a blank line on stderr)."""


class ZooGroup(click.Group):
    """The command group; plugin commands join the built-in ones when the group is first listed or invoked."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None
        except click.exceptions.Exit as done:
            raise SystemExit(done.exit_code) from None

    def _plugin_commands(self) -> None:
        if getattr(self, "_plugins_added", False):
            return
        self._plugins_added = True
        from zoo.plugins.manager import get_registry, warn

        for entry in get_registry().commands:
            name = entry.command.name
            if name in self.commands:
                warn(f"plugin {entry.plugin!r}: command {name!r} clashes with an existing command; ignored")
                continue
            self.add_command(entry.command, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            self._plugin_commands()
        return super().get_command(ctx, name)


@click.group(cls=ZooGroup, context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@click.version_option(package_name="zoo", prog_name="zoo")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """zoo: run LLM architectures on Modular's MAX, extended by plugins."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for _command in (
    list_command, info_command, run_command, perplexity_command, quantize_command, bench_command, bench_moe_command,
    serve_command, loadtest_command, verify_command,
):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Runs the CLI; user errors become one line on stderr and exit status 1."""
    try:
        cli.main(args=argv, prog_name="zoo", standalone_mode=False)
    except (Interrupted, click.exceptions.Abort, KeyboardInterrupt):
        _interrupted()
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        click.echo(f"zoo: error: {_one_line(error.format_message())}", err=True)
        sys.exit(1)
    except ZooError as error:
        click.echo(f"zoo: error: {_one_line(str(error))}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as error:
        if os.environ.get("ZOO_DEBUG"):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        click.echo(f"zoo: internal error: {type(error).__name__}: {first} (set ZOO_DEBUG=1 for the traceback)", err=True)
        sys.exit(2)


def _one_line(message: str) -> str:
    """An error message as one line (a message quoting someone else's text may hold newlines)."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())
