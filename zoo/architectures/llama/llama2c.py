"""karpathy's llama2.c files: the legacy `.bin` checkpoint and the `tokenizer.bin` vocabulary.

A legacy checkpoint is a header of 7 int32 (dim, hidden_dim, n_layers,
n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the
classifier is not tied to the embedding), then float32 arrays, each stacked
over the layers: token embedding, attention norms, wq, wk, wv, wo, ffn norms,
w1, w2, w3, the final norm, two precomputed rope tables (unused), and the
classifier when untied. It reads into HF `LlamaForCausalLM` names and layout,
so the Llama mapper applies unchanged.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from zoo.core.architecture import Checkpoint
from zoo.core.errors import TokenizerError, WeightsError

HEADER = struct.Struct("<7i")
BOS, EOS = 1, 2

# llama2.c array -> HF name inside `model.layers.{i}.`
_LAYER_NAMES = {
    "rms_att": "input_layernorm.weight",
    "wq": "self_attn.q_proj.weight",
    "wk": "self_attn.k_proj.weight",
    "wv": "self_attn.v_proj.weight",
    "wo": "self_attn.o_proj.weight",
    "rms_ffn": "post_attention_layernorm.weight",
    "w1": "mlp.gate_proj.weight",
    "w2": "mlp.down_proj.weight",
    "w3": "mlp.up_proj.weight",
}


@dataclass(frozen=True)
class Llama2cHeader:
    """The hyperparameters at the start of a legacy llama2.c checkpoint."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    def layout(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every float32 array, in file order."""
        d, h, n, v = self.dim, self.hidden_dim, self.n_layers, self.vocab_size
        kv = self.n_kv_heads * self.head_size
        rope_table = (self.seq_len * self.head_size // 2,)
        arrays = [
            ("token_embedding", (v, d)),
            ("rms_att", (n, d)),
            ("wq", (n, d, d)),
            ("wk", (n, kv, d)),
            ("wv", (n, kv, d)),
            ("wo", (n, d, d)),
            ("rms_ffn", (n, d)),
            ("w1", (n, h, d)),
            ("w2", (n, d, h)),
            ("w3", (n, h, d)),
            ("rms_final", (d,)),
            ("freq_cis_real", rope_table),
            ("freq_cis_imag", rope_table),
        ]
        if not self.shared_classifier:
            arrays.append(("wcls", (v, d)))
        return arrays

    def file_size(self) -> int:
        return HEADER.size + 4 * sum(prod(shape) for _, shape in self.layout())

    def hf_config(self) -> dict[str, Any]:
        """The equivalent HF `config.json` (llama2.c fixes rope theta, eps, BOS and EOS)."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.dim,
            "intermediate_size": self.hidden_dim,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_size,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.seq_len,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "tie_word_embeddings": self.shared_classifier,
            "bos_token_id": BOS,
            "eos_token_id": EOS,
        }


def read_header(path: Path) -> Llama2cHeader | None:
    """The header of a legacy llama2.c checkpoint, or None if `path` is not one.

    The file must be exactly as long as its header says, which rules out
    other formats (and truncated files) with near certainty.
    """
    try:
        if not path.is_file():
            return None
        with path.open("rb") as f:
            raw = f.read(HEADER.size)
        size = path.stat().st_size
    except OSError:
        return None
    if len(raw) < HEADER.size:
        return None
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = HEADER.unpack(raw)
    if min(dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len) <= 0:
        return None
    if dim % heads or heads % kv_heads or (dim // heads) % 2:
        return None
    header = Llama2cHeader(dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len, vocab > 0)
    return header if header.file_size() == size else None


def matches(path: Path) -> bool:
    """Whether `path` is a legacy llama2.c checkpoint."""
    return read_header(path) is not None


def rotate_half_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorders q/k projection rows from llama2.c's rotary layout to HF's.

    llama2.c (like Meta's checkpoints) rotates interleaved pairs (0, 1), (2, 3),
    ... of each head; HF rotates the first half of the head against the
    second. Row 2i + j of a head moves to row j * head_size / 2 + i.
    """
    rows, cols = weight.shape
    pairs = rows // n_heads // 2
    return weight.reshape(n_heads, pairs, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def read_tensors(path: Path, header: Llama2cHeader) -> dict[str, Any]:
    """The checkpoint's tensors as float32 NumPy arrays under HF `LlamaForCausalLM` names."""
    data = np.fromfile(path, dtype="<f4", offset=HEADER.size)
    arrays: dict[str, np.ndarray] = {}
    start = 0
    for name, shape in header.layout():
        arrays[name] = data[start : start + prod(shape)].reshape(shape)
        start += prod(shape)
    tensors = {
        "model.embed_tokens.weight": arrays["token_embedding"],
        "model.norm.weight": arrays["rms_final"],
    }
    if not header.shared_classifier:
        tensors["lm_head.weight"] = arrays["wcls"]
    for i in range(header.n_layers):
        layer = {name: arrays[name][i] for name in _LAYER_NAMES}
        layer["wq"] = rotate_half_rows(layer["wq"], header.n_heads)
        layer["wk"] = rotate_half_rows(layer["wk"], header.n_kv_heads)
        tensors.update({f"model.layers.{i}.{_LAYER_NAMES[k]}": v for k, v in layer.items()})
    return {name: np.ascontiguousarray(a) for name, a in tensors.items()}


def load(path: Path, tokenizer_path: Path | None = None) -> Checkpoint:
    """Reads a legacy llama2.c checkpoint and its tokenizer into a HF-style `Checkpoint`."""
    header = read_header(path)
    if header is None:
        raise WeightsError(f"{path} is not a llama2.c checkpoint (its size does not match its header)")
    tokenizer = load_tokenizer(tokenizer_path if tokenizer_path is not None else find_tokenizer(path))
    if isinstance(tokenizer, Llama2cTokenizer) and tokenizer.vocab_size != header.vocab_size:
        raise TokenizerError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but {path.name} was trained with "
            f"{header.vocab_size}; pass the tokenizer it was trained with (--tokenizer PATH)"
        )
    return Checkpoint(
        header.hf_config(), read_tensors(path, header), tokenizer, source=str(path), extra={"format": "llama2c"}
    )


def find_tokenizer(checkpoint: Path) -> Path:
    """`tokenizer.bin`, else a `tok*.bin`, in the checkpoint's folder."""
    folder = checkpoint.parent
    for candidate in [folder / "tokenizer.bin", *sorted(folder.glob("tok*.bin"))]:
        if candidate.is_file() and candidate.resolve() != checkpoint.resolve():
            return candidate
    raise TokenizerError(
        f"no tokenizer next to {checkpoint} (looked for tokenizer.bin and tok*.bin); "
        "pass --tokenizer PATH (a llama2.c tokenizer.bin or a sentencepiece .model)"
    )


def load_tokenizer(path: Path) -> Any:
    """A llama2.c `.bin` vocabulary, or any tokenizer `zoo.core.checkpoints.tokenizer` reads."""
    if path.is_file() and path.suffix == ".bin":
        return Llama2cTokenizer(path)
    from zoo.core.checkpoints.tokenizer import load_tokenizer as load_core_tokenizer

    return load_core_tokenizer(path)


_BYTE_PIECE = re.compile(rb"^<0x([0-9A-Fa-f]{2})>$")


class Llama2cTokenizer:
    """llama2.c's `tokenizer.bin`: sentencepiece pieces with scores, encoded as run.c does.

    The file is an int32 max token length, then per token a float32 score, an
    int32 length and the piece's bytes (with "▁" already turned into a space).
    """

    bos_token_id: int | None = BOS
    eos_token_ids: tuple[int, ...] = (EOS,)
    chat_template: str | None = None

    def __init__(self, path: Path) -> None:
        self.pieces, self.scores = _read_vocab(path)
        self.vocab_size = len(self.pieces)
        self._ids: dict[bytes, int] = {}
        for i, piece in enumerate(self.pieces):
            self._ids.setdefault(piece, i)
        # Byte pieces like b"<0x0A>" stand for that raw byte.
        self._text = [_byte_value(p) if _BYTE_PIECE.match(p) else p for p in self.pieces]

    def encode(self, text: str) -> list[int]:
        """BOS, a dummy-prefix space, then the text's pieces after greedy merging."""
        tokens: list[int] = []
        if text:
            tokens += self._piece_ids(b" ")
        for char in text:
            tokens += self._piece_ids(char.encode("utf-8"))
        while len(tokens) > 1:
            best_score, best_at, best_id = float("-inf"), -1, -1
            for at in range(len(tokens) - 1):
                merged = self._ids.get(self.pieces[tokens[at]] + self.pieces[tokens[at + 1]])
                if merged is not None and self.scores[merged] > best_score:
                    best_score, best_at, best_id = self.scores[merged], at, merged
            if best_at < 0:
                break
            tokens[best_at : best_at + 2] = [best_id]
        return [BOS, *tokens]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`, BOS, EOS and ids outside the vocabulary left out; raw-byte pieces joined into UTF-8."""
        data = b"".join(self._text[int(i)] for i in ids if int(i) not in (BOS, EOS) and 0 <= int(i) < self.vocab_size)
        return data.decode("utf-8", errors="replace")

    def render_chat(self, messages: Sequence[dict[str, str]]) -> str:
        raise TokenizerError("this model's tokenizer has no chat template")

    def _piece_ids(self, piece: bytes) -> list[int]:
        """The piece's id, else one byte-fallback token per byte."""
        if piece in self._ids:
            return [self._ids[piece]]
        return [self._ids.get(b"<0x%02X>" % byte, byte + 3) for byte in piece]


def _byte_value(piece: bytes) -> bytes:
    return bytes([int(piece[3:5], 16)])


def _read_vocab(path: Path) -> tuple[list[bytes], list[float]]:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TokenizerError(f"cannot read tokenizer {path}: {error}") from None
    pieces: list[bytes] = []
    scores: list[float] = []
    at = 4  # skip max_token_length
    while at < len(data):
        if at + 8 > len(data):
            raise TokenizerError(f"{path} is not a llama2.c tokenizer (truncated entry at byte {at})")
        score, length = struct.unpack_from("<fi", data, at)
        at += 8
        if length < 0 or at + length > len(data):
            raise TokenizerError(f"{path} is not a llama2.c tokenizer (bad token length at byte {at - 4})")
        pieces.append(data[at : at + length])
        scores.append(score)
        at += length
    if len(data) < 4 or not pieces:
        raise TokenizerError(f"{path} is not a llama2.c tokenizer (no tokens)")
    return pieces, scores


def read_config(path: Path) -> dict[str, Any]:
    """The HF-style `config.json` of a legacy llama2.c checkpoint, from its header alone."""
    header = read_header(path)
    if header is None:
        raise WeightsError(f"{path} is not a llama2.c checkpoint (its size does not match its header)")
    return header.hf_config()
