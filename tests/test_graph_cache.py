"""Compiled graphs kept on disk: a second load reads them back and runs exactly as the first."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import zoo
from zoo.core import graph_cache

from conftest import STORIES

STORIES_BIN = str(STORIES / "stories260K.bin")
PROMPT = "Once upon a time"


def _load(monkeypatch: pytest.MonkeyPatch, setting: str) -> zoo.Model:
    monkeypatch.setenv(graph_cache.SWITCH, setting)
    return zoo.load(STORIES_BIN)


def _graphs(model: zoo.Model) -> list[object]:
    graph = model.loaded.graph
    return [graph.any_length, graph.one_token]


def test_a_second_load_reads_the_stored_graphs_and_runs_the_same(tmp_path, monkeypatch):
    folder = tmp_path / "graphs"
    first = _load(monkeypatch, str(folder))
    assert not any(isinstance(g, graph_cache.CachedGraph) for g in _graphs(first))
    assert len(list(folder.glob("*.mef"))) == 2  # the any-length and the one-token graph

    second = _load(monkeypatch, str(folder))
    assert all(isinstance(g, graph_cache.CachedGraph) for g in _graphs(second))
    assert second.loaded.graph.from_cache and not first.loaded.graph.from_cache
    tokens = first.encode(PROMPT)
    np.testing.assert_array_equal(first.logits(tokens), second.logits(tokens))
    assert first.generate(PROMPT, max_new_tokens=24, greedy=True) == second.generate(PROMPT, max_new_tokens=24, greedy=True)


def test_an_unreadable_stored_graph_is_compiled_again_and_replaced(tmp_path, monkeypatch):
    folder = tmp_path / "graphs"
    expected = _load(monkeypatch, str(folder)).generate(PROMPT, max_new_tokens=12, greedy=True)
    stored = sorted(folder.glob("*.mef"))
    for path in stored:
        path.write_bytes(b"not a compiled graph")
    again = _load(monkeypatch, str(folder))
    assert not any(isinstance(g, graph_cache.CachedGraph) for g in _graphs(again))
    assert again.generate(PROMPT, max_new_tokens=12, greedy=True) == expected
    assert all(path.stat().st_size > 1000 for path in stored)


def test_zero_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv(graph_cache.SWITCH, "0")
    assert graph_cache.cache_dir() is None
    model = zoo.load(STORIES_BIN)
    assert not any(isinstance(g, graph_cache.CachedGraph) for g in _graphs(model))


def test_the_key_changes_with_every_part_and_with_the_code():
    base = graph_cache.graph_key(("any_length", "llama", '{"rope_theta":10000.0}'))
    assert base == graph_cache.graph_key(("any_length", "llama", '{"rope_theta":10000.0}'))
    assert base != graph_cache.graph_key(("one_token", "llama", '{"rope_theta":10000.0}'))
    assert base != graph_cache.graph_key(("any_length", "llama", '{"rope_theta":500000.0}'))
    # a model built from a package outside zoo: that package's source is part of the key
    assert base != graph_cache.graph_key(("any_length", "llama", '{"rope_theta":10000.0}'), modules=["pytest"])


def test_the_config_in_the_key_leaves_out_what_only_generation_reads():
    """A GGUF file and the checkpoint it came from often differ only in their BOS/EOS ids:
    their graphs are the same, and so is their key."""
    from zoo.core.resolve import resolve_model

    config = resolve_model(str(STORIES / "hf")).config
    other_ids = config.model_copy(update={"eos_token_ids": (7, 8), "bos_token_id": 3})
    assert other_ids.graph_json() == config.graph_json()
    wider = config.model_copy(update={"context_length": 2 * config.context_length})
    assert wider.graph_json() != config.graph_json()


def test_pruning_removes_the_least_recently_used_first(tmp_path):
    now = time.time()
    for age, name in enumerate(["newest", "middle", "oldest"]):
        path = tmp_path / f"{name}.mef"
        path.write_bytes(b"x" * 100)
        os.utime(path, (now - age * 60, now - age * 60))
    graph_cache.prune_folder(tmp_path, limit=250)
    assert sorted(p.stem for p in tmp_path.glob("*.mef")) == ["middle", "newest"]
