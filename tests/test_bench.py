"""`zoo bench` on a tiny local GPT-2: it runs and reports sane figures (never how fast)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from zoo.bench.run import bench_model as run_bench
from zoo.bench.run import check_request
from zoo.bench.run import format_report as format_table
from zoo.core.errors import ZooError

# The tiny GPT-2 shapes shared with the other tests, so MAX compiles this graph once.
TINY_GPT2 = dict(n_embd=64, n_layer=2, n_head=4, n_positions=128, vocab_size=50257)
CONTEXTS = [8, 32]
NEW_TOKENS = 8

ROW_KEYS = {
    "context",
    "zoo_prefill_tok_s",
    "zoo_decode_tok_s",
    "zoo_decode_ms_per_token",
    "transformers_prefill_tok_s",
    "transformers_decode_tok_s",
    "decode_speedup",
}
TOP_KEYS = {"model", "device", "dtype", "threads", "compile_seconds", "load_seconds", "peak_memory_mb", "contexts", "decode_ms_growth"}


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random GPT-2 checkpoint directory with the shared tiny shapes (no tokenizer: bench needs none)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    # Weights of a clear scale, so the greedy tokens do not hinge on float rounding.
    GPT2LMHeadModel(GPT2Config(initializer_range=0.2, **TINY_GPT2)).eval().save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def result(tiny_gpt2: Path, registry) -> dict:
    messages: list[str] = []
    out = run_bench(
        str(tiny_gpt2),
        random_weights=False,
        contexts=CONTEXTS,
        new_tokens=NEW_TOKENS,
        device="cpu",
        dtype=None,
        registry=registry,
        log=messages.append,
    )
    assert any("compiled" in m for m in messages)
    return out


def positive(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_result_has_the_required_fields(result: dict, tiny_gpt2: Path) -> None:
    assert TOP_KEYS <= set(result)
    assert result["model"] == str(tiny_gpt2)
    assert (result["device"], result["dtype"]) == ("cpu", "float32")
    assert isinstance(result["threads"], int) and result["threads"] >= 1
    assert positive(result["compile_seconds"])
    assert positive(result["peak_memory_mb"])
    assert [row["context"] for row in result["contexts"]] == CONTEXTS
    for row in result["contexts"]:
        assert ROW_KEYS <= set(row)


def test_rates_are_positive_and_consistent(result: dict) -> None:
    for row in result["contexts"]:
        for key in ROW_KEYS - {"context"}:
            assert positive(row[key]), (key, row[key])
        assert row["zoo_decode_ms_per_token"] == pytest.approx(1000 / row["zoo_decode_tok_s"])
        assert row["decode_speedup"] == pytest.approx(row["zoo_decode_tok_s"] / row["transformers_decode_tok_s"])
        assert row["prefill_speedup"] == pytest.approx(row["zoo_prefill_tok_s"] / row["transformers_prefill_tok_s"])
    first, last = result["contexts"][0], result["contexts"][-1]
    assert result["decode_ms_growth"] == pytest.approx(last["zoo_decode_ms_per_token"] / first["zoo_decode_ms_per_token"])


def test_both_sides_run_the_same_model(result: dict) -> None:
    """Same weights, greedy: every generated token agrees."""
    for row in result["contexts"]:
        assert row["matching_tokens"] == NEW_TOKENS


def test_result_is_json_and_formats(result: dict) -> None:
    assert json.loads(json.dumps(result)) == result
    table = format_table(result)
    assert "zoo decode tok/s" in table and "decode zoo/hf" in table
    for context in CONTEXTS:
        assert any(line.strip().startswith(str(context)) for line in table.splitlines())


def test_random_weights_without_transformers(tiny_gpt2: Path, registry) -> None:
    """--random-weights takes a directory's config.json; --no-transformers leaves those fields empty."""
    out = run_bench(
        str(tiny_gpt2),
        random_weights=True,
        contexts=[16],
        new_tokens=4,
        device="cpu",
        dtype=None,
        with_transformers=False,
        registry=registry,
        log=lambda _: None,
    )
    (row,) = out["contexts"]
    assert out["weights"] == "random"
    assert positive(row["zoo_decode_tok_s"]) and positive(row["zoo_prefill_tok_s"])
    assert row["transformers_decode_tok_s"] is None and row["decode_speedup"] is None
    assert out["decode_ms_growth"] == pytest.approx(1.0)
    assert "-" in format_table(out)
    json.dumps(out)


def test_too_long_for_the_context_is_a_clear_error(registry) -> None:
    """Checked from the alias's config before anything is built or compiled."""
    with pytest.raises(ZooError, match=r"context 1000 \+ 64 new tokens exceed gpt2's context length 1024"):
        run_bench("gpt2", random_weights=True, contexts=[16, 1000], new_tokens=64, device="cpu", dtype=None, registry=registry)


@pytest.mark.parametrize(
    "contexts, new_tokens, message",
    [([], 8, "at least one context"), ([0, 8], 8, "positive integers"), ([8], 1, "at least 2")],
)
def test_bad_requests(contexts: list[int], new_tokens: int, message: str) -> None:
    with pytest.raises(ZooError, match=message):
        check_request(contexts, new_tokens, repeats=3)


def test_contexts_are_sorted_and_deduplicated() -> None:
    assert check_request([256, 16, 256], 8, repeats=1) == [16, 256]
