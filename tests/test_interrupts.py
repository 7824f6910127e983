"""Ctrl-C anywhere: a real SIGINT to `zoo` while it waits for input, compiles, generates or
chats ends with a newline on stdout, "zoo: interrupted" as the only other stderr line after
the progress lines, no traceback, and exit status 130."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpt2_fixtures import TINY, make_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("interrupts-tiny")
    make_checkpoint(folder, seed=6, **TINY)
    return folder


class Zoo:
    """`python -m zoo.cli ARGS` with pipes, read as it runs."""

    def __init__(self, *args: str, stdin: str = "") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "zoo.cli", *args], cwd=REPO, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        if stdin:
            self.process.stdin.write(stdin.encode())
            self.process.stdin.flush()
        self.out, self.err = b"", b""

    def wait_for(self, text: str, stream: str = "stdout", timeout: float = 600) -> None:
        """Reads until `text` shows up on `stream`."""
        pipes = {self.process.stdout: "out", self.process.stderr: "err"}
        deadline = time.monotonic() + timeout
        while text.encode() not in (self.out if stream == "stdout" else self.err):
            assert time.monotonic() < deadline, f"no {text!r} on {stream}: {self.out[-300:]!r} {self.err[-500:]!r}"
            assert self.process.poll() is None, f"zoo ended early: {self.out[-300:]!r} {self.err[-500:]!r}"
            ready, _, _ = select.select(list(pipes), [], [], 1)
            for pipe in ready:
                chunk = os.read(pipe.fileno(), 65536)
                setattr(self, pipes[pipe], getattr(self, pipes[pipe]) + chunk)

    def interrupt(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=120)
        return self.process.returncode, (self.out + out).decode(), (self.err + err).decode()


def assert_interrupted(code: int, out: str, err: str) -> None:
    assert code == 130, (code, out, err)
    assert out.endswith("\n"), repr(out)
    assert "Traceback" not in err, err
    assert err.endswith("zoo: interrupted\n"), repr(err)
    assert "\n\n" not in err and not err.startswith("\n"), repr(err)  # no stray blank line


def test_ctrl_c_while_reading_the_prompts(tmp_path, tiny):
    fifo = tmp_path / "prompts"
    os.mkfifo(fifo)  # nobody writes: zoo waits in open()
    zoo = Zoo("run", str(tiny), "--prompts-file", str(fifo))
    deadline = time.monotonic() + 600
    while Path(f"/proc/{zoo.process.pid}/wchan").read_text() != "wait_for_partner":
        assert time.monotonic() < deadline and zoo.process.poll() is None
        time.sleep(0.05)
    code, out, err = zoo.interrupt()
    assert_interrupted(code, out, err)
    assert out == "\n"


def test_ctrl_c_while_compiling(tiny):
    zoo = Zoo("run", str(tiny), "-p", "Hello", "-n", "5")
    zoo.wait_for("compiling...", "stderr")
    code, out, err = zoo.interrupt()
    assert_interrupted(code, out, err)
    assert out == "\n"  # the prompt is printed only once the model runs


def test_ctrl_c_while_generating(tiny):
    zoo = Zoo("run", str(tiny), "-p", "Hello", "-n", "127", "--ignore-eos", "--temperature", "1", "--top-p", "0.9")
    zoo.wait_for("Hello")
    code, out, err = zoo.interrupt()
    assert_interrupted(code, out, err)
    assert out.startswith("Hello") and out.count("\n") == 1


def test_ctrl_c_in_the_prompt_loop(tiny):
    zoo = Zoo("run", str(tiny), "-n", "4", "--greedy")
    zoo.wait_for("prompt> ")
    assert_interrupted(*zoo.interrupt())


def test_ctrl_c_in_chat_while_waiting_and_while_answering(tiny):
    zoo = Zoo("run", str(tiny), "--chat", "-n", "4", "--greedy")
    zoo.wait_for("You:")
    assert_interrupted(*zoo.interrupt())
    zoo = Zoo("run", str(tiny), "--chat", "-n", "120", "--temperature", "1", "--ignore-eos", stdin="Hello\n")
    zoo.wait_for("Model:")
    assert_interrupted(*zoo.interrupt())


def test_keyboard_interrupt_inside_a_command_in_process(monkeypatch, capfd):
    import zoo.api
    from zoo.cli import main

    def interrupted(ref):
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo.api, "info", interrupted)
    capfd.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["info", "gpt2"])
    out, err = capfd.readouterr()
    assert done.value.code == 130 and out == "\n" and err == "zoo: interrupted\n"
