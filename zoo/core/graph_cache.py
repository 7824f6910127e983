"""Compiled graphs kept on disk (MAX's MEF files), so that a warm start skips tracing and compiling.

MAX caches its own compilations, but reaching that cache still means tracing the
model in Python and handing MAX the whole graph to hash: about 4 s for a small
model's two graphs here. A MEF file read back and bound to the weights takes
about 0.05 s. Each graph is stored under a key made of everything that shapes
it: the caller's parts (graph role, architecture, config, dtype, input types,
weight names, shapes and dtypes, kernel packages), the MAX version, the CPU, and
the source of zoo and of any plugin package whose modules the model is built
from. Host (CPU) graphs only.

`ZOO_GRAPH_CACHE` names the folder (default `~/.cache/zoo/graphs`); `0` turns
the cache off. The folder is pruned to its `LIMIT_BYTES`, oldest first.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from max.driver import Buffer
    from max.engine import InferenceSession, Model
    from max.experimental.compilation import CompiledCallable
    from max.experimental.nn import Module
    from max.graph import Graph, TensorType

SWITCH = "ZOO_GRAPH_CACHE"
LIMIT_BYTES = 4 << 30
_SUFFIXES = (".py", ".mojo")


def zoo_cache_home() -> Path:
    """zoo's folder under the user's cache (`$XDG_CACHE_HOME/zoo`, else `~/.cache/zoo`)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo"


def cache_dir() -> Path | None:
    """Where compiled graphs are kept, or None when `ZOO_GRAPH_CACHE=0` turns the cache off."""
    setting = os.environ.get(SWITCH, "")
    if setting.lower() in ("0", "off", "false", "no"):
        return None
    return Path(setting) if setting else zoo_cache_home() / "graphs"


@cache
def session() -> InferenceSession:
    """The one session that compiles host graphs and binds cached ones to their weights."""
    from max.driver import CPU
    from max.engine import InferenceSession

    return InferenceSession(devices=[CPU()])


def compile_module(
    module: Module,
    input_types: list[TensorType],
    weights: Mapping[str, Any],
    extensions: list[Path],
    parts: Iterable[object],
) -> CompiledCallable | CachedGraph:
    """`module.compile(...)` on the host, read from the cache when stored there (`parts` say
    what else shapes the graph: its role, the architecture, the config), else compiled and stored."""
    modules = {type(m).__module__ for _, m in module.descendants} | {type(module).__module__}
    signature = sorted((name, tuple(int(d) for d in w.shape), str(w.dtype)) for name, w in weights.items())
    key = graph_key((*parts, [str(t) for t in input_types], signature, [p.name for p in extensions]), modules)
    cached = load_cached(key, weights)
    if cached is not None:
        return CachedGraph(cached, weights)
    compiled = module.compile(*input_types, weights=weights, custom_extensions=extensions, session=session())
    store(key, compiled.export_mef)
    return compiled


def load_graph(name: str, build: Callable[[], Graph], parts: Iterable[object] = ()) -> Model:
    """The weightless host graph `build()` makes, read from the cache when stored under `name`
    and `parts` (which, with zoo's source, must say all that shapes it), else built, compiled
    and stored. Building is skipped on a hit: checking custom ops alone takes about a second."""
    key = graph_key((name, *parts))
    cached = load_cached(key, {})
    if cached is not None:
        return cached
    compiled = session().compile(build())
    store(key, compiled.export_mef)
    return session().init(compiled)


def graph_key(parts: Iterable[object], modules: Iterable[str] = ()) -> str:
    """The cache key of a graph described by `parts` (their `repr`s), built from code in
    `modules` (module names; the packages outside zoo they belong to are hashed whole)."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for part in (version("max"), platform.machine(), _cpu_identity(), _source_digest(_packages(modules)), *parts):
        digest.update(repr(part).encode() + b"\0")
    return digest.hexdigest()[:32]


def load_cached(key: str, weights: Mapping[str, Any]) -> Model | None:
    """The graph stored under `key`, bound to `weights`, or None (no cache, not stored,
    or a file MAX cannot read, which is then removed)."""
    path = _path(key)
    if path is None or not path.is_file():
        return None
    from max.engine import read

    try:
        model = session().init(read(path), weights_registry=dict(weights))
    except (RuntimeError, ValueError, OSError):
        path.unlink(missing_ok=True)
        return None
    os.utime(path)  # pruning removes the least recently used first
    return model


def store(key: str, export: Callable[[str], None]) -> None:
    """Writes a graph under `key` through `export(path)` (a compiled graph's `export_mef`),
    then prunes the folder. A failure to write leaves the cache as it was."""
    path = _path(key)
    if path is not None and write_whole(path, lambda staging: export(str(staging))):
        prune_folder(path.parent, LIMIT_BYTES)


def write_whole(path: Path, write: Callable[[Path], None]) -> bool:
    """Writes `path` through `write(staging)` and renames it into place, so that no reader
    sees half a file; returns whether it was written (a failure leaves no file behind)."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(staging)
        os.replace(staging, path)
    except (OSError, RuntimeError):
        staging.unlink(missing_ok=True)
        return False
    return True


class CachedGraph:
    """A graph read from the cache, called as the compiled graphs it stands in for are
    (`engine_model`, `signal_buffers`, `execute_raw`). It holds the weights it was bound to:
    the engine reads host arrays in place."""

    signal_buffers: list[Buffer] = []

    def __init__(self, engine_model: Model, weights: Mapping[str, Any]) -> None:
        self.engine_model = engine_model
        self.weights = dict(weights)

    def execute_raw(self, *buffers: Buffer) -> list[Buffer]:
        return list(self.engine_model(*buffers))


def _path(key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"{key}.mef"


def prune_folder(folder: Path, limit: int, pattern: str = "*.mef") -> None:
    """Removes the least recently used files matching `pattern` until they take at most `limit` bytes."""
    try:
        files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
        sizes = [p.stat().st_size for p in files]
    except OSError:
        return
    total = sum(sizes)
    for path, size in zip(files, sizes):
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size


def _packages(modules: Iterable[str]) -> tuple[Path, ...]:
    """The source folders to hash: zoo's own, and the top-level package of each module outside it."""
    import zoo

    folders = {Path(zoo.__file__).parent}
    for name in modules:
        top = sys.modules.get(name.partition(".")[0])
        if isinstance(top, ModuleType) and getattr(top, "__file__", None):
            origin = Path(top.__file__)
            folders.add(origin.parent if origin.name == "__init__.py" else origin)
    return tuple(sorted(folders))


@cache
def _source_digest(folders: tuple[Path, ...]) -> str:
    """A digest of every Python and Mojo source file under `folders` (a single file for a module)."""
    digest = hashlib.sha256()
    for folder in folders:
        files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.suffix in _SUFFIXES)
        for source in files:
            digest.update(str(source.relative_to(folder.parent)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


@cache
def _cpu_identity() -> str:
    """The CPU's model and feature flags (compiled graphs use what the CPU they were built on has)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    wanted = [line for line in lines if line.startswith(("model name", "flags"))]
    return "\n".join(dict.fromkeys(wanted))
