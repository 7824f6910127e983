"""Interactive front ends: the book's prompt loop and a rich streaming chat."""

from __future__ import annotations

from typing import Any

from zoo.core.generation import TextGenerator
from zoo.core.sampling import SamplingOptions

_QUIT = {"quit", "exit", "q", "/bye"}


def prompt_loop(generator: TextGenerator, options: SamplingOptions) -> None:
    """Reads prompts until quit/exit/q or Ctrl-D/Ctrl-C; streams each continuation."""
    print("Model ready. Enter a prompt (quit, exit or q to leave).")
    while True:
        try:
            prompt = input("\nprompt> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if prompt.lower() in _QUIT:
            return
        if not prompt:
            continue
        print(prompt, end="", flush=True)
        try:
            for _, delta in generator.stream([prompt], options):
                print(delta, end="", flush=True)
        except KeyboardInterrupt:
            pass
        print()


def chat_loop(generator: TextGenerator, options: SamplingOptions) -> None:
    """A rich terminal chat; uses the tokenizer's chat template when it has one."""
    from rich.console import Console

    console = Console()
    console.print("[bold]zoo chat[/bold] - type quit to leave.")
    history: list[dict[str, str]] = []
    template = getattr(generator.tokenizer, "chat_template", None)
    stops = tuple(options.stop) + (() if template else ("\nUser:", "\nHuman:"))
    chat_options = options.model_copy(update={"stop": stops})
    while True:
        try:
            message = console.input("[bold green]You:[/bold green] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if message.lower() in _QUIT:
            return
        if not message:
            continue
        history.append({"role": "user", "content": message})
        prompt = _render(generator, history, template)
        console.print("[bold blue]Model:[/bold blue] ", end="")
        reply = ""
        try:
            for _, delta in generator.stream([prompt], chat_options):
                reply += delta
                console.print(delta, end="", markup=False, highlight=False)
        except KeyboardInterrupt:
            pass
        console.print()
        history.append({"role": "assistant", "content": reply.strip()})


def _render(generator: TextGenerator, history: list[dict[str, str]], template: Any) -> str:
    if template:
        return generator.tokenizer.hf.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    lines = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in history]
    return "\n".join(lines) + "\nAssistant:"
