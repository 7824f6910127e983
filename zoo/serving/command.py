"""`zoo serve`: checks the model, then hands over to `max serve` with zoo's architectures."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import site
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import zoo
from zoo.core.checkpoints.sources import download
from zoo.core.errors import OptionsError, ZooError
from zoo.core.registry import Registry
from zoo.core.resolve import read_checkpoint, resolve_model, single_file_path

from .single_file import serving_folder
from .sizing import DEFAULT_MAX_BATCH_SIZE, describe_bytes, pool_bytes

ARCHITECTURES_MODULE = "zoo.serving.max_architectures"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# `max serve` options that `zoo serve` sets itself: after `--` they would contradict the checked
# address and the printed endpoint, or the model `zoo serve` resolved.
_OWN_OPTIONS = ("--host", "--port", "--model-path", "--custom-architectures", "--served-model-name")
# Requests waiting for a batch seat, per seat, before new ones are turned away with HTTP 429.
DEFAULT_QUEUE_PER_SLOT = 8


@dataclass(frozen=True)
class ServePlan:
    """What `zoo serve` will run."""

    model_dir: Path
    served_name: str
    architecture: str
    host: str
    port: int
    max_serve_args: tuple[str, ...]
    slots: int = DEFAULT_MAX_BATCH_SIZE
    max_length: int = 0
    cache_bytes: int = 0  # the cache pool the model worker allocates
    queue: int = 0  # requests that may wait for a slot; more get HTTP 429
    weights_bytes: int = 0  # the size of the weight files

    @property
    def max_requests(self) -> int:
        """Requests the server holds at once (decoding or waiting)."""
        return self.slots + self.queue

    def describe_cache(self) -> str:
        return f"{self.slots} slots x {self.max_length} tokens = {describe_bytes(self.cache_bytes)}"

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

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
    max_batch_size: int | None = None,
    max_queue: int | None = None,
    extra: Sequence[str] = (),
) -> ServePlan:
    """Resolves `ref` to a local HF-format checkpoint (for a GGUF file, the folder
    `single_file.serving_folder` writes) and builds the `max serve` arguments.

    Requests beyond the batch wait (at most `max_queue`, by default
    `DEFAULT_QUEUE_PER_SLOT` per slot); beyond that they get HTTP 429 (`admission`).
    """
    check_passthrough(extra)
    if max_batch_size is not None and max_batch_size < 1:
        raise OptionsError("--max-batch-size must be at least 1")
    if max_queue is not None and max_queue < 1:
        raise OptionsError("--max-queue must be at least 1")
    if max_batch_size is not None and _given(extra, "--max-batch-size"):
        raise OptionsError("--max-batch-size is given twice (before and after --)")
    resolved = resolve_model(ref, registry)
    source = resolved.source
    weight_args: list[str] = []
    if resolved.single_file:
        if _given(extra, "--weight-path"):
            raise OptionsError(f"--weight-path after -- is not allowed: {ref} is the weights file zoo serves")
        weights_file = single_file_path(resolved).resolve()
        folder = serving_folder(resolved, weights_file, dtype, lambda: read_checkpoint(resolved, registry).tokenizer)
        weight_args = ["--weight-path", str(weights_file), "--quantization-encoding", dtype or "float32"]
        weights_bytes = weights_file.stat().st_size
    else:
        folder = source.path if source.kind == "dir" else download(source.repo_id or ref)
        assert folder is not None
        weights_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
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
    if weight_args:
        args += weight_args
    elif dtype is not None:
        args += ["--quantization-encoding", dtype]
    context = resolved.config.context_length
    if max_length is not None and max_length > context:
        raise OptionsError(f"--max-length {max_length} exceeds the model's context length {context}")
    if max_length is not None:
        args += ["--max-length", str(max_length)]
    if not _given(extra, "--max-batch-size"):
        args += ["--max-batch-size", str(max_batch_size or DEFAULT_MAX_BATCH_SIZE)]
    try:
        batch = int(_value(extra, "--max-batch-size") or max_batch_size or DEFAULT_MAX_BATCH_SIZE)
    except ValueError:
        raise OptionsError(f"--max-batch-size {_value(extra, '--max-batch-size')!r} is not a number") from None
    queue = max_queue or DEFAULT_QUEUE_PER_SLOT * batch
    length = max_length or context
    dtype_bytes = 2 if dtype == "bfloat16" or (dtype is None and device == "gpu") else 4
    cache = pool_bytes(resolved.config, dtype_bytes, batch, length)
    return ServePlan(folder, ref, architecture, host, port, (*args, *extra), batch, length, cache, queue, weights_bytes)


def check_memory(plan: ServePlan) -> None:
    """A one-line error when the weights and the cache pool would not fit in this machine's
    available memory (MAX would fail at start with a traceback)."""
    import psutil

    weights = plan.weights_bytes
    available = psutil.virtual_memory().available
    if weights + plan.cache_bytes > 0.9 * available:
        raise OptionsError(
            f"the KV cache pool ({plan.describe_cache()}) and the weights ({describe_bytes(weights)}) need more "
            f"than this machine's available memory ({describe_bytes(available)}); "
            "lower --max-batch-size or --max-length"
        )


def check_passthrough(extra: Sequence[str]) -> None:
    """Refuses `max serve` options after `--` that `zoo serve` sets (and checks) itself."""
    for option in _OWN_OPTIONS:
        if _given(extra, option):
            name = option.lstrip("-")
            hint = f"use zoo serve's own {option}" if option in ("--host", "--port") else "zoo serve sets it"
            raise OptionsError(f"{option} after -- is not allowed ({hint}); the {name} zoo serve checks is the one it serves on")


def _given(extra: Sequence[str], option: str) -> bool:
    return any(arg == option or arg.startswith(option + "=") for arg in extra)


def _value(extra: Sequence[str], option: str) -> str | None:
    for index, arg in enumerate(extra):
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
        if arg == option and index + 1 < len(extra):
            return extra[index + 1]
    return None


def check_serving_installed() -> None:
    missing = [m for m in ("fastapi", "uvicorn", "sse_starlette") if importlib.util.find_spec(m) is None]
    if missing:
        raise ZooError(
            f"serving needs MAX's server packages ({', '.join(missing)} missing): pip install 'zoo[serve]'"
        )


def listen_addresses(host: str, port: int) -> list[tuple[int, tuple]]:
    """(family, socket address) for each address `host` names (IPv4 or IPv6)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ZooError(f"cannot listen on {host}: {error.strerror or error}") from None
    return [(family, address) for family, _, _, _, address in infos]


def check_port_free(host: str, port: int) -> None:
    family, address = listen_addresses(host, port)[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ZooError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def is_loopback(host: str, port: int = 0) -> bool:
    """Whether every address `host` names is a loopback address (this machine only)."""
    addresses = [address[0] for _, address in listen_addresses(host, port)]
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def server_environment(plan: ServePlan) -> dict[str, str]:
    """The environment for the server and the workers MAX spawns: the request cap
    (`admission`), and the `zoo` package this command runs from first on PYTHONPATH unless it
    is installed in site-packages, so that a process started anywhere imports the same zoo
    (not another copy, or none)."""
    env = dict(os.environ)
    env["ZOO_SERVE_MAX_REQUESTS"] = str(plan.max_requests)
    env["ZOO_SERVE_MAX_REQUESTS_DETAIL"] = f" ({plan.slots} decoding, {plan.queue} waiting)"
    root = str(Path(zoo.__file__).resolve().parents[1])
    installed = {str(Path(p).resolve()) for p in (*site.getsitepackages(), site.getusersitepackages())}
    if root not in installed:
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def exec_server(plan: ServePlan) -> None:
    """Replaces this process with the MAX server (so signals reach it directly)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "zoo.serving.server", *plan.max_serve_args], server_environment(plan))


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
