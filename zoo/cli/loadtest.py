"""`zoo loadtest`: concurrent streaming completions against a server on this machine."""

from __future__ import annotations

import json

import click

from zoo.core.errors import OptionsError


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise OptionsError(f"--concurrency {text!r}: give numbers, e.g. 1,4,8") from None
    if not levels:
        raise OptionsError("--concurrency needs at least one number")
    return levels


@click.command("loadtest")
@click.argument("url", default="http://127.0.0.1:8000")
@click.option("--model", default=None, help="Served model name [default: the first the server lists].")
@click.option("--concurrency", "-c", default="1,4,8", show_default=True, help="Concurrent clients; a comma list runs each in turn.")
@click.option("--requests", "-n", "requests", type=int, default=None, help="Requests per level [default: 2 x concurrency, at least 8].")
@click.option("--max-tokens", type=int, default=64, show_default=True, help="New tokens per request.")
@click.option("--prompt", "-p", multiple=True, help="Prompt (repeatable) [default: eight built-in prompts].")
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--stop-at-eos", is_flag=True, help="Let requests end at EOS (default: every request makes --max-tokens).")
@click.option("--disconnect-fraction", type=float, default=0.0, show_default=True, help="Share of clients that hang up mid-stream.")
@click.option("--invalid-fraction", type=float, default=0.0, show_default=True,
              help="Share of requests with invalid parameters (each must get a 4xx).")
@click.option("--vocab-size", type=int, default=None, help="The model's vocabulary (for out-of-range token ids).")
@click.option("--verify", is_flag=True, help="First ask each prompt alone; every answer under load must equal it.")
@click.option("--time-limit", type=float, default=600.0, show_default=True, help="Seconds each level may take at most.")
@click.option("--json", "as_json", is_flag=True, help="One JSON report per level.")
def loadtest_command(url: str, model: str | None, concurrency: str, requests: int | None, max_tokens: int,
                     prompt: tuple[str, ...], temperature: float, stop_at_eos: bool, disconnect_fraction: float,
                     invalid_fraction: float, vocab_size: int | None, verify: bool, time_limit: float, as_json: bool) -> None:
    """Load-test the OpenAI-compatible server at URL (loopback only): requests/s, tokens/s,
    time to first token and errors for each concurrency. Exit status 1 if a check failed."""
    import asyncio

    from zoo.serving.loadtest import DEFAULT_PROMPTS, check_loopback, expected_texts_async, run_load_async, served_model

    for name, value in (("--disconnect-fraction", disconnect_fraction), ("--invalid-fraction", invalid_fraction)):
        if not 0 <= value <= 1:
            raise OptionsError(f"{name} must be between 0 and 1")
    if max_tokens < 1:
        raise OptionsError("--max-tokens must be at least 1")
    url = check_loopback(url)
    model = model or served_model(url)
    prompts = list(prompt) or list(DEFAULT_PROMPTS)
    expected = None
    if verify:
        if temperature != 0:
            raise OptionsError("--verify compares greedy texts: use --temperature 0")
        expected = asyncio.run(expected_texts_async(url, model, prompts, max_tokens, not stop_at_eos))
    failed = False
    for level in _levels(concurrency):
        report, _ = asyncio.run(run_load_async(
            url, model, concurrency=level, requests=requests or max(2 * level, 8), max_tokens=max_tokens,
            prompts=prompts, temperature=temperature, ignore_eos=not stop_at_eos,
            disconnect_fraction=disconnect_fraction, invalid_fraction=invalid_fraction, vocab_size=vocab_size,
            expected=expected, time_limit=time_limit,
        ))
        failed |= bool(report.problems)
        click.echo(json.dumps(report.as_dict()) if as_json else "\n".join(report.lines()))
    if failed:
        raise SystemExit(1)
