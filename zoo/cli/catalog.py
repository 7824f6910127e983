"""`zoo list` and `zoo info`: what is registered and what a reference resolves to (no compile)."""

from __future__ import annotations

import json

import click

from .common import gguf_file_flag, json_flag, with_gguf_file


@click.command("list")
@json_flag
def list_command(as_json: bool) -> None:
    """Show every registered model alias and architecture."""
    from zoo.api import models

    rows = models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = ("NAME", "ARCHITECTURE", "SOURCE", "PLUGIN", "PARAMS")
    table = [(r["name"], r["architecture"], r["source"], r["plugin"], human_count(r["parameters"])) for r in rows]
    click.echo(format_columns(headers, table))


@click.command("info")
@click.argument("model")
@json_flag
@gguf_file_flag
def info_command(model: str, as_json: bool, gguf_file: str | None) -> None:
    """Show MODEL's resolved config and where its weights come from."""
    from zoo.api import info

    details = info(with_gguf_file(model, gguf_file))
    if as_json:
        click.echo(json.dumps(details, indent=2, default=str))
        return
    for key in ("model", "architecture", "plugin", "weights", "parameters"):
        value = details.get(key)
        click.echo(f"{key + ':':14}{value if value is not None else '-'}")
    click.echo("config:")
    for key, value in details["config"].items():
        click.echo(f"  {key}: {value}")


def human_count(n: int | None) -> str:
    if not n:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def format_columns(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)
