"""The `zoo` command line: a thin layer over the library.

Only click, pydantic and pluggy load for `zoo --help` and `zoo list`; MAX,
torch and transformers are imported when a model is actually loaded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from zoo.core.errors import ZooError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _registry() -> Any:
    from zoo.plugins.manager import get_registry

    return get_registry()


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="zoo", prog_name="zoo")
def cli() -> None:
    """zoo: run LLM architectures on Modular's MAX, extended by plugins."""


# --------------------------------------------------------------------------- list


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_command(as_json: bool) -> None:
    """Show every registered model alias and architecture."""
    registry = _registry()
    rows = model_rows(registry)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = ("NAME", "ARCHITECTURE", "SOURCE", "PLUGIN", "PARAMS")
    table = [
        (r["name"], r["architecture"], r["source"], r["plugin"], _human_count(r["parameters"]))
        for r in rows
    ]
    click.echo(_format_columns(headers, table))


def model_rows(registry: Any) -> list[dict[str, Any]]:
    """One row per alias, then one per architecture (usable with any matching checkpoint)."""
    rows: list[dict[str, Any]] = []
    for alias in sorted(registry.aliases.values(), key=lambda a: (a.architecture, a.name)):
        rows.append(
            {
                "name": alias.name,
                "kind": "model",
                "architecture": alias.architecture,
                "source": f"hf://{alias.repo_id}" + (f"/{alias.weights_file}" if alias.weights_file else ""),
                "plugin": alias.plugin,
                "parameters": alias.parameters,
                "description": alias.description,
            }
        )
    for arch in sorted(registry.architectures.values(), key=lambda a: a.name):
        rows.append(
            {
                "name": arch.name,
                "kind": "architecture",
                "architecture": arch.name,
                "source": "any HF checkpoint with this architecture",
                "plugin": arch.plugin,
                "parameters": None,
                "description": arch.description,
            }
        )
    return rows


def _human_count(n: int | None) -> str:
    if not n:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _format_columns(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- info


@cli.command("info")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(model: str, as_json: bool) -> None:
    """Show MODEL's resolved config and where its weights come from."""
    from zoo.core.info import model_info

    info = model_info(model, _registry())
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    for key in ("model", "architecture", "plugin", "weights", "parameters"):
        click.echo(f"{key + ':':14}{info.get(key) if info.get(key) is not None else '-'}")
    click.echo("config:")
    for key, value in info["config"].items():
        click.echo(f"  {key}: {value}")


# --------------------------------------------------------------------------- run

_SAMPLING_HELP = {
    "max_new_tokens": "Tokens to generate at most.",
    "temperature": "Sampling temperature; 0 means greedy.",
    "top_k": "Sample from the k most likely tokens only.",
    "top_p": "Nucleus sampling: smallest token set with this total probability.",
    "min_p": "Drop tokens below min_p times the top token's probability.",
    "repetition_penalty": "Penalise tokens already in the prompt or output (>1 discourages).",
}


def sampling_options(func: Any) -> Any:
    """The sampling flags shared by `run` (names as in `max generate` and llama.cpp)."""
    decorators = [
        click.option("--max-new-tokens", "-n", type=int, default=None, help=_SAMPLING_HELP["max_new_tokens"] + " [default: 50]"),
        click.option("--temperature", "--temp", type=float, default=None, help=_SAMPLING_HELP["temperature"] + " [default: 0.8]"),
        click.option("--top-k", type=int, default=None, help=_SAMPLING_HELP["top_k"]),
        click.option("--top-p", type=float, default=1.0, show_default=True, help=_SAMPLING_HELP["top_p"]),
        click.option("--min-p", type=float, default=0.0, show_default=True, help=_SAMPLING_HELP["min_p"]),
        click.option("--repetition-penalty", type=float, default=1.0, show_default=True, help=_SAMPLING_HELP["repetition_penalty"]),
        click.option("--greedy", is_flag=True, help="Always take the most likely token."),
        click.option("--seed", type=int, default=None, help="Random seed: same seed and options, same text."),
        click.option("--stop", multiple=True, help="Stop when this string appears (repeatable)."),
        click.option("--ignore-eos", is_flag=True, help="Keep generating past the end-of-sequence token."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def model_options(func: Any) -> Any:
    decorators = [
        click.option("--weights", type=click.Path(path_type=Path), default=None, help="Weights file to use instead of the checkpoint's own."),
        click.option("--tokenizer", type=click.Path(path_type=Path), default=None, help="Tokenizer file or directory (tokenizer.json, sentencepiece .model; llama2.c tokenizer.bin with llama2.c checkpoints)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True, help="Where to run."),
        click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None, help="Weights and activations dtype [default: float32 on CPU, bfloat16 on GPU]."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@cli.command("run")
@click.argument("model")
@click.option("--prompt", "-p", "prompts", multiple=True, help="Prompt to complete (repeatable: one batch). Without it: interactive.")
@click.option("--prompts-file", type=click.File("r"), default=None, help="File with one prompt per line, run as one batch.")
@click.option("--chat", is_flag=True, help="Rich streaming chat session.")
@click.option("--benchmark", is_flag=True, help="Time compile, prefill and decode for this model and exit.")
@sampling_options
@model_options
def run_command(model: str, prompts: tuple[str, ...], prompts_file: Any, chat: bool, benchmark: bool, **kwargs: Any) -> None:
    """Generate text with MODEL (an alias, a HF repo id, a directory or a checkpoint file).

    With --prompt, stdout carries only the prompt and its continuation; progress
    goes to stderr. Without --prompt: an interactive prompt loop.
    """
    from zoo.core.sampling import SamplingOptions

    load_args = {k: kwargs.pop(k) for k in ("weights", "tokenizer", "device", "dtype")}
    interactive = not prompts and prompts_file is None and not benchmark
    defaults = {"max_new_tokens": 50, "temperature": 0.8}
    options = SamplingOptions(**{k: (defaults[k] if v is None and k in defaults else v) for k, v in kwargs.items()}).check()
    all_prompts = list(prompts) + ([line.rstrip("\n") for line in prompts_file if line.strip()] if prompts_file else [])

    if benchmark:
        from zoo.bench import format_table, run_bench

        result = run_bench(model, random_weights=False, contexts=[16, 256], new_tokens=max(2, options.max_new_tokens),
                           device=load_args["device"], dtype=load_args["dtype"], with_transformers=False)
        click.echo(format_table(result))
        return

    from zoo.core.generation import TextGenerator
    from zoo.core.loader import load_model

    loaded = load_model(model, _registry(), **load_args)
    generator = TextGenerator(loaded)
    if chat:
        from zoo.chat import chat_loop

        chat_loop(generator, options)
    elif interactive:
        from zoo.chat import prompt_loop

        prompt_loop(generator, options)
    elif len(all_prompts) == 1:
        stream_one(generator, all_prompts[0], options)
    else:
        run_batch(generator, all_prompts, options)


def stream_one(generator: Any, prompt: str, options: Any) -> None:
    """Prints the prompt, then the continuation as it is generated."""
    out = sys.stdout
    out.write(prompt)
    out.flush()
    for _, delta in generator.stream([prompt], options):
        out.write(delta)
        out.flush()
    out.write("\n")
    out.flush()


def run_batch(generator: Any, prompts: list[str], options: Any) -> None:
    """Generates all prompts as one batch; prints each prompt + continuation, blank-line separated."""
    completions = generator.generate(prompts, options)
    click.echo("\n\n".join(c.prompt + c.text for c in completions))


# --------------------------------------------------------------------------- bench


@cli.command("bench")
@click.argument("model")
@click.option("--random-weights", is_flag=True, help="Use the model's real shapes with random weights (works offline).")
@click.option("--contexts", default="16,256,768", show_default=True, help="Comma-separated prompt lengths.")
@click.option("--new-tokens", type=int, default=64, show_default=True, help="Tokens to decode at each context.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--no-transformers", is_flag=True, help="Skip the HF transformers baseline.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None)
def bench_command(model: str, random_weights: bool, contexts: str, new_tokens: int, as_json: bool,
                  no_transformers: bool, device: str, dtype: str | None) -> None:
    """Benchmark compile, prefill and decode speed against HF transformers."""
    from zoo.bench import format_table, run_bench

    try:
        lengths = [int(c) for c in contexts.split(",") if c.strip()]
    except ValueError:
        raise ZooError(f"--contexts must be comma-separated integers, got {contexts!r}") from None
    if not lengths or min(lengths) < 1 or new_tokens < 1:
        raise ZooError("--contexts and --new-tokens must be positive")
    result = run_bench(model, random_weights=random_weights, contexts=lengths, new_tokens=new_tokens,
                       device=device, dtype=dtype, with_transformers=not no_transformers, registry=_registry())
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))


@cli.command("bench-moe")
@click.option("--context", type=int, default=16, show_default=True, help="Prompt length.")
@click.option("--new-tokens", type=int, default=32, show_default=True, help="Tokens to decode.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_moe_command(context: int, new_tokens: int, as_json: bool) -> None:
    """What mixture-of-experts routing costs: a Mixtral-shaped model against a dense Llama of the same active size."""
    from zoo.architectures.mixtral.bench import compare_decode

    if context < 1 or new_tokens < 2:
        raise ZooError("--context must be >= 1 and --new-tokens >= 2")
    result = compare_decode(context=context, new_tokens=new_tokens)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for label in ("llama_active", "mixtral_grouped", "mixtral_dense"):
        ms = result[f"{label}_decode_ms_per_token"]
        ratio = "" if label == "llama_active" else f"  ({result[f'{label}_over_llama_active']:.2f}x the dense model)"
        click.echo(f"{label:16} {ms:7.2f} ms/token{ratio}")


# --------------------------------------------------------------------------- serve


@cli.command("serve", context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="TCP port.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True, help="Where to run.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None, help="Weights dtype [default: float32].")
@click.option("--max-length", type=int, default=None, help="Longest prompt + completion, in tokens [default: the model's context].")
@click.option("--dry-run", is_flag=True, help="Print the equivalent `max serve` command and exit.")
@click.argument("max_args", nargs=-1, type=click.UNPROCESSED)
def serve_command(model: str, host: str, port: int, device: str, dtype: str | None, max_length: int | None,
                  dry_run: bool, max_args: tuple[str, ...]) -> None:
    """Serve MODEL over an OpenAI-compatible HTTP API with MAX's own server (`max serve`).

    Arguments after `--` go to `max serve` unchanged (e.g. `-- --max-batch-size 4`).
    """
    from zoo.serving.command import check_port_free, check_serving_installed, exec_server, plan_serve

    if max_length is not None and max_length < 1:
        raise ZooError("--max-length must be at least 1")
    plan = plan_serve(model, _registry(), host=host, port=port, device=device, dtype=dtype,
                      max_length=max_length, extra=max_args)
    if dry_run:
        click.echo(plan.max_command())
        return
    check_serving_installed()
    check_port_free(host, port)
    click.echo(f"zoo: serving {model} ({plan.architecture}) at {plan.endpoint} "
               f"(OpenAI-compatible: /v1/completions, /v1/chat/completions; model name {model!r}); Ctrl-C stops", err=True)
    click.echo(f"zoo: same as: {plan.max_command()}", err=True)
    exec_server(plan)


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Runs the CLI; user errors become one line on stderr and exit status 1."""
    try:
        cli.main(args=argv, prog_name="zoo", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except ZooError as error:
        click.echo(f"zoo: error: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("\nzoo: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as error:
        if os.environ.get("ZOO_DEBUG"):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        click.echo(f"zoo: internal error: {type(error).__name__}: {first} (set ZOO_DEBUG=1 for the traceback)", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
