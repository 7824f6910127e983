"""Serving a single-file checkpoint (GGUF): the folder MAX's server reads, and the recipe its worker loads.

`max serve` wants a Hugging Face folder (config.json and tokenizer files) and
a weights path. For a GGUF file zoo writes that folder into its cache: the
config and tokenizer zoo reads from the file's metadata, plus `zoo-serve.json`,
the recipe naming the file and the dtype. The model worker finds the recipe
and loads the file through zoo's own loader (`load_model`), so every tensor
type `zoo run` reads is served, encoded weights staying encoded on the CPU.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.core.checkpoints.tokenizer import Tokenizer
from zoo.core.errors import ZooError
from zoo.core.graph_cache import zoo_cache_home
from zoo.core.resolve import ResolvedModel

RECIPE = "zoo-serve.json"


@dataclass(frozen=True)
class ServeRecipe:
    """What the model worker loads: the weights file, with `dtype` None to keep its encoding."""

    weights: Path
    dtype: str | None

    def write(self, folder: Path) -> None:
        (folder / RECIPE).write_text(json.dumps({"weights": str(self.weights), "dtype": self.dtype}, indent=1) + "\n")


def read_recipe(folder: Path) -> ServeRecipe | None:
    """The recipe in a served folder, or None for a plain Hugging Face checkpoint."""
    path = folder / RECIPE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return ServeRecipe(Path(data["weights"]), data.get("dtype"))


def serving_folder(resolved: ResolvedModel, weights: Path, dtype: str | None, read_tokenizer: Callable[[], Tokenizer | None]) -> Path:
    """Writes (or reuses) the folder `max serve` reads for the single file `weights`;
    `read_tokenizer` is called only when the folder is written."""
    weights = weights.resolve()
    stat = weights.stat()
    key = hashlib.sha256(f"{weights}\0{stat.st_size}\0{stat.st_mtime_ns}\0{dtype}".encode()).hexdigest()[:16]
    folder = zoo_cache_home() / "serve" / f"{weights.stem}-{key}"
    if read_recipe(folder) is not None:
        return folder
    save = getattr(getattr(read_tokenizer(), "hf", None), "save_pretrained", None)
    if save is None:
        raise ZooError(
            f"{resolved.ref}: `zoo serve` needs a tokenizer MAX's server can read (a Hugging Face one, as GGUF "
            "files carry); this file runs with `zoo run` only"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(dict(resolved.hf_config), indent=1) + "\n")
    save(str(folder))
    ServeRecipe(weights, dtype).write(folder)  # last: its presence marks a complete folder
    return folder
