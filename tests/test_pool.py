"""`CachePool`: sequences that join and leave a pool of cache slots at different lengths
decode exactly as they do alone (the TINY GPT-2 shape other tests compile)."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2_fixtures import TINY, make_checkpoint
from reference import reference_logits

PROMPTS = {
    "a": [464, 2068, 7586, 21831, 18045, 625, 262],
    "b": [40, 588],
    "c": [15496, 995, 11, 428, 318],
    "d": [1212],
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, registry):
    from zoo.core.loader import load_model

    folder = tmp_path_factory.mktemp("gpt2-pool")
    hf = make_checkpoint(folder, seed=1, **TINY)
    return hf, load_model(str(folder), registry, verbose=False)


def alone(model, prompt: list[int], steps: int) -> list[int]:
    """Greedy continuation of one prompt through the ordinary generation loop."""
    from zoo.core.runtime.engine import Engine
    from zoo.core.runtime.sampling import SamplingOptions

    options = SamplingOptions(greedy=True, max_new_tokens=steps, ignore_eos=True)
    return [int(t[0]) for t in Engine(model).generate([prompt], options)]


def test_sequences_joining_and_leaving_decode_as_they_do_alone(tiny):
    from zoo.core.runtime.engine import Engine
    from zoo.core.runtime.pool import CachePool

    hf, model = tiny
    pool = CachePool(Engine(model), slots=3, capacity=32)
    steps = 8
    expected = {key: alone(model, prompt, steps) for key, prompt in PROMPTS.items()}
    got: dict[str, list[int]] = {}
    # a and b start; c joins at step 2 (taking the third slot); b leaves at step 4, then d joins.
    joins = {0: ["a", "b"], 2: ["c"], 5: ["d"]}
    live: list[str] = []
    for step in range(16):
        batch = []
        for key in joins.get(step, []):
            pool.acquire(key)
            live.append(key)
            batch.append((key, PROMPTS[key]))
        batch += [(key, [got[key][-1]]) for key in live if key in got]
        if not batch:
            break
        greedy, logits = pool.step(batch)
        for (key, tokens), token, row in zip(batch, greedy, logits):
            sequence = PROMPTS[key] + got.get(key, [])
            np.testing.assert_allclose(row, reference_logits(hf, sequence), atol=1e-4, rtol=0)
            assert token == int(np.argmax(row))
            got.setdefault(key, []).append(int(token))
        for key in list(live):
            if len(got[key]) == steps or (key == "b" and len(got[key]) == 4):
                pool.release(key)
                live.remove(key)
        assert pool.used == len(live) <= 3
    assert got["b"] == expected["b"][:4]
    for key in "acd":
        assert got[key] == expected[key], key


def test_pool_full_decode_dummies_and_bad_ids(tiny):
    from zoo.core.errors import PromptError
    from zoo.core.runtime.engine import Engine
    from zoo.core.runtime.pool import CachePool, PoolFullError

    _, model = tiny
    pool = CachePool(Engine(model), slots=3, capacity=16)
    for key in "xyz":
        pool.acquire(key)
    with pytest.raises(PoolFullError):
        pool.acquire("w")
    assert pool.nbytes == 2 * TINY["n_layer"] * 3 * TINY["n_embd"] * 16 * 4
    pool.step([("x", PROMPTS["c"]), ("z", PROMPTS["b"])])
    # y holds nothing and is not in this decode step: it rides along as padding, unwritten.
    greedy, _ = pool.step([("z", [7]), ("x", [9])])
    assert pool.length("y") == 0 and pool.length("x") == 6 and pool.length("z") == 3
    assert not pool.cache.valid[1].any()
    with pytest.raises(PromptError, match="outside the model's vocabulary"):
        pool.step([("x", [TINY["vocab_size"] + 3])])
    with pytest.raises(PromptError, match="a slot holds 16"):
        pool.step([("x", list(range(11)))])
    # x leaves: z (the last slot) moves into slot 0 and keeps decoding where it was.
    pool.release("x")
    assert pool.used == 2 and pool.length("z") == 3
    single, logits = pool.step([("z", [int(greedy[0])])])
    expected = alone(model, PROMPTS["b"] + [7], 2)
    assert int(single[0]) == expected[1]


def test_prefills_on_consecutive_slots_share_a_call_within_a_token_budget(tiny):
    from zoo.core.runtime.engine import Engine
    from zoo.core.runtime.pool import PREFILL_TOKENS, CachePool

    _, model = tiny
    pool = CachePool(Engine(model), slots=4, capacity=8)
    for key in "abcd":
        pool.acquire(key)
    pool.release("b")  # d moves into slot 1: slots are a 0, d 1, c 2
    batch = [("c", [1] * 10), ("a", [1] * 300), ("d", [1] * 200)]
    assert PREFILL_TOKENS == 512
    assert pool._runs([0, 1, 2], batch) == [[1], [2, 0]]  # a alone (2 x 300 > 512); d and c together
