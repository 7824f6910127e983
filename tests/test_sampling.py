"""The NumPy logits processors against transformers' own, and SamplingOptions checks.

No MAX here: these run in well under a second.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from zoo.core.errors import ZooError
from zoo.core.runtime.sampling import Sampler, SamplingOptions, apply_repetition_penalty, process_logits

VOCAB = 500


def random_case(seed: int, batch: int = 3, scale: float = 3.0, seen_len: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Logits (batch, VOCAB) and already-seen ids (batch, seen_len), with repeats."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((batch, VOCAB)) * scale).astype(np.float32)
    seen = rng.integers(0, VOCAB, size=(batch, seen_len))
    seen[:, -1] = seen[:, 0]  # a repeated id must be penalised once, not twice
    return logits, seen


def transformers_processors(options: SamplingOptions) -> LogitsProcessorList:
    """The processors `generate` would build for `options`, in its order."""
    procs = LogitsProcessorList()
    if options.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(options.repetition_penalty))
    if options.is_greedy:
        return procs
    if options.temperature != 1.0:
        procs.append(TemperatureLogitsWarper(options.temperature))
    if options.top_k is not None:
        procs.append(TopKLogitsWarper(options.top_k))
    if options.top_p < 1.0:
        procs.append(TopPLogitsWarper(options.top_p))
    if options.min_p > 0.0:
        procs.append(MinPLogitsWarper(options.min_p))
    return procs


def assert_same_scores(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Same removed (-inf) set; finite values within 1e-5."""
    assert ours.shape == theirs.shape
    ours_removed, theirs_removed = np.isneginf(ours), np.isneginf(theirs)
    np.testing.assert_array_equal(ours_removed, theirs_removed)
    kept = ~ours_removed
    assert kept.any(axis=-1).all(), "every row must keep at least one token"
    np.testing.assert_allclose(ours[kept], theirs[kept], rtol=0, atol=1e-5)


SETTINGS = [
    dict(temperature=0.7),
    dict(temperature=1.3),
    dict(temperature=1.0, top_k=1),
    dict(temperature=1.0, top_k=7),
    dict(temperature=1.0, top_k=VOCAB + 10),  # larger than the vocabulary: no-op
    dict(temperature=1.0, top_p=0.9),
    dict(temperature=0.5, top_p=0.3),
    dict(temperature=1.0, top_p=1e-6),  # keeps only the top token
    dict(temperature=3.0, top_p=0.98),  # a flat distribution: keeps many tokens
    dict(temperature=1.0, min_p=0.05),
    dict(temperature=2.0, min_p=0.3),
    dict(temperature=1.0, min_p=1.0),
    dict(temperature=1.0, repetition_penalty=1.3),
    dict(temperature=0.9, repetition_penalty=0.8),  # < 1 rewards repeats
    dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.02, repetition_penalty=1.2),
    dict(temperature=1.5, top_k=100, top_p=0.5, min_p=0.1, repetition_penalty=1.1),
    dict(temperature=4.0, top_k=300, top_p=0.99, min_p=0.001, repetition_penalty=1.05),
    dict(greedy=True, repetition_penalty=1.5),
    dict(temperature=0.0, repetition_penalty=1.5),
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_processors_match_transformers(settings: dict, seed: int, batch: int) -> None:
    options = SamplingOptions(**settings).check()
    logits, seen = random_case(seed, batch=batch)
    ours = process_logits(logits, seen.tolist(), options)
    theirs = transformers_processors(options)(torch.from_numpy(seen), torch.from_numpy(logits.astype(np.float64)))
    assert_same_scores(ours, theirs.numpy())


@pytest.mark.parametrize("settings", SETTINGS[:12], ids=str)
def test_processors_match_transformers_in_float32(settings: dict) -> None:
    """transformers on the model's own float32 logits: ours (float64) agree too."""
    options = SamplingOptions(**settings).check()
    logits, seen = random_case(7)
    ours = process_logits(logits, seen.tolist(), options)
    theirs = transformers_processors(options)(torch.from_numpy(seen), torch.from_numpy(logits))
    assert_same_scores(ours, theirs.numpy().astype(np.float64))


def test_repetition_penalty_signs_like_transformers() -> None:
    logits = np.array([[2.0, -2.0, 0.5, 0.0, -0.5, 3.0]], dtype=np.float32)
    seen = [[0, 1, 3, 4, 1]]
    ours = apply_repetition_penalty(logits.astype(np.float64), seen, 2.0)
    # positive divided, negative multiplied, zero unchanged, unseen untouched, repeats once
    np.testing.assert_allclose(ours, [[1.0, -4.0, 0.5, 0.0, -1.0, 3.0]])
    theirs = RepetitionPenaltyLogitsProcessor(2.0)(torch.tensor(seen), torch.from_numpy(logits.copy()))
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-6)


def test_repetition_penalty_rows_with_different_histories() -> None:
    """Each row is penalised by its own history, whatever its length."""
    logits, _ = random_case(3)
    seen = [[1, 2, 3], [4], [5, 5, 6, 7, 8, 9]]
    ours = apply_repetition_penalty(logits.astype(np.float64), seen, 1.7)
    for row, ids in enumerate(seen):
        theirs = RepetitionPenaltyLogitsProcessor(1.7)(
            torch.tensor([ids]), torch.from_numpy(logits[row : row + 1].astype(np.float64))
        )
        np.testing.assert_allclose(ours[row], theirs.numpy()[0], atol=1e-12)


def test_repetition_penalty_one_is_identity() -> None:
    logits, seen = random_case(4)
    assert apply_repetition_penalty(logits, seen.tolist(), 1.0) is logits


def test_processing_leaves_input_untouched() -> None:
    logits, seen = random_case(5)
    before = logits.copy()
    process_logits(logits, seen.tolist(), SamplingOptions(top_k=5, top_p=0.5, min_p=0.1, repetition_penalty=1.4))
    np.testing.assert_array_equal(logits, before)


def test_top_k_one_is_greedy() -> None:
    rng = np.random.default_rng(11)
    sampler = Sampler(SamplingOptions(temperature=1.7, top_k=1, seed=3))
    greedy = Sampler(SamplingOptions(greedy=True))
    for _ in range(200):
        logits = rng.standard_normal((3, VOCAB)).astype(np.float32) * 5
        seen = [[0], [1], [2]]
        expected = logits.argmax(axis=-1)
        np.testing.assert_array_equal(sampler(logits, seen), expected)
        np.testing.assert_array_equal(greedy(logits, seen), expected)


def test_temperature_zero_is_greedy() -> None:
    logits, seen = random_case(12)
    picks = Sampler(SamplingOptions(temperature=0.0, seed=1))(logits, seen.tolist())
    np.testing.assert_array_equal(picks, logits.argmax(axis=-1))


def toy_generation(seed: int | None, steps: int = 64, **settings) -> list[int]:
    """Samples a token sequence from a fixed toy 'model' whose logits depend on the last token."""
    table = np.random.default_rng(1234).standard_normal((VOCAB, VOCAB)).astype(np.float32) * 2
    sampler = Sampler(SamplingOptions(seed=seed, temperature=1.0, **settings))
    tokens = [0]
    for _ in range(steps):
        tokens.append(int(sampler(table[tokens[-1]][None], [tokens])[0]))
    return tokens[1:]


@pytest.mark.parametrize("settings", [{}, {"top_k": 50, "top_p": 0.9}, {"min_p": 0.05, "repetition_penalty": 1.2}])
def test_fixed_seed_reproduces_the_sequence(settings: dict) -> None:
    first = toy_generation(42, **settings)
    assert toy_generation(42, **settings) == first
    assert len(set(first)) > 1  # really sampled, not stuck on one token


def test_different_seeds_differ() -> None:
    runs = {tuple(toy_generation(seed)) for seed in range(5)}
    assert len(runs) == 5


def test_draws_follow_the_softmax() -> None:
    """Over many draws, the frequencies approach the processed distribution."""
    logits = np.log(np.array([[0.5, 0.25, 0.15, 0.1]], dtype=np.float32))
    sampler = Sampler(SamplingOptions(temperature=1.0, seed=0))
    draws = np.array([sampler(logits, [[]])[0] for _ in range(20000)])
    freqs = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freqs, [0.5, 0.25, 0.15, 0.1], atol=0.015)


def test_samples_never_removed_tokens() -> None:
    rng = np.random.default_rng(8)
    options = SamplingOptions(temperature=1.0, top_k=10, top_p=0.8, seed=5)
    sampler = Sampler(options)
    for _ in range(100):
        logits = rng.standard_normal((3, VOCAB)).astype(np.float32) * 3
        seen = [[1], [2], [3]]
        allowed = np.isfinite(process_logits(logits, seen, options))
        picks = sampler(logits, seen)
        assert allowed[np.arange(3), picks].all()


@pytest.mark.parametrize(
    "settings, flag",
    [
        (dict(temperature=-0.1), "--temperature"),
        (dict(temperature=math.nan), "--temperature"),
        (dict(temperature=math.inf), "--temperature"),
        (dict(top_p=0.0), "--top-p"),
        (dict(top_p=1.01), "--top-p"),
        (dict(top_p=-0.5), "--top-p"),
        (dict(min_p=-0.01), "--min-p"),
        (dict(min_p=1.5), "--min-p"),
        (dict(top_k=0), "--top-k"),
        (dict(top_k=-3), "--top-k"),
        (dict(max_new_tokens=0), "--max-new-tokens"),
        (dict(max_new_tokens=-1), "--max-new-tokens"),
        (dict(repetition_penalty=0.0), "--repetition-penalty"),
        (dict(repetition_penalty=-1.0), "--repetition-penalty"),
        (dict(stop=("ok", "")), "--stop"),
    ],
    ids=str,
)
def test_check_rejects_invalid_options(settings: dict, flag: str) -> None:
    with pytest.raises(ZooError) as error:
        SamplingOptions(**settings).check()
    message = str(error.value)
    assert message.startswith(flag), message
    key, value = next(iter(settings.items()))
    if key != "stop":
        assert str(value) in message  # the offending value is shown


@pytest.mark.parametrize(
    "settings",
    [
        {},
        dict(temperature=0.0),
        dict(top_p=1.0, min_p=0.0, top_k=1),
        dict(min_p=1.0, top_p=1e-9),
        dict(max_new_tokens=1, repetition_penalty=0.5, stop=("\n",)),
    ],
    ids=str,
)
def test_check_accepts_valid_options(settings: dict) -> None:
    options = SamplingOptions(**settings)
    assert options.check() is options
