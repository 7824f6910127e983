"""GPT-2 on MAX against transformers: logits, greedy tokens, KV cache, batches."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from gpt2_fixtures import FULL_124M, TINY, VARIANT, make_checkpoint
from reference import cached_decode, reference_greedy, reference_logits
from zoo.core.checkpoints.arrays import as_float_array
from zoo.core.runtime.generation import TextGenerator
from zoo.core.loader import load_model
from zoo.core.runtime.sampling import SamplingOptions

GREEDY = SamplingOptions(greedy=True, max_new_tokens=12, ignore_eos=True)


@pytest.fixture(scope="session", params=["tiny", "variant"])
def gpt2_pair(request, tmp_path_factory, registry):
    """(transformers model, zoo LoadedModel) on the same random weights."""
    shape = TINY if request.param == "tiny" else VARIANT
    folder = tmp_path_factory.mktemp(f"gpt2-{request.param}")
    hf = make_checkpoint(folder, seed=1, **shape)
    return hf, load_model(str(folder), registry, verbose=False)


def test_logits_match_transformers_at_every_cached_step(gpt2_pair):
    hf, model = gpt2_pair
    prompt = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]
    tokens, logits = cached_decode(model, [prompt], steps=10)
    sequence = list(prompt)
    for step_tokens, step_logits in zip(tokens, logits):
        expected = reference_logits(hf, sequence)
        np.testing.assert_allclose(step_logits[0], expected, atol=1e-4, rtol=0)
        sequence.append(int(step_tokens[0]))


def test_greedy_tokens_equal_transformers_generate(gpt2_pair):
    hf, model = gpt2_pair
    generator = TextGenerator(model)
    for prompt in ["Hello world, this is GPT-2.", "The quick brown fox"]:
        ids = generator.encode(prompt)
        ours = generator.generate([prompt], GREEDY)[0].token_ids
        assert ours == reference_greedy(hf, ids, GREEDY.max_new_tokens)
        assert len(set(ours)) > 1, "degenerate test model: pick weights whose greedy output varies"


def test_kv_cached_decode_equals_full_recompute(gpt2_pair):
    """Each cached step's logits equal a fresh prefill over the whole sequence."""
    _, model = gpt2_pair
    prompt = [40, 588, 257, 1310, 286]
    tokens, cached = cached_decode(model, [prompt], steps=6)
    sequence = list(prompt)
    for step_tokens, step_logits in zip(tokens, cached):
        _, fresh = cached_decode(model, [sequence], steps=1)
        np.testing.assert_allclose(step_logits[0], fresh[0][0], atol=1e-5, rtol=0)
        sequence.append(int(step_tokens[0]))


def test_scored_prompts_match_transformers_on_both_sides_of_few_rows(gpt2_pair):
    """Every position of a 20- and a 40-token prompt: the prompt graph multiplies 20 rows on
    zoo_rowdot's tiles and 40 on MAX's matmul (`kernels.FEW_ROWS`, chosen as it runs)."""
    import torch

    from zoo.core.blocks import kernels
    from zoo.core.runtime.engine import Engine

    hf, model = gpt2_pair
    assert 20 <= kernels.FEW_ROWS < 40
    for length in (20, 40):
        ids = [(i * 7919 + 13) % model.config.vocab_size for i in range(length)]
        with torch.no_grad():
            expected = hf(torch.tensor([ids])).logits[0].numpy()
        np.testing.assert_allclose(Engine(model).score(ids), expected, atol=1e-4, rtol=0)


def test_cpu_float32_models_decode_through_the_one_token_graph(gpt2_pair):
    """So every parity test here checks zoo's decode kernel, not only MAX's matmul."""
    _, model = gpt2_pair
    assert model.graph.one_token is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
def test_max_log_poller_runs_at_idle_priority_after_a_step(gpt2_pair):
    """MAX's 100-microsecond log poller must not preempt the model's threads (`zoo.core.runtime.pollers`)."""
    _, model = gpt2_pair
    cached_decode(model, [[40, 588]], steps=1)
    idle = [int(tid) for tid in os.listdir("/proc/self/task") if _policy(int(tid)) == os.SCHED_IDLE]
    assert idle, "no thread of this process was given SCHED_IDLE"


def _policy(tid: int) -> int | None:
    try:
        return os.sched_getscheduler(tid)
    except OSError:  # the thread ended
        return None


def test_extend_in_chunks_matches_transformers(gpt2_pair):
    """The serving path: one request's prompt in chunks (chunked prefill), then one token a step."""
    from zoo.core.runtime.engine import Engine

    hf, model = gpt2_pair
    engine = Engine(model)
    prompt = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]
    cache = engine.new_cache(1, 24)
    engine.extend(prompt[:4], cache)
    token, logits = engine.extend(prompt[4:], cache)
    sequence = list(prompt)
    for _ in range(8):
        np.testing.assert_allclose(logits, reference_logits(hf, sequence), atol=1e-4, rtol=0)
        assert token == int(np.argmax(logits))
        sequence.append(token)
        token, logits = engine.extend([token], cache)
    assert cache.filled == len(sequence)


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
def test_cache_write_moves_new_keys_and_values_into_the_cache_layouts(dtype_name):
    """The graph returns each call's keys and values stacked over the layers, (layers, B, S,
    Hkv, D); the cache keeps each layer's keys transposed, (B, Hkv, D, capacity), and values
    (B, Hkv, capacity, D), filled in order: all rows together, or each row its own count."""
    from types import SimpleNamespace

    import torch
    from max.dtype import DType

    from zoo.core.runtime.kvcache import KVCache

    config = SimpleNamespace(n_layers=2, n_kv_heads=3, head_dim=4)
    cache = KVCache(config, getattr(DType, dtype_name), batch=2, capacity=7)
    rng = np.random.default_rng(0)
    written = []
    for seqlen, counts in ((3, None), (1, None), (2, np.array([2, 1]))):
        new = [rng.standard_normal((config.n_layers, 2, seqlen, 3, 4)).astype(np.float32) for _ in range(2)]
        start = cache.filled
        positions = np.tile(np.arange(start, start + seqlen), (2, 1))
        converted = new if dtype_name == "float32" else [torch.from_numpy(t).to(torch.bfloat16) for t in new]
        cache.write(*converted, positions, np.ones((2, seqlen), dtype=bool), counts)
        written.append(new)
    assert cache.lengths.tolist() == [6, 5]
    np.testing.assert_array_equal(cache.positions[0, :6], np.arange(6))
    np.testing.assert_array_equal(cache.positions[1, :5], np.arange(5))
    assert cache.valid[0, :6].all() and cache.valid[1, :5].all() and not cache.valid[0, 6:].any() and not cache.valid[1, 5:].any()
    atol = 0 if dtype_name == "float32" else 2e-2
    for layer in range(config.n_layers):
        stored_k = as_float_array(cache.keys[layer])
        stored_v = as_float_array(cache.values[layer])
        for row, filled in ((0, 6), (1, 5)):
            keys = np.concatenate([step[0][layer, row] for step in written], axis=0)[:filled]  # (filled, Hkv, D)
            values = np.concatenate([step[1][layer, row] for step in written], axis=0)[:filled]
            np.testing.assert_allclose(stored_k[row, ..., :filled], keys.transpose(1, 2, 0), atol=atol, rtol=atol)
            np.testing.assert_allclose(stored_v[row, :, :filled], values.transpose(1, 0, 2), atol=atol, rtol=atol)
            assert not stored_k[row, ..., filled:].any() and not stored_v[row, :, filled:].any()


def test_batch_of_different_lengths_equals_one_at_a_time(gpt2_pair):
    _, model = gpt2_pair
    generator = TextGenerator(model)
    prompts = ["Hi", "Once upon a time, in a land far away,", "The meaning of life is"]
    batched = generator.generate(prompts, GREEDY)
    for prompt, completion in zip(prompts, batched):
        alone = generator.generate([prompt], GREEDY)[0]
        assert completion.token_ids == alone.token_ids
        assert completion.text == alone.text


def test_sampling_is_reproducible_with_a_seed(gpt2_pair):
    _, model = gpt2_pair
    generator = TextGenerator(model)
    options = SamplingOptions(temperature=1.0, top_k=50, seed=7, max_new_tokens=12, ignore_eos=True)
    first = generator.generate(["Seeded"], options)[0].token_ids
    again = generator.generate(["Seeded"], options)[0].token_ids
    other = generator.generate(["Seeded"], options.model_copy(update={"seed": 8}))[0].token_ids
    assert first == again
    assert first != other


def test_top_k_one_equals_greedy(gpt2_pair):
    _, model = gpt2_pair
    generator = TextGenerator(model)
    sampled = generator.generate(["Top k"], SamplingOptions(temperature=1.3, top_k=1, seed=3, max_new_tokens=10, ignore_eos=True))
    greedy = generator.generate(["Top k"], SamplingOptions(greedy=True, max_new_tokens=10, ignore_eos=True))
    assert sampled[0].token_ids == greedy[0].token_ids


def test_stop_string_and_max_tokens(gpt2_pair):
    _, model = gpt2_pair
    generator = TextGenerator(model)
    full = generator.generate(["Stop here:"], GREEDY)[0]
    assert full.finish_reason == "length" and len(full.token_ids) == GREEDY.max_new_tokens
    stop = full.text[len(full.text) // 2 :][:3]
    stopped = generator.generate(["Stop here:"], GREEDY.model_copy(update={"stop": (stop,)}))[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full.text[: full.text.find(stop)]


def test_streamed_deltas_add_up_to_the_text(gpt2_pair):
    _, model = gpt2_pair
    generator = TextGenerator(model)
    deltas = [d for _, d in generator.stream(["Streaming"], GREEDY)]
    assert len(deltas) > 1
    assert "".join(deltas) == generator.completions[0].text


@pytest.fixture(scope="session")
def gpt2_124m(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("gpt2-124m")
    hf = make_checkpoint(folder, seed=2, initializer_range=0.02, **FULL_124M)
    return hf, load_model(str(folder), registry, verbose=False)


def test_124m_shapes_long_prompt_parity(gpt2_124m):
    """The real GPT-2 small shapes, a 700+ token prompt, KV-cached greedy decode."""
    hf, model = gpt2_124m
    prompt = list(np.random.default_rng(0).integers(0, 50257, size=720))
    tokens, logits = cached_decode(model, [prompt], steps=6)
    sequence = list(prompt)
    for step_tokens, step_logits in zip(tokens, logits):
        np.testing.assert_allclose(step_logits[0], reference_logits(hf, sequence), atol=1e-4, rtol=0)
        sequence.append(int(step_tokens[0]))
    assert [int(t[0]) for t in tokens] == reference_greedy(hf, prompt, 6)


def test_bfloat16_runs_close_to_float32(tmp_path_factory, registry):
    """--dtype bfloat16: same graph shapes in bf16; logits near the fp32 reference."""
    from gpt2_fixtures import TINY

    folder = tmp_path_factory.mktemp("gpt2-bf16")
    hf = make_checkpoint(folder, seed=1, **TINY)
    model = load_model(str(folder), registry, dtype="bfloat16", verbose=False)
    prompt = [464, 2068, 7586, 21831, 18045]
    tokens, logits = cached_decode(model, [prompt], steps=3)
    expected = reference_logits(hf, prompt)
    scale = np.abs(expected).max()
    assert np.abs(logits[0][0] - expected).max() < 0.05 * scale
    assert np.corrcoef(logits[0][0], expected)[0, 1] > 0.999
