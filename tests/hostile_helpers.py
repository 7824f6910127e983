"""Running `zoo` in-process on hostile input, and watching what it touches.

`run_zoo(argv)` calls `zoo.cli.main` as the `zoo` command does, with stdout
and stderr captured at the file-descriptor level (so library output counts
too), a time limit, and the compile step replaced by a marker: every check
runs, but a graph is never compiled, and `Outcome.compiled` says whether the
input got that far. `OpenWatch` is a Linux inotify watch on a folder: it sees
every file opened there, by any code (Python, Rust, C).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import signal
import struct
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest


class _Compiled(BaseException):
    """Raised where the graph compile would start."""


class _TimedOut(BaseException):
    """Raised by the alarm when a case runs past its time limit."""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    compiled: bool
    seconds: float
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lines = [line for line in self.stderr.splitlines() if line.strip()]


def _no_compile(original):
    def compile_mapped(architecture, config, mapped, device, dtype, before_compile=None, **options):
        def stop() -> None:
            raise _Compiled()

        return original(architecture, config, mapped, device, dtype, stop, **options)

    return compile_mapped


@contextmanager
def _alarm(seconds: float):
    def expire(signum, frame):
        raise _TimedOut()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_zoo(argv: list[str], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *,
            timeout: float = 60, stdin: str = "") -> Outcome:
    """`zoo ARGV` in this process: exit status, captured output, and whether a compile would have started."""
    import zoo.core.loader as loader
    from zoo.cli import main

    monkeypatch.setattr(loader, "compile_mapped", _no_compile(loader.compile_mapped))
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capfd.readouterr()
    compiled, code = False, 0
    started = time.perf_counter()
    try:
        with _alarm(timeout):
            main(list(argv))
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except _Compiled:
        compiled = True
    except _TimedOut:
        out, err = capfd.readouterr()
        pytest.fail(f"zoo {' '.join(argv)[:200]} ran past {timeout}s; stderr: {err[-500:]}")
    seconds = time.perf_counter() - started
    out, err = capfd.readouterr()
    return Outcome(code, out, err, compiled, seconds)


def assert_user_error(outcome: Outcome, *fragments: str, max_seconds: float = 30) -> str:
    """One `zoo: error:` line and nothing else on stderr, exit 1, nothing on stdout, no compile, fast."""
    assert not outcome.compiled, f"reached the compile: {outcome.stderr}"
    assert outcome.code == 1, (outcome.code, outcome.stderr)
    assert outcome.stdout == "", outcome.stdout
    assert "Traceback" not in outcome.stderr and "internal error" not in outcome.stderr, outcome.stderr
    assert len(outcome.lines) == 1 and outcome.lines[0].startswith("zoo: error: "), outcome.stderr
    for fragment in fragments:
        assert fragment in outcome.lines[0], outcome.lines[0]
    assert outcome.seconds < max_seconds, outcome.seconds
    return outcome.lines[0]


class OpenWatch:
    """Every file opened in `folder` (not its subfolders) while watched, by anything in
    this process or its children: Linux inotify, read without blocking."""

    _IN_OPEN, _IN_ISDIR, _IN_NONBLOCK = 0x20, 0x40000000, 0x800

    def __init__(self, folder: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(self._IN_NONBLOCK)
        assert self.fd >= 0, "inotify is not available"
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(folder), self._IN_OPEN)
        assert wd >= 0, f"cannot watch {folder}"

    def opened(self) -> list[str]:
        """Names opened since the last call."""
        names: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return names
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode(errors="replace")
                if not mask & self._IN_ISDIR:
                    names.append(name)
                offset += 16 + length

    def close(self) -> None:
        os.close(self.fd)


def tree_digest(folder: Path) -> dict[str, str]:
    """Each file under `folder` -> size, mtime and SHA-256 (to show nothing changed it)."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest[str(path.relative_to(folder))] = f"{stat.st_size}:{stat.st_mtime_ns}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return digest
