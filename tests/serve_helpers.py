"""Starting and stopping `zoo serve` on loopback for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT or http://[::1]:PORT
    model: str  # the served model name
    log: Path
    pid: int  # the API server process (MAX's model worker is its child)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextmanager
def zoo_server(
    model: str,
    log: Path,
    *args: str,
    host: str = "127.0.0.1",
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    ready_timeout: float = 1800,
) -> Iterator[Server]:
    """Runs `zoo serve MODEL` until the block ends; waits until it answers (a cold start compiles graphs).

    With `cwd`, the server starts in that directory, and this checkout's `zoo` is found only
    through the starting command's own `sys.path` (no PYTHONPATH): MAX's worker processes must
    still import the same code (`zoo serve` arranges that).
    """
    import httpx

    port = free_port(host)
    command = [sys.executable, "-m", "zoo.cli"]
    environment = {**os.environ, **(env or {})}
    if cwd is not None:
        start = f"import sys; sys.path.insert(0, {str(REPO)!r}); from zoo.cli import main; main()"
        command = [sys.executable, "-c", start]
        environment.pop("PYTHONPATH", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "serve", model, "--host", host, "--port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=cwd or REPO, env=environment,
        )
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"zoo serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"zoo serve not ready after {ready_timeout}s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield Server(url, model, log, process.pid)
    finally:
        _stop(process)


def server_rss(pid: int) -> int:
    """Resident bytes of the server process and all its children."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group (API server and model worker), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
