"""`weight_arena.gather`: host weights copied one at a time into one huge-page mapping, sources in
mapped files dropped from the process as they are copied."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch

from zoo.core import weight_arena


def gather(weights: dict) -> dict:
    """`weight_arena.gather` over a dict, in an arena of the size it needs."""
    reserve = weight_arena.capacity([int(w.nbytes) for w in weights.values()], len(weights))
    return weight_arena.gather(weights.items(), reserve)


def test_copies_keep_values_kinds_and_shapes_page_aligned_in_one_mapping():
    rng = np.random.default_rng(0)
    weights = {
        "encoded": rng.integers(0, 256, size=(37, 34), dtype=np.uint8),
        "float": torch.from_numpy(rng.standard_normal((5, 7), dtype=np.float32)),
        "bf16": torch.from_numpy(rng.standard_normal((3, 9), dtype=np.float32)).to(torch.bfloat16),
        "strided": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),
    }
    gathered = gather(weights)
    assert list(gathered) == list(weights)
    assert isinstance(gathered["encoded"], np.ndarray)
    np.testing.assert_array_equal(gathered["encoded"], weights["encoded"])
    for name in ("float", "bf16", "strided"):
        assert isinstance(gathered[name], torch.Tensor) and gathered[name].is_contiguous()
        assert gathered[name].dtype == weights[name].dtype and torch.equal(gathered[name], weights[name])
    addresses = sorted([gathered["encoded"].ctypes.data] + [gathered[n].data_ptr() for n in ("float", "bf16", "strided")])
    assert all(a % weight_arena.ALIGN == 0 for a in addresses)
    assert addresses[0] % weight_arena.HUGE_PAGE == 0
    assert addresses[-1] - addresses[0] == 3 * weight_arena.ALIGN  # consecutive pages of one mapping


def _resident_kib(path) -> int:
    """KiB of `path`'s mapping resident in this process (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:
            inside = len(fields) >= 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.parametrize("mode, wrap", [("r", np.asarray), ("c", torch.from_numpy)])
def test_a_file_mapping_is_released_and_still_reads(tmp_path, mode, wrap):
    """A view of a mapped file, read-only or copy-on-write (a GGUF file's), as NumPy's view or as
    a torch tensor over it (a float GGUF tensor), gives back its pages once copied."""
    data = np.random.default_rng(1).integers(0, 256, size=(64, 8192), dtype=np.uint8)
    path = tmp_path / "weights.bin"
    data.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode=mode).reshape(64, 8192)
    view = wrap(np.asarray(mapped[16:48]))
    assert int(view.sum()) > 0
    before = _resident_kib(path)
    assert before >= view.nbytes // 1024
    gathered = gather({"w": view})
    np.testing.assert_array_equal(np.asarray(gathered["w"]), data[16:48])
    assert _resident_kib(path) <= before - view.nbytes // 1024
    np.testing.assert_array_equal(np.asarray(view), data[16:48])  # read back from the page cache


def test_memory_outside_mapped_files_is_left_alone():
    array = np.ones((64, 8192), dtype=np.uint8)
    gather({"a": array})
    assert int(array.sum()) == array.size  # an anonymous page dropped would read back as zeros


def test_weights_too_large_for_the_memory_stay_where_they_are(monkeypatch):
    monkeypatch.setattr(weight_arena, "available_memory", lambda: 1024)
    weight = torch.ones(1000)
    assert gather({"w": weight})["w"] is weight


@pytest.mark.parametrize("kind", [np.float16, np.int8])
def test_numpy_dtypes_pass_through(kind):
    array = np.arange(24, dtype=kind).reshape(4, 6)
    gathered = gather({"a": array})["a"]
    assert gathered.dtype == array.dtype and np.array_equal(gathered, array)


def test_each_weight_is_let_go_once_copied():
    """A generator's weights are copied as they come: none is still held when the next is made."""
    made: list[weakref.ref] = []

    def weights():
        for index in range(4):
            assert all(ref() is None for ref in made)
            weight = torch.full((256, 256), float(index))
            made.append(weakref.ref(weight))
            yield f"w{index}", weight
            del weight

    gathered = weight_arena.gather(weights(), weight_arena.capacity([256 * 256 * 4] * 4, 4))
    assert [float(w[0, 0]) for w in gathered.values()] == [0.0, 1.0, 2.0, 3.0]


def test_a_weight_past_the_reserve_stays_where_it_is():
    small, large = torch.ones(16), torch.ones(1 << 20)
    reserve = weight_arena.capacity([small.nbytes], 1)
    gathered = weight_arena.gather([("small", small), ("large", large)], reserve)
    assert gathered["small"] is not small and torch.equal(gathered["small"], small)
    assert gathered["large"] is large
