"""Host weights gathered into one anonymous mapping that the kernel backs with huge pages.

A decode step streams every weight once. Read from 4 KiB pages (a memory-mapped
GGUF file, or allocations too small for numpy to ask for huge pages) the stream
pays a page walk every 4 KiB; from 2 MiB pages it runs closer to memory
bandwidth. On a 2-core EPYC (transparent huge pages on request, the usual
`madvise` setting) a Q8_0 model of GPT-2's size took 5.0-5.4 ms a decode step
from the arena against 5.6-5.8 ms before, in alternating runs.

The weights are taken one at a time, so the loader makes each (fused, converted
or repacked for MAX's matmul) just before it is copied and frees it just after:
a model is never held twice. A weight that views a mapped file (a GGUF tensor,
whatever kind of array or tensor wraps it) has its pages dropped from the
process once a copy replaces it (`release_pages`; the page cache keeps them, and
the view reads them back from there). Where the arena would take more than half
the available memory, the weights stay where they are.
"""

from __future__ import annotations

import bisect
import ctypes
import math
import mmap
from collections.abc import Iterable
from functools import cache
from typing import Any

from zoo.core.runtime.generation import available_memory

HUGE_PAGE = 2 << 20
ALIGN = 4096  # every tensor starts on its own page boundary


def capacity(nbytes: Iterable[int], pieces: int) -> int:
    """Bytes of an arena for weights of `nbytes` that may be cut into up to `pieces` tensors in
    all (each starts on its own page). An arena is reserved, not written: what is left unused
    costs no memory."""
    return sum(nbytes) + pieces * ALIGN + HUGE_PAGE


def gather(weights: Iterable[tuple[str, Any]], reserve: int) -> dict[str, Any]:
    """Copies of the (name, weight) pairs of `weights` (torch tensors and numpy arrays, each
    kept as its own kind) laid out in one huge-page mapping of `reserve` bytes (`capacity`),
    which the copies keep alive. Each pair is copied as it is taken, so a generator that
    makes its weights one at a time never holds them all beside their copies. A weight
    past the end of `reserve`, or every weight when `reserve` is more than half the
    available memory, is kept as it is."""
    import numpy as np

    from zoo.core.checkpoints.arrays import is_torch

    available = available_memory()
    if not hasattr(mmap, "MADV_HUGEPAGE") or (available is not None and reserve > available / 2):
        return dict(weights)
    region = mmap.mmap(-1, reserve, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    base = np.frombuffer(region, dtype=np.uint8)
    offset = -base.ctypes.data % HUGE_PAGE
    gathered: dict[str, Any] = {}
    for name, weight in weights:
        nbytes = int(weight.nbytes)
        if offset + nbytes > reserve:
            gathered[name] = weight
            continue
        place = base[offset : offset + nbytes]
        if is_torch(weight):
            import torch

            copy = torch.from_numpy(place).view(weight.dtype).view(weight.shape)
            copy.copy_(weight)
        else:
            copy = place.view(weight.dtype).reshape(weight.shape)
            np.copyto(copy, weight)
        release_pages(weight)
        gathered[name] = copy
        offset += -(-nbytes // ALIGN) * ALIGN
        del weight  # not held while the next one is made
    return gathered


def release_pages(*weights: Any) -> None:
    """Drops from this process the pages of a mapped file that each of `weights` (contiguous
    numpy arrays or torch tensors) views, once copies have replaced them; anything else is
    left alone. The mappings are read afresh each time: an address a file no longer holds
    may be anonymous memory by now."""
    from zoo.core.checkpoints.arrays import data_address

    files = file_mappings()
    for weight in weights:
        contiguous, address = data_address(weight)
        if contiguous:
            drop_file_pages(address, int(weight.nbytes), files)


def file_mappings() -> list[tuple[int, int]]:
    """The (start, end) addresses of this process's mappings of files (from /proc/self/maps,
    which lists them in address order)."""
    spans = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    start, end = (int(bound, 16) for bound in fields[0].split("-"))
                    spans.append((start, end))
    except OSError:
        return []
    return spans


def drop_file_pages(address: int, nbytes: int, files: list[tuple[int, int]]) -> None:
    """Drops from this process the whole pages of [address, address + nbytes) when that range
    lies in one of the mapped `files`; later reads fetch them again from the file."""
    below = bisect.bisect_right(files, (address, math.inf)) - 1  # the last mapping starting at or before it
    if below < 0 or address + nbytes > files[below][1]:
        return
    first = -(-address // mmap.PAGESIZE) * mmap.PAGESIZE
    last = (address + nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first:
        _libc().madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), mmap.MADV_DONTNEED)


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)

