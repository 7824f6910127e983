"""Fuzzing config.json fields and safetensors headers through the CLI, in-process, compiling nothing.

Every generated case must end either in success (`zoo info` accepts the config; the
checkpoint reaches the compile step, which is replaced by a marker) or in exactly one
`zoo: error:` line with exit status 1: never an internal error, a traceback, a second line,
or a hang (each case has a deadline).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import struct
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gpt2_fixtures import TINY, make_checkpoint

GPT2 = {"architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128,
        "vocab_size": 50257, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "eos_token_id": 50256}
LLAMA = {"architectures": ["LlamaForCausalLM"], "vocab_size": 384, "hidden_size": 64, "intermediate_size": 96,
         "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 16,
         "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}
MIXTRAL = {**LLAMA, "architectures": ["MixtralForCausalLM"], "num_local_experts": 4, "num_experts_per_tok": 2}
BASES = [GPT2, LLAMA, MIXTRAL]
FIELDS = sorted({*GPT2, *LLAMA, *MIXTRAL, "n_inner", "n_ctx", "tie_word_embeddings", "attention_bias", "mlp_bias",
                 "rope_scaling", "rope_parameters", "sliding_window", "bos_token_id", "hidden_act",
                 "scale_attn_by_inverse_layer_idx", "scale_attn_weights", "reorder_and_upcast_attn"})

numbers = st.one_of(
    st.integers(-3, 3), st.integers(-(2**70), 2**70), st.sampled_from([1023, 1024, 1025, 2048, 2**24, 2**24 + 1, 2**31, 10**7]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e-300, 1e300, 0.5, 2.0]),
)
scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=8),
                    st.sampled_from(["silu", "gelu", "gelu_new", "linear", "llama3", "longrope", "yarn", "12", "1e-5"]))
rope = st.fixed_dictionaries({}, optional={
    "rope_type": st.one_of(st.sampled_from(["default", "linear", "llama3", "longrope", "yarn", "dynamic"]), scalars),
    "type": scalars, "factor": numbers, "low_freq_factor": numbers, "high_freq_factor": numbers,
    "original_max_position_embeddings": numbers, "rope_theta": numbers, "attention_factor": numbers,
    "short_factor": st.one_of(scalars, st.lists(numbers, max_size=10)),
    "long_factor": st.one_of(scalars, st.lists(numbers, max_size=10)),
})
values = st.one_of(scalars, st.lists(scalars, max_size=4), rope, st.dictionaries(st.text(max_size=4), scalars, max_size=3))


@st.composite
def configs(draw) -> object:
    """A family's valid config with some fields changed, removed or added; now and then not an object at all."""
    if draw(st.integers(0, 40)) == 0:
        return draw(st.one_of(scalars, st.lists(scalars, max_size=3)))
    base = draw(st.sampled_from(BASES))
    config = dict(base)
    if base is not GPT2 and draw(st.integers(0, 3)) == 0:
        config[draw(st.sampled_from(["rope_scaling", "rope_parameters"]))] = draw(rope)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()) and name in config:
            del config[name]
        else:
            config[name] = draw(values)
    return config


@pytest.fixture(scope="module")
def config_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-config")
    (folder / "model.safetensors").write_bytes(b"")  # zoo info names the weights file but never reads it
    return folder


def zoo_in_process(*argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `zoo ARGV` run in this process."""
    from zoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def assert_clean_error(code: int, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1, (code, stderr)
    assert len(lines) == 1 and lines[0].startswith("zoo: error: "), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


@settings(max_examples=2000, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs())
def test_fuzzed_config_json_is_accepted_whole_or_refused_in_one_line(config_folder, config):
    (config_folder / "config.json").write_text(json.dumps(config))
    code, out, err = zoo_in_process("info", str(config_folder), "--json")
    if code == 0:
        from zoo.core.resolve import resolve_model

        shown = json.loads(out)
        assert shown["parameters"] is None or shown["parameters"] > 0
        resolved = resolve_model(str(config_folder))
        resolved.config.check()
        rotary = getattr(resolved.config, "positions", "learned") == "rotary"
        assert not rotary or all(math.isfinite(f) and f > 0 for f in resolved.config.inv_freq())
        event("accepted")
        return
    event("refused: " + " ".join(assert_clean_error(code, err).split()[2:5]))


# --- safetensors headers --------------------------------------------------------------------------

REAL_NAMES = ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight", "transformer.ln_f.bias"]
DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I8", "U8", "BOOL", "C64", "F8_E4M3", "X9", "f32", ""]


@st.composite
def safetensors_files(draw) -> bytes:
    """Bytes of a safetensors file: a random blob, or a header of plausible and implausible entries."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    header: dict = {}
    data_size = draw(st.integers(0, 256))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.one_of(st.sampled_from(REAL_NAMES), st.text(max_size=6)))
        shape = draw(st.one_of(st.lists(st.integers(0, 8), max_size=3), st.lists(st.integers(-(2**63), 2**64), max_size=3),
                               scalars))
        begin = draw(st.integers(0, data_size))
        count = math.prod(shape) if isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape) else 1
        consistent = [begin, begin + 4 * count]
        offsets = draw(st.one_of(st.just(consistent), st.lists(st.integers(-(2**64), 2**64), max_size=3), scalars))
        entry = {"dtype": draw(st.sampled_from(DTYPES)), "shape": shape, "data_offsets": offsets}
        header[name] = draw(st.one_of(st.just(entry), scalars)) if draw(st.integers(0, 5)) == 0 else entry
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.one_of(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2), scalars))
    raw = json.dumps(header).encode()
    length = draw(st.one_of(st.just(len(raw)), st.integers(0, 2**64 - 1)))
    return struct.pack("<Q", length) + raw + b"\0" * data_size


@pytest.fixture(scope="module")
def weights_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-weights")
    make_checkpoint(folder, seed=2, **TINY)
    return folder


class _Compiled(BaseException):
    pass


@settings(max_examples=1000, deadline=5000, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=safetensors_files())
def test_fuzzed_safetensors_headers_fail_in_one_line_before_any_compile(weights_folder, monkeypatch, raw):
    import zoo.core.loader as loader
    import zoo.core.resolve as resolve

    def no_compile(architecture, config, mapped, device, dtype, before_compile=None, **options):
        def stop() -> None:
            raise _Compiled()

        return original(architecture, config, mapped, device, dtype, stop, **options)

    original = loader.compile_mapped
    monkeypatch.setattr(loader, "compile_mapped", no_compile)
    monkeypatch.setattr(resolve, "load_tokenizer", _cached_tokenizer)  # the tokenizer is not under test: load it once
    (weights_folder / "model.safetensors").write_bytes(raw)
    try:
        code, out, err = zoo_in_process("run", str(weights_folder), "-p", "hi")
    except _Compiled:
        pytest.fail("a fuzzed header reached the compile")
    finally:
        monkeypatch.undo()
    assert out == ""
    event("refused: " + " ".join(assert_clean_error(code, err).split()[2:6]))


@lru_cache(maxsize=4)
def _cached_tokenizer(path: Path):
    from zoo.core.checkpoints.tokenizer import load_tokenizer

    return load_tokenizer(path)
