"""Interactive front ends: the book's prompt loop and a rich streaming chat.

Ctrl-D (end of input) or quit/exit/q leaves; Ctrl-C ends zoo (exit 130), as
everywhere else. A prompt that cannot run (too long for the context) is an
error line on stderr, and the session goes on.
"""

from __future__ import annotations

import sys

from zoo.core.checkpoints.tokenizer import Message
from zoo.core.errors import PromptError
from zoo.core.runtime.generation import TextGenerator
from zoo.core.runtime.sampling import SamplingOptions

_QUIT = {"quit", "exit", "q", "/bye"}


def prompt_loop(generator: TextGenerator, options: SamplingOptions) -> None:
    """Reads prompts until quit/exit/q or end of input; streams each continuation."""
    print("Model ready. Enter a prompt (quit, exit or q to leave).")
    while True:
        try:
            prompt = input("\nprompt> ").strip()
        except EOFError:
            print()
            return
        except UnicodeDecodeError:
            print("zoo: error: that input is not UTF-8 text", file=sys.stderr, flush=True)
            continue
        if prompt.lower() in _QUIT:
            return
        if not prompt:
            continue
        try:
            generator.encode(prompt)
        except PromptError as error:
            print(f"zoo: error: {error}", file=sys.stderr, flush=True)
            continue
        print(prompt, end="", flush=True)
        for _, delta in generator.stream([prompt], options):
            print(delta, end="", flush=True)
        print()


def chat_loop(generator: TextGenerator, options: SamplingOptions) -> None:
    """A rich terminal chat; uses the tokenizer's chat template when it has one, else a
    plain "User:/Assistant:" transcript."""
    from rich.console import Console

    console = Console()
    console.print("[bold]zoo chat[/bold] - type quit to leave.")
    history: list[Message] = []
    template = generator.tokenizer.chat_template
    stops = tuple(options.stop) + (() if template else ("\nUser:", "\nHuman:"))
    chat_options = options.model_copy(update={"stop": stops})
    while True:
        try:
            message = console.input("[bold green]You:[/bold green] ").strip()
        except EOFError:
            console.print()
            return
        except UnicodeDecodeError:
            print("zoo: error: that input is not UTF-8 text", file=sys.stderr, flush=True)
            continue
        if message.lower() in _QUIT:
            return
        if not message:
            continue
        history.append({"role": "user", "content": message})
        prompt = render(generator, history)
        try:
            generator.encode(prompt)
        except PromptError as error:
            history.pop()
            print(f"zoo: error: {error}", file=sys.stderr, flush=True)
            continue
        console.print("[bold blue]Model:[/bold blue] ", end="")
        reply = ""
        for _, delta in generator.stream([prompt], chat_options):
            reply += delta
            console.print(delta, end="", markup=False, highlight=False, emoji=False)
        console.print()
        history.append({"role": "assistant", "content": reply.strip()})


def render(generator: TextGenerator, history: list[Message]) -> str:
    """The prompt for the chat so far: the chat template's, or a plain transcript."""
    if generator.tokenizer.chat_template:
        return generator.tokenizer.render_chat(history)
    lines = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in history]
    return "\n".join(lines) + "\nAssistant:"
