"""`zoo serve`: checks the model, then hands over to `max serve` with zoo's architectures."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.core.checkpoints.sources import download
from zoo.core.errors import ZooError
from zoo.core.registry import Registry
from zoo.core.resolve import resolve_model

ARCHITECTURES_MODULE = "zoo.serving.max_architectures"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class ServePlan:
    """What `zoo serve` will run."""

    model_dir: Path
    served_name: str
    architecture: str
    host: str
    port: int
    max_serve_args: tuple[str, ...]

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def max_command(self) -> str:
        """The equivalent plain `max serve` command line."""
        return " ".join(["max", "serve", *(_quote(a) for a in self.max_serve_args)])


def plan_serve(
    ref: str,
    registry: Registry,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "auto",
    dtype: str | None = None,
    max_length: int | None = None,
    extra: Sequence[str] = (),
) -> ServePlan:
    """Resolves `ref` to a local HF-format checkpoint and builds the `max serve` arguments."""
    resolved = resolve_model(ref, registry)
    source = resolved.source
    if resolved.single_file:
        raise ZooError(
            f"{ref}: `zoo serve` needs a Hugging Face checkpoint directory (config.json, safetensors, "
            "tokenizer); single-file formats such as llama2.c .bin run with `zoo run` only"
        )
    folder = source.path if source.kind == "dir" else download(source.repo_id or ref)
    assert folder is not None
    architecture = resolved.architecture.name
    if not any((folder / name).exists() for name in _TOKENIZER_FILES):
        raise ZooError(
            f"{folder} has no Hugging Face tokenizer files ({', '.join(_TOKENIZER_FILES)}); "
            "MAX's server reads the tokenizer from the checkpoint directory"
        )
    if not 0 < port < 65536:
        raise ZooError(f"--port {port} is not a TCP port (1-65535)")
    args = [
        "--model-path", str(folder.resolve()),
        "--served-model-name", ref,
        "--custom-architectures", ARCHITECTURES_MODULE,
        "--host", host,
        "--port", str(port),
    ]
    if device != "auto":
        args += ["--devices", device]
    if dtype is not None:
        args += ["--quantization-encoding", dtype]
    if max_length is not None:
        args += ["--max-length", str(max_length)]
    return ServePlan(folder, ref, architecture, host, port, (*args, *extra))


def check_serving_installed() -> None:
    missing = [m for m in ("fastapi", "uvicorn", "sse_starlette") if importlib.util.find_spec(m) is None]
    if missing:
        raise ZooError(
            f"serving needs MAX's server packages ({', '.join(missing)} missing): pip install 'zoo[serve]'"
        )


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ZooError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def exec_server(plan: ServePlan) -> None:
    """Replaces this process with the MAX server (so signals reach it directly)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "zoo.serving.server", *plan.max_serve_args])


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
