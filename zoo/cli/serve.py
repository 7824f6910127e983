"""`zoo serve`: MAX's OpenAI-compatible server (`max serve`) running the zoo model."""

from __future__ import annotations

import click

from zoo.core.errors import OptionsError

from .common import registry


@click.command("serve", context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (IPv4 or IPv6).")
@click.option("--port", type=int, default=8000, show_default=True, help="TCP port.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True, help="Where to run.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None, help="Weights dtype [default: float32].")
@click.option("--max-length", type=int, default=None, help="Longest prompt + completion, in tokens [default: the model's context].")
@click.option("--max-batch-size", type=int, default=None,
              help="Requests decoded together (cache slots) [default: 8].")
@click.option("--max-queue", type=int, default=None,
              help="Requests waiting for a slot before new ones get HTTP 429 [default: 8 per slot].")
@click.option("--dry-run", is_flag=True, help="Print the equivalent `max serve` command and exit.")
@click.argument("max_args", nargs=-1, type=click.UNPROCESSED)
def serve_command(model: str, host: str, port: int, device: str, dtype: str | None, max_length: int | None,
                  max_batch_size: int | None, max_queue: int | None, dry_run: bool, max_args: tuple[str, ...]) -> None:
    """Serve MODEL over an OpenAI-compatible HTTP API with MAX's own server (`max serve`).

    Arguments after `--` go to `max serve` unchanged (e.g. `-- --enable-in-flight-batching`),
    except the address and model options, which `zoo serve` sets itself.
    """
    from zoo.serving.command import (
        check_memory, check_port_free, check_serving_installed, exec_server, is_loopback, plan_serve,
    )

    if max_length is not None and max_length < 1:
        raise OptionsError("--max-length must be at least 1")
    plan = plan_serve(model, registry(), host=host, port=port, device=device, dtype=dtype, max_length=max_length,
                      max_batch_size=max_batch_size, max_queue=max_queue, extra=max_args)
    if not is_loopback(host, port):
        click.echo(f"zoo: warning: listening on {host}, beyond this machine; the server has no authentication, "
                   "so anyone who can reach this port can use the model", err=True)
    if dry_run:
        click.echo(plan.max_command())
        return
    check_serving_installed()
    check_port_free(host, port)
    if device != "gpu":
        check_memory(plan)
    click.echo(f"zoo: serving {model} ({plan.architecture}) at {plan.endpoint} "
               f"(OpenAI-compatible: /v1/completions, /v1/chat/completions; model name {model!r}); Ctrl-C stops", err=True)
    click.echo(f"zoo: KV cache pool: {plan.describe_cache()}; up to {plan.queue} more requests wait for a slot, "
               "the rest get HTTP 429", err=True)
    click.echo(f"zoo: same as: {plan.max_command()}", err=True)
    exec_server(plan)
