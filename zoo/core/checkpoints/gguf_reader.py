"""The `gguf` package's GGUF reader, with metadata arrays decoded in one pass each.

`gguf.GGUFReader` parses every element of a metadata array into NumPy views of its
own; a vocabulary of 50k tokens and as many merges then takes seconds to open. This
reader decodes each array of numbers as one NumPy view and each array of strings in
a single loop over the mapped bytes, and keeps them in `arrays` (Python lists) rather
than in `fields`; every other field, the tensor index and the memory-mapped data are
the package's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType, ReaderField


class FastArrayReader(GGUFReader):
    """A `GGUFReader` whose metadata arrays are lists in `arrays`, by key."""

    arrays: dict[str, list[Any]]

    def _build_fields(self, offs: int, count: int) -> int:
        self.arrays = {}
        for _ in range(count):
            start = offs
            key_length, key_bytes = self._get_str(offs)
            key = str(bytes(key_bytes), encoding="utf-8")
            offs += int(key_length.nbytes + key_bytes.nbytes)
            raw_type = self._get(offs, np.uint32)
            offs += int(raw_type.nbytes)
            if GGUFValueType(int(raw_type[0])) == GGUFValueType.ARRAY:
                array, size = self._read_array(offs)
                if array is not None:
                    self.arrays[key] = array
                    offs += size
                    continue
            size, parts, indices, types = self._get_field_parts(offs, raw_type[0])
            field = ReaderField(start, key, [key_length, key_bytes, raw_type, *parts], [i + 3 for i in indices], types)
            self._push_field(field, skip_sum=True)
            offs += size
        return offs

    def _read_array(self, offs: int) -> tuple[list[Any] | None, int]:
        """A flat array of numbers or strings at `offs` and its size in bytes; None for
        any other array (left to the package)."""
        item_type = GGUFValueType(int(self._get(offs, np.uint32)[0]))
        count = int(self._get(offs + 4, np.uint64)[0])
        first = offs + 12
        if item_type == GGUFValueType.STRING:
            strings, size = _strings(self.data, first, count)
            return strings, 12 + size
        numeric = self.gguf_scalar_to_np.get(item_type)
        if numeric is None:
            return None, 0
        values = self._get(first, numeric, count)
        return values.tolist(), 12 + int(values.nbytes)


def _strings(data: np.ndarray, offs: int, count: int) -> tuple[list[str], int]:
    """`count` GGUF strings (uint64 length, UTF-8 bytes) from byte `offs` of `data`."""
    raw = memoryview(data)
    start = offs
    strings = []
    for _ in range(count):
        length = int.from_bytes(raw[offs : offs + 8], "little")
        offs += 8
        strings.append(str(raw[offs : offs + length], encoding="utf-8"))
        offs += length
    return strings, offs - start
