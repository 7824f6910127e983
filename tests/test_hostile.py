"""Hostile input, as a careless or malicious user gives it: each case ends in one `zoo: error:`
line, exit status 1, nothing on stdout, before any compile, within seconds, without opening a
file outside the checkpoint (an inotify watch on a planted folder of secrets) and without
changing the shared data.

Cases run in-process through `zoo.cli.main` (see `hostile_helpers`); the compile is replaced
by a marker, so inputs that are fine show that they got that far and nothing compiles.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import pytest

from conftest import SHARED_DATA, STORIES
from gpt2_fixtures import TINY, make_checkpoint
from hostile_helpers import OpenWatch, assert_user_error, run_zoo, tree_digest

# --- fixtures: a tiny GPT-2, a folder of secrets next to it, the watch -----------------


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """(tiny GPT-2 checkpoint folder, secrets folder, inotify watch on the secrets)."""
    root = tmp_path_factory.mktemp("hostile")
    tiny = root / "tiny"
    make_checkpoint(tiny, seed=5, **TINY)
    secret = root / "secret"
    secret.mkdir()
    shutil.copy(tiny / "model.safetensors", secret / "secret.safetensors")  # a valid checkpoint: reading it would "work"
    shutil.copy(tiny / "tokenizer.json", secret / "tokenizer.json")
    shutil.copy(tiny / "config.json", secret / "config.json")
    (secret / "passwd").write_text("root:x:0:0\n")
    watch = OpenWatch(secret)
    before = tree_digest(SHARED_DATA)
    yield tiny, secret, watch
    watch.close()
    assert tree_digest(SHARED_DATA) == before, "the shared data changed"


@pytest.fixture()
def zoo_run(base, capfd, monkeypatch):
    """Runs zoo in-process; afterwards nothing in the secrets folder may have been opened."""
    _, _, watch = base
    watch.opened()

    def run(*argv: str, **kwargs):
        outcome = run_zoo([str(a) for a in argv], capfd, monkeypatch, **kwargs)
        opened = watch.opened()
        assert not opened, f"zoo opened {opened} outside the checkpoint"
        return outcome

    return run


def folder(tmp_path: Path, tiny: Path, *, config=None, changes=None, drop=(), weights=True, tokenizer=True) -> Path:
    """A copy of the tiny checkpoint (hard links) with its config.json replaced or edited."""
    out = tmp_path / "ck"
    out.mkdir()
    hf = json.loads((tiny / "config.json").read_text())
    hf.update(changes or {})
    for key in drop:
        hf.pop(key, None)
    if config is None:
        (out / "config.json").write_text(json.dumps(hf))
    elif isinstance(config, bytes):
        (out / "config.json").write_bytes(config)
    elif config is not False:
        (out / "config.json").write_text(json.dumps(config))
    if weights:
        os.link(tiny / "model.safetensors", out / "model.safetensors")
    if tokenizer:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            os.link(tiny / name, out / name)
    return out


# --- config.json ---------------------------------------------------------------------------

RAW_CONFIGS = {
    "not-utf8": (b"\x00\xff not json", "cannot read config file"),
    "empty": (b"", "cannot read config file"),
    "json-array": (b"[1, 2]", "must hold a JSON object, not list"),
    "json-null": (b"null", "must hold a JSON object"),
    "json-number": (b"42", "must hold a JSON object, not int"),
    "utf8-bom": (b"\xef\xbb\xbf{}", "cannot read config file"),
    "latin1": ('{"a": "\xe9"}'.encode("latin-1"), "cannot read config file"),
    "nested-100k-deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(RAW_CONFIGS))
def test_unreadable_config_json(zoo_run, base, tmp_path, case):
    raw, message = RAW_CONFIGS[case]
    ck = folder(tmp_path, base[0], config=raw)
    assert_user_error(zoo_run("run", ck, "-p", "hi"), message)


GPT2_FIELDS = {
    "layers-ten-million": ({"n_layer": 10_000_000}, "n_layer must be between 1 and 1024, got 10000000"),
    "layers-zero": ({"n_layer": 0}, "n_layer must be between 1"),
    "layers-negative": ({"n_layer": -1}, "n_layer must be between 1"),
    "layers-string": ({"n_layer": "12"}, "n_layer must be an integer, got '12'"),
    "layers-fraction": ({"n_layer": 2.5}, "n_layer must be an integer"),
    "layers-bool": ({"n_layer": True}, "n_layer must be an integer"),
    "layers-null": ({"n_layer": None}, "lacks 'n_layer'"),
    "layers-list": ({"n_layer": [2]}, "n_layer must be an integer"),
    "layers-1e300": ({"n_layer": 1e300}, "n_layer must be between 1 and 1024"),
    "layers-400-digits": ({"n_layer": 10**400}, "n_layer must be between 1 and 1024"),
    "heads-zero": ({"n_head": 0}, "n_head must be between 1"),
    "heads-not-dividing": ({"n_head": 3}, "n_embd (64) is not a multiple of n_head (3)"),
    "heads-negative": ({"n_head": -4}, "n_head must be between 1"),
    "hidden-2^40": ({"n_embd": 1 << 40}, "n_embd must be between 1 and 65536"),
    "vocab-zero": ({"vocab_size": 0}, "vocab_size must be between 1"),
    "vocab-2^40": ({"vocab_size": 1 << 40}, "vocab_size must be between 1"),
    "context-zero": ({"n_positions": 0}, "n_positions must be between 1"),
    "context-2^40": ({"n_positions": 1 << 40}, "n_positions must be between 1"),
    "inner-negative": ({"n_inner": -5}, "n_inner must be between 1"),
    "activation-unknown": ({"activation_function": "relu6"}, "activation_function='relu6' is not supported"),
    "activation-number": ({"activation_function": 3}, "activation_function=3 is not supported"),
    "eps-negative": ({"layer_norm_epsilon": -1}, "layer_norm_epsilon must be positive"),
    "eps-string": ({"layer_norm_epsilon": "1e-5"}, "layer_norm_epsilon must be a finite number"),
    "eps-zero": ({"layer_norm_epsilon": 0}, "layer_norm_epsilon must be positive"),
    "eps-nan": ({"layer_norm_epsilon": float("nan")}, "layer_norm_epsilon must be a finite number, got nan"),
    "eps-infinity": ({"layer_norm_epsilon": float("inf")}, "layer_norm_epsilon must be a finite number, got inf"),
    "inverse-layer-scaling": ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=true is not supported"),
    "flag-as-string": ({"scale_attn_by_inverse_layer_idx": "yes"}, "must be true or false, got 'yes'"),
    "eos-string": ({"eos_token_id": "x"}, "eos_token_id must be a non-negative integer"),
    "eos-negative": ({"eos_token_id": -1}, "eos_token_id must be a non-negative integer"),
    "eos-mixed-list": ({"eos_token_id": [1, "a"]}, "eos_token_id must be a non-negative integer"),
    "eos-bool": ({"eos_token_id": True}, "eos_token_id must be a non-negative integer"),
    "bos-negative": ({"bos_token_id": -3}, "bos_token_id must be a non-negative integer"),
    "bos-empty-list": ({"bos_token_id": []}, "bos_token_id must be a non-negative integer"),
    "architectures-empty": ({"architectures": []}, "no plugin supports architecture none given"),
    "architectures-string": ({"architectures": "GPT2LMHeadModel"}, "architectures must be a list of class names"),
    "architectures-numbers": ({"architectures": [3]}, "architectures must be a list of class names"),
    "architectures-object": ({"architectures": {"a": 1}}, "architectures must be a list of class names"),
    "architecture-unknown": ({"architectures": ["BertModel"]}, "no plugin supports architecture BertModel"),
}


@pytest.mark.parametrize("case", sorted(GPT2_FIELDS))
def test_gpt2_config_fields_are_typed_and_range_checked_the_same_by_run_and_info(zoo_run, base, tmp_path, case):
    changes, message = GPT2_FIELDS[case]
    ck = folder(tmp_path, base[0], changes=changes)
    line = assert_user_error(zoo_run("run", ck, "-p", "hi"), message, max_seconds=10)
    assert len(line) < 500
    assert assert_user_error(zoo_run("info", ck), message) == line  # one verdict for both commands


def test_config_without_architectures_or_a_size(zoo_run, base, tmp_path):
    ck = folder(tmp_path, base[0], drop=("architectures", "n_layer"))
    assert_user_error(zoo_run("info", ck), "no plugin supports architecture none given")


LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 384, "hidden_size": 64,
    "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 4,
    "head_dim": 16, "max_position_embeddings": 128,
}
MIXTRAL = {**LLAMA, "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4,
           "num_experts_per_tok": 2}
LINEAR, LLAMA3 = {"rope_type": "linear"}, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
LLAMA_FIELDS = {
    "kv-heads-zero": ({"num_key_value_heads": 0}, "num_key_value_heads must be between 1"),
    "kv-heads-not-dividing": ({"num_key_value_heads": 3}, "num_attention_heads (8) is not a multiple of num_key_value_heads (3)"),
    "kv-heads-more-than-heads": ({"num_key_value_heads": 16}, "is not a multiple of num_key_value_heads (16)"),
    "head-dim-odd": ({"head_dim": 15}, "head_dim must be even"),
    "head-dim-2^20": ({"head_dim": 1 << 20}, "head_dim must be between 1 and 2048"),
    "head-dim-zero": ({"head_dim": 0}, "head_dim must be between 1"),
    "hidden-not-dividing": ({"head_dim": None, "hidden_size": 60}, "hidden size 60 is not a multiple of num_attention_heads (8)"),
    "activation-gelu": ({"hidden_act": "gelu"}, "hidden_act='gelu' is not supported"),
    "activation-unknown": ({"hidden_act": "tanh"}, "hidden_act='tanh' is not supported"),
    "rope-scaling-string": ({"rope_scaling": "linear"}, "must be JSON objects"),
    "rope-scaling-list": ({"rope_scaling": [1]}, "must be JSON objects"),
    "rope-yarn": ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, "rope scaling type 'yarn' is not supported"),
    "rope-dynamic-legacy-key": ({"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "'dynamic' is not supported"),
    "rope-type-number": ({"rope_scaling": {"rope_type": 3}}, "rope scaling type 3 is not supported"),
    "rope-type-object": ({"rope_scaling": {"rope_type": {}}}, "rope scaling type {} is not supported"),
    "linear-without-factor": ({"rope_scaling": LINEAR}, "linear rope scaling lacks 'factor'"),
    "linear-factor-zero": ({"rope_scaling": {**LINEAR, "factor": 0}}, "factor must be a positive number, got 0"),
    "linear-factor-negative": ({"rope_scaling": {**LINEAR, "factor": -2}}, "factor must be a positive number"),
    "linear-factor-string": ({"rope_scaling": {**LINEAR, "factor": "2"}}, "factor must be a positive number, got '2'"),
    "linear-factor-nan": ({"rope_scaling": {**LINEAR, "factor": float("nan")}}, "factor must be a positive number, got nan"),
    "linear-factor-list": ({"rope_scaling": {**LINEAR, "factor": [2]}}, "factor must be a positive number"),
    "llama3-missing-field": ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "llama3 rope scaling lacks 'low_freq_factor'"),
    "llama3-equal-bands": ({"rope_scaling": {**LLAMA3, "high_freq_factor": 1.0}}, "needs high_freq_factor (1.0) > low_freq_factor (1.0)"),
    "llama3-zero-context": ({"rope_scaling": {**LLAMA3, "original_max_position_embeddings": 0}}, "must be a positive number, got 0"),
    "longrope-factors-string": ({"rope_scaling": {"rope_type": "longrope", "short_factor": "x", "long_factor": [1.0],
                                                  "original_max_position_embeddings": 32}}, "short_factor must be a list of positive numbers"),
    "longrope-factors-short": ({"rope_scaling": {"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0],
                                                 "original_max_position_embeddings": 32}}, "longrope factors need 8 values"),
    "rope-theta-zero": ({"rope_theta": 0}, "rope_theta must be a positive number, got 0"),
    "rope-theta-string": ({"rope_theta": "1e4"}, "rope_theta must be a positive number"),
    "rope-parameters-theta": ({"rope_parameters": {"rope_type": "default", "rope_theta": "x"}}, "rope_theta must be a positive number"),
    "eps-zero": ({"rms_norm_eps": 0}, "rms_norm_eps must be positive"),
    "eps-string": ({"rms_norm_eps": "x"}, "rms_norm_eps must be a finite number"),
    "tie-as-string": ({"tie_word_embeddings": "yes"}, "tie_word_embeddings must be true or false"),
    "bias-as-string": ({"attention_bias": "true"}, "attention_bias must be true or false"),
    "bias-as-number": ({"mlp_bias": 1}, "mlp_bias must be true or false"),
    "inner-zero": ({"intermediate_size": 0}, "intermediate_size must be between 1"),
    "context-2^30": ({"max_position_embeddings": 1 << 30}, "max_position_embeddings must be between 1 and 16777216"),
    "hidden-missing": ({"hidden_size": None}, "lacks 'hidden_size'"),
    "hidden-string": ({"hidden_size": "64"}, "hidden_size must be an integer"),
}
MIXTRAL_FIELDS = {
    "experts-zero": ({"num_local_experts": 0}, "num_local_experts must be between 1 and 4096"),
    "top-k-above-experts": ({"num_experts_per_tok": 8}, "num_experts_per_tok (8) exceeds num_local_experts (4)"),
    "top-k-zero": ({"num_experts_per_tok": 0}, "num_experts_per_tok must be between 1"),
    "experts-missing": ({"num_local_experts": None}, "lacks 'num_local_experts'"),
    "window-zero": ({"sliding_window": 0}, "sliding_window must be between 1"),
    "window-string": ({"sliding_window": "4096"}, "sliding_window must be an integer"),
    "experts-million": ({"num_local_experts": 10**6}, "num_local_experts must be between 1 and 4096"),
}


@pytest.mark.parametrize("family, case", [("llama", c) for c in sorted(LLAMA_FIELDS)] + [("mixtral", c) for c in sorted(MIXTRAL_FIELDS)])
def test_llama_and_mixtral_config_fields(zoo_run, tmp_path, family, case):
    base_config, table = (LLAMA, LLAMA_FIELDS) if family == "llama" else (MIXTRAL, MIXTRAL_FIELDS)
    changes, message = table[case]
    config = {k: v for k, v in {**base_config, **changes}.items() if v is not None}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"")  # never read: the config fails first
    line = assert_user_error(zoo_run("info", tmp_path), message)
    assert assert_user_error(zoo_run("run", tmp_path, "-p", "hi")) == line


@pytest.mark.parametrize("config", [LLAMA, MIXTRAL, {**LLAMA, "rope_scaling": LLAMA3}], ids=["llama", "mixtral", "llama3-rope"])
def test_good_configs_pass_info(zoo_run, tmp_path, config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"")
    outcome = zoo_run("info", tmp_path, "--json")
    assert outcome.code == 0, outcome.stderr
    assert json.loads(outcome.stdout)["config"]["n_layers"] == 3


def test_config_json_that_is_a_folder_or_a_symlink_out(zoo_run, base, tmp_path):
    tiny, secret, _ = base
    as_folder = folder(tmp_path, tiny, config=False)
    (as_folder / "config.json").mkdir()
    assert_user_error(zoo_run("info", as_folder), "has no config.json")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "config.json").symlink_to(secret / "config.json")
    assert_user_error(zoo_run("info", linked), "points outside the checkpoint folder")


# --- weights -------------------------------------------------------------------------------


def header(entries, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(entries).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


F32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
SAFETENSORS = {
    "empty-file": (b"", "shorter than its 8-byte header length"),
    "random-bytes": (bytes(range(256)) * 4, "its header claims"),
    "header-length-2^63": (struct.pack("<Q", 1 << 63) + b"{}", "its header claims 9223372036854775808 bytes"),
    "header-past-the-end": (struct.pack("<Q", 1000) + b"{}", "its header claims 1000 bytes"),
    "header-not-json": (struct.pack("<Q", 4) + b"abcd", "its header is not JSON"),
    "header-array": (header([1, 2]), "its header is not a JSON object"),
    "unknown-dtype": (header({"a": {**F32, "dtype": "X9"}}, b"\0" * 4), "unknown dtype 'X9'"),
    "offsets-past-the-data": (header({"a": {**F32, "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 4), "outside the file's 4 data bytes"),
    "negative-shape": (header({"a": {**F32, "shape": [-1]}}, b"\0" * 4), "has shape [-1]"),
    "shape-overflow": (header({"a": {**F32, "shape": [2**62, 2**62]}}, b"\0" * 4), "does not fill its 4 bytes"),
    "metadata-not-strings": (header({"__metadata__": {"a": 1}, "a": F32}, b"\0" * 4), "__metadata__ must map names to strings"),
    "entry-not-object": (header({"a": 3}), "is not described by an object"),
    "no-tensors": (header({}), "missing: embed_tokens.weight"),
    "foreign-names": (header({"a": F32}, b"\0" * 4), "unexpected: a"),
}


@pytest.mark.parametrize("case", sorted(SAFETENSORS))
def test_corrupt_or_hostile_safetensors(zoo_run, base, tmp_path, case):
    raw, message = SAFETENSORS[case]
    ck = folder(tmp_path, base[0], weights=False)
    (ck / "model.safetensors").write_bytes(raw)
    assert_user_error(zoo_run("run", ck, "-p", "hi"), message)


def test_safetensors_are_read_as_views_and_a_misaligned_tensor_as_a_copy(tmp_path):
    """Tensors are views of the file; one a writer left at an offset its dtype cannot be read
    from in place (an F32 after three F16 values) is copied, with the same values."""
    import numpy as np

    from zoo.core.checkpoints.hf import read_tensors

    entries = {"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]}, "b": {**F32, "shape": [2], "data_offsets": [6, 14]}}
    raw = header(entries)
    raw += b" " * (-len(raw) % 8)
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw) - 8) + raw[8:] + np.arange(3, dtype=np.float16).tobytes()
                     + np.array([1.5, -2.0], dtype=np.float32).tobytes())
    tensors = read_tensors(path)
    np.testing.assert_array_equal(tensors["a"], [0, 1, 2])
    np.testing.assert_array_equal(tensors["b"], [1.5, -2.0])
    assert tensors["b"].flags.aligned and tensors["b"].flags.owndata
    assert not tensors["a"].flags.owndata and tensors["a"].flags.writeable


def with_tensor_dtype(tiny: Path, ck: Path, dtype_name: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tiny / "model.safetensors"))
    name = "transformer.h.0.mlp.c_fc.weight"
    tensors[name] = tensors[name].to(getattr(torch, dtype_name))
    save_file(tensors, str(ck / "model.safetensors"))


@pytest.mark.parametrize("dtype_name", ["int64", "int8", "bool", "uint8", "complex64"])
def test_weights_that_are_not_floating_point_are_named(zoo_run, base, tmp_path, dtype_name):
    ck = folder(tmp_path, base[0], weights=False)
    with_tensor_dtype(base[0], ck, dtype_name)
    assert_user_error(zoo_run("run", ck, "-p", "hi"), f"not floating point: layers.0.mlp.up_proj.weight ({dtype_name})")


@pytest.mark.parametrize("dtype_name", ["float16", "float64", "bfloat16"])
def test_other_float_weights_are_accepted(zoo_run, base, tmp_path, dtype_name):
    ck = folder(tmp_path, base[0], weights=False)
    with_tensor_dtype(base[0], ck, dtype_name)
    outcome = zoo_run("run", ck, "-p", "hi")
    assert outcome.compiled and outcome.stdout == "", outcome.stderr


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def torch_pickle(value) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def pytorch_bins(marker: Path) -> dict[str, tuple[bytes, str]]:
    import torch

    return {
        "code-in-torch-zip": (torch_pickle({"a": _RunsCode(marker)}), "its pickle asks for posix.system"),
        "code-in-raw-pickle": (pickle.dumps({"a": _RunsCode(marker)}), "not a PyTorch weights file"),
        "a-tensor": (torch_pickle(torch.zeros(3)), "is not a state dict (it holds a Tensor)"),
        "a-list": (torch_pickle([torch.zeros(3)]), "is not a state dict (it holds a list)"),
        "int-values": (torch_pickle({"transformer.wte.weight": 3}), "'transformer.wte.weight' is not a tensor (it is of type int)"),
        "string-values": (torch_pickle({"transformer.wte.weight": "x"}), "is not a tensor (it is of type str)"),
        "nested-dicts": (torch_pickle({"transformer": {"wte": torch.zeros(2)}}), "'transformer' is not a tensor"),
        "int-keys": (torch_pickle({1: torch.zeros(2)}), "tensor names must be strings, got 1"),
        "empty-dict": (torch_pickle({}), "missing: embed_tokens.weight"),
        "not-a-zip": (b"PK\x03\x04garbage", "corrupt or not a checkpoint"),
        "truncated-legacy": (b"\x80\x02\x8a\x0a", "corrupt or not a checkpoint"),
    }


BIN_CASES = ["code-in-torch-zip", "code-in-raw-pickle", "a-tensor", "a-list", "int-values", "string-values", "nested-dicts",
             "int-keys", "empty-dict", "not-a-zip", "truncated-legacy"]


@pytest.mark.parametrize("case", BIN_CASES)
def test_hostile_pytorch_bin(zoo_run, base, tmp_path, case):
    marker = tmp_path / "code-ran"
    raw, message = pytorch_bins(marker)[case]
    ck = folder(tmp_path, base[0], weights=False)
    (ck / "pytorch_model.bin").write_bytes(raw)
    assert_user_error(zoo_run("run", ck, "-p", "hi"), message)
    assert not marker.exists(), "unpickling ran the checkpoint's code"


def shard_index(ck: Path, weight_map) -> None:
    document = weight_map if not isinstance(weight_map, dict) or "weight_map" in weight_map else {"weight_map": weight_map}
    (ck / "model.safetensors.index.json").write_text(json.dumps(document))


SHARDS = {
    "parent-folder": ({"a": "../secret/secret.safetensors"}, "which is not a .safetensors or .bin file inside"),
    "absolute-path": ({"a": "SECRET/secret.safetensors"}, "which is not a .safetensors or .bin file inside"),
    "etc-passwd": ({"a": "/etc/passwd"}, "'/etc/passwd'"),
    "itself": ({"a": "model.safetensors.index.json"}, "'model.safetensors.index.json'"),
    "itself-dotted": ({"a": "./model.safetensors.index.json"}, "'./model.safetensors.index.json'"),
    "not-weights": ({"a": "notes.txt"}, "'notes.txt', which is not a .safetensors or .bin file"),
    "missing-shard": ({"a": "model-00001-of-00002.safetensors"}, "which does not exist"),
    "nul-in-name": ({"a": "model\x00.safetensors"}, "which is not a .safetensors or .bin file"),
    "backslashes": ({"a": "..\\secret\\secret.safetensors"}, "which is not a .safetensors or .bin file"),
    "map-is-a-list": ({"weight_map": ["a"]}, "has no weight_map object"),
    "map-missing": ({"metadata": {}, "weight_map": None}, "has no weight_map object"),
    "map-empty": ({"weight_map": {}}, "has no weight_map object"),
    "map-values-numbers": ({"a": 3}, "weight_map values must be shard file names, got 3"),
    "index-is-an-array": ([1, 2], "has no weight_map object"),
}


@pytest.mark.parametrize("case", sorted(SHARDS))
def test_shard_index_is_validated_and_confined(zoo_run, base, tmp_path, case):
    tiny, secret, _ = base
    weight_map, message = SHARDS[case]
    weight_map = json.loads(json.dumps(weight_map).replace("SECRET", str(secret)))
    ck = folder(tmp_path, tiny, weights=False)
    (ck / "notes.txt").write_text("x")
    shard_index(ck, weight_map)
    assert_user_error(zoo_run("run", ck, "-p", "hi"), message)


def test_shard_symlinked_out_of_the_folder_is_refused(zoo_run, base, tmp_path):
    tiny, secret, _ = base
    ck = folder(tmp_path, tiny, weights=False)
    (ck / "model-1.safetensors").symlink_to(secret / "secret.safetensors")
    shard_index(ck, {"a": "model-1.safetensors"})
    assert_user_error(zoo_run("run", ck, "-p", "hi"), "points outside the checkpoint folder")


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_shard_that_is_not_a_regular_file(zoo_run, base, tmp_path, kind):
    ck = folder(tmp_path, base[0], weights=False)
    (ck / "x.safetensors").mkdir() if kind == "folder" else os.mkfifo(ck / "x.safetensors")
    shard_index(ck, {"a": "x.safetensors"})
    assert_user_error(zoo_run("run", ck, "-p", "hi"), "is not a regular file")


@pytest.mark.parametrize("raw, message", [(b"\xff\xfe", "cannot read shard index"), (b"[" * 100_000, "nested too deeply")],
                         ids=["not-utf8", "deep"])
def test_unreadable_shard_index(zoo_run, base, tmp_path, raw, message):
    ck = folder(tmp_path, base[0], weights=False)
    (ck / "model.safetensors.index.json").write_bytes(raw)
    assert_user_error(zoo_run("run", ck, "-p", "hi"), message)


def test_single_weights_file_symlinked_out_of_the_folder_is_refused(zoo_run, base, tmp_path):
    tiny, secret, _ = base
    ck = folder(tmp_path, tiny, weights=False)
    (ck / "model.safetensors").symlink_to(secret / "secret.safetensors")
    assert_user_error(zoo_run("run", ck, "-p", "hi"), "model.safetensors points outside the checkpoint folder")


def test_sharded_checkpoint_in_the_hugging_face_cache_layout_loads(zoo_run, base, tmp_path, monkeypatch):
    """Snapshot files are symlinks into the repo's blobs folder: that is inside the checkpoint."""
    import hashlib

    from safetensors.torch import load_file, save_file

    tiny = base[0]
    repo = tmp_path / "hub" / "models--someone--sharded"
    snapshot, blobs = repo / "snapshots" / ("0" * 40), repo / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    staging = tmp_path / "staging"
    staging.mkdir()
    tensors = load_file(str(tiny / "model.safetensors"))
    names = sorted(tensors)
    weight_map = {}
    for part, chunk in enumerate((names[: len(names) // 2], names[len(names) // 2 :]), 1):
        shard = f"model-0000{part}-of-00002.safetensors"
        save_file({n: tensors[n] for n in chunk}, str(staging / shard))
        weight_map.update({n: shard for n in chunk})
    shard_index(staging, weight_map)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, staging / name)
    for item in staging.iterdir():
        digest = hashlib.sha256(item.read_bytes()).hexdigest()
        item.rename(blobs / digest)
        (snapshot / item.name).symlink_to(Path("../../blobs") / digest)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    outcome = zoo_run("run", "someone/sharded", "-p", "hi")
    assert outcome.compiled, outcome.stderr


@pytest.mark.parametrize("target, message", [
    ("/nonexistent/model.safetensors", "does not exist"),
    ("FOLDER", "is not a regular file"),
    ("/dev/zero", "is not a regular file"),
    ("CONFIG", "is not a weights file"),
], ids=["missing", "folder", "device", "json"])
def test_bad_weights_flag(zoo_run, base, target, message):
    tiny = base[0]
    target = target.replace("FOLDER", str(tiny)).replace("CONFIG", str(tiny / "config.json"))
    assert_user_error(zoo_run("run", tiny, "-p", "hi", "--weights", target), message)


def test_weights_flag_may_point_anywhere_but_its_shards_stay_beside_it(zoo_run, base, tmp_path):
    tiny = base[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.link(tiny / "model.safetensors", elsewhere / "weights.safetensors")
    shard_index(elsewhere, {"x": "weights.safetensors"})
    ck = folder(tmp_path, tiny, weights=False)
    assert zoo_run("run", ck, "-p", "hi", "--weights", elsewhere / "weights.safetensors").compiled
    assert zoo_run("run", ck, "-p", "hi", "--weights", elsewhere / "model.safetensors.index.json").compiled
    shard_index(elsewhere, {"x": "../ck/model.safetensors"})
    assert_user_error(zoo_run("run", ck, "-p", "hi", "--weights", elsewhere / "model.safetensors.index.json"), "not a .safetensors")


# --- tokenizers ----------------------------------------------------------------------------


def tokenizer_files(tiny: Path, ck: Path, secret: Path) -> dict[str, tuple]:
    settings = json.loads((tiny / "tokenizer_config.json").read_text())
    return {
        "none": ({}, "no tokenizer in"),
        "garbage-json": ({"tokenizer.json": "nope"}, "cannot load the tokenizer"),
        "empty-json": ({"tokenizer.json": ""}, "cannot load the tokenizer"),
        "wrong-json": ({"tokenizer.json": '{"a": 1}'}, "cannot load the tokenizer"),
        "settings-array": ({"tokenizer_config.json": "[]"}, "tokenizer_config.json must hold a JSON object, not list"),
        "remote-code": ({"tokenizer_config.json": json.dumps({"auto_map": {"AutoTokenizer": ["evil.Tok", None]},
                                                              "tokenizer_class": "Tok"})}, "cannot load the tokenizer"),
        "unknown-class": ({"tokenizer_config.json": json.dumps({"tokenizer_class": "NoSuchTokenizer"})}, "cannot load the tokenizer"),
        "vocab-without-merges": ({"vocab.json": "{}"}, "no tokenizer in"),
        "sentencepiece-garbage": ({"tokenizer.model": "garbage"}, "cannot load the tokenizer"),
        "file-path-out": ({"tokenizer_config.json": json.dumps({**settings, "tokenizer_file": str(secret / "tokenizer.json")})},
                          "tokenizer_file names"),
        "file-path-up": ({"tokenizer_config.json": json.dumps({**settings, "vocab_file": "../secret/passwd"})}, "vocab_file names"),
        "symlink-out": ({"tokenizer.json": secret / "tokenizer.json"}, "points outside the checkpoint folder"),
        "larger-than-the-vocabulary": ("VOCAB", "the tokenizer has 50257 tokens but the model's vocabulary is 1000"),
    }


TOKENIZER_CASES = ["none", "garbage-json", "empty-json", "wrong-json", "settings-array", "remote-code", "unknown-class",
                   "vocab-without-merges", "sentencepiece-garbage", "file-path-out", "file-path-up", "symlink-out",
                   "larger-than-the-vocabulary"]


@pytest.mark.parametrize("case", TOKENIZER_CASES)
def test_bad_tokenizer_in_the_checkpoint(zoo_run, base, tmp_path, case):
    tiny, secret, _ = base
    ck = folder(tmp_path, tiny, tokenizer=False)
    files, message = tokenizer_files(tiny, ck, secret)[case]
    if files == "VOCAB":
        (ck / "config.json").write_text(json.dumps({**json.loads((ck / "config.json").read_text()), "vocab_size": 1000}))
        files = {name: (tiny / name).read_text() for name in ("tokenizer.json", "tokenizer_config.json")}
    for name, content in files.items():
        if isinstance(content, Path):
            (ck / name).symlink_to(content)
        else:
            (ck / name).write_text(content)
    assert_user_error(zoo_run("run", ck, "-p", "hi"), message)


@pytest.mark.parametrize("target, message", [
    ("/nonexistent/tokenizer.json", "tokenizer path /nonexistent/tokenizer.json does not exist"),
    ("EMPTY", "no tokenizer in"),
    ("CONFIG", "cannot load the tokenizer"),
    ("/dev/zero", "is neither a file nor a directory"),
    (str(STORIES / "tok512.bin"), "unrecognised tokenizer file"),
], ids=["missing", "empty-folder", "a-config-file", "device", "llama2c-vocabulary"])
def test_bad_tokenizer_flag(zoo_run, base, tmp_path, target, message):
    tiny = base[0]
    (tmp_path / "empty").mkdir()
    target = target.replace("EMPTY", str(tmp_path / "empty")).replace("CONFIG", str(tiny / "config.json"))
    assert_user_error(zoo_run("run", tiny, "-p", "hi", "--tokenizer", target), message)


def test_broken_chat_template_fails_before_the_compile(zoo_run, base, tmp_path):
    tiny = base[0]
    ck = folder(tmp_path, tiny, tokenizer=False)
    os.link(tiny / "tokenizer.json", ck / "tokenizer.json")
    settings = {**json.loads((tiny / "tokenizer_config.json").read_text()), "chat_template": "{% for x in %}"}
    (ck / "tokenizer_config.json").write_text(json.dumps(settings))
    assert_user_error(zoo_run("run", ck, "--chat"), "chat template")


# --- prompts -------------------------------------------------------------------------------

PROMPTS = {
    "empty": (["-p", ""], "the prompt is empty"),
    "blank": (["-p", "   "], "the prompt is empty"),
    "newline": (["-p", "\n"], "the prompt is empty"),
    "second-of-two-empty": (["-p", "hi", "-p", ""], "prompt 2 is empty"),
    "longer-than-the-context": (["-p", "word " * 200], "is 201 tokens but the model's context is 128"),
    "exactly-the-context": (["-p", " a" * 128], "is 128 tokens but the model's context is 128"),
    "not-utf8": (["-p", "hi \udcff there"], "is not valid text"),
}


@pytest.mark.parametrize("case", sorted(PROMPTS))
def test_bad_prompts_fail_before_the_compile_and_print_nothing(zoo_run, base, case):
    flags, message = PROMPTS[case]
    assert_user_error(zoo_run("run", base[0], *flags), message)


PROMPT_FILES = {
    "empty": (b"", "has no prompts (it is empty or blank)"),
    "blank-lines": (b"\n  \n\t\n", "has no prompts"),
    "binary": (bytes(range(128, 256)) * 3, "is not UTF-8 text"),
    "nul-bytes": (b"hi\x00there\n", "is not a text file"),
    "latin1": ("caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    "one-line-too-long": (b"ok\n" + b"word " * 300 + b"\n", "prompt 2 is 301 tokens"),
}


@pytest.mark.parametrize("case", sorted(PROMPT_FILES))
def test_bad_prompts_files(zoo_run, base, tmp_path, case):
    raw, message = PROMPT_FILES[case]
    (tmp_path / "prompts.txt").write_bytes(raw)
    assert_user_error(zoo_run("run", base[0], "--prompts-file", tmp_path / "prompts.txt"), message)


@pytest.mark.parametrize("target, message", [
    ("/nonexistent/prompts.txt", "cannot read --prompts-file"),
    ("FOLDER", "is a directory"),
    ("/dev/zero", "is larger than 64 MiB"),
], ids=["missing", "folder", "endless-device"])
def test_prompts_file_that_cannot_be_read(zoo_run, base, target, message):
    target = target.replace("FOLDER", str(base[0]))
    assert_user_error(zoo_run("run", base[0], "--prompts-file", target), message)


def test_a_batch_too_big_for_memory_is_refused_before_the_compile(zoo_run, base, tmp_path, monkeypatch):
    import zoo.core.runtime.generation as generation

    monkeypatch.setattr(generation, "available_memory", lambda: 1 << 30)
    (tmp_path / "prompts.txt").write_text("hello world\n" * 2000)
    assert_user_error(zoo_run("run", base[0], "--prompts-file", tmp_path / "prompts.txt"), "a batch of 2000 prompts", "GiB")


def test_a_model_whose_context_holds_only_the_prompt(zoo_run, base, tmp_path):
    ck = folder(tmp_path, base[0], changes={"n_positions": 1})
    assert_user_error(zoo_run("run", ck, "-p", "hi"), "leaves no room to generate")


# --- options and usage -----------------------------------------------------------------------

OPTIONS = {
    "device-tpu": (["--device", "tpu"], "'tpu' is not one of 'auto', 'cpu', 'gpu'"),
    "dtype-float8": (["--dtype", "float8"], "'float8' is not one of"),
    "tokens-not-a-number": (["-n", "abc"], "'abc' is not a valid integer"),
    "tokens-negative": (["-n", "-1"], "--max-new-tokens must be at least 1"),
    "unknown-flag": (["--frobnicate"], "No such option '--frobnicate'"),
    "temperature-nan": (["--temperature", "nan"], "--temperature must be a finite number"),
    "temperature-infinite": (["--temperature", "inf"], "--temperature must be a finite number"),
    "top-p-nan": (["--top-p", "nan"], "--top-p must be in (0, 1]"),
    "top-p-above-one": (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    "top-k-zero": (["--top-k", "0"], "--top-k must be at least 1"),
    "min-p-nan": (["--min-p", "nan"], "--min-p must be in [0, 1]"),
    "repetition-infinite": (["--repetition-penalty", "inf"], "--repetition-penalty must be a finite number > 0"),
    "repetition-nan": (["--repetition-penalty", "nan"], "--repetition-penalty must be a finite number > 0"),
    "seed-negative": (["--seed", "-1"], "--seed must be a non-negative integer"),
    "stop-empty": (["--stop", ""], "--stop strings must not be empty"),
}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_bad_options_are_one_line_and_exit_1(zoo_run, base, case):
    flags, message = OPTIONS[case]
    assert_user_error(zoo_run("run", base[0], "-p", "hi", *flags), message, max_seconds=5)


USAGE = {
    "run-without-model": (["run"], "Missing argument 'MODEL'"),
    "unknown-command": (["frobnicate"], "No such command 'frobnicate'"),
    "info-without-model": (["info"], "Missing argument 'MODEL'"),
    "missing-directory": (["info", "./no/such/dir"], "unknown model './no/such/dir'"),
    "three-part-name": (["info", "a/b/c"], "unknown model 'a/b/c'"),
    "empty-name": (["info", ""], "'' is not a model name"),
    "misspelt-alias": (["info", "gtp2"], "did you mean gpt2"),
    "device-file": (["info", "/dev/null"], "unknown model '/dev/null'"),
    "root-folder": (["info", "/"], "/ has no config.json"),
    "perplexity-missing-file": (["perplexity", "TINY", "--file", "/nonexistent"], "cannot read --file"),
    "perplexity-context-zero": (["perplexity", "TINY", "--file", "TEXT", "--context", "0"], "--context must be at least 4"),
    "bench-contexts-words": (["bench", "TINY", "--contexts", "a,b"], "--contexts must be comma-separated integers"),
    "bench-new-tokens-zero": (["bench", "TINY", "--new-tokens", "0", "--no-transformers"], "--new-tokens must be at least 2"),
    "bench-moe-context-zero": (["bench-moe", "--context", "0"], "--context must be >= 1"),
    "verify-unknown": (["verify", "NoSuchArch"], "'NoSuchArch' is neither a registered architecture"),
}


@pytest.mark.parametrize("case", sorted(USAGE))
def test_usage_errors(zoo_run, base, case):
    argv, message = USAGE[case]
    text = SHARED_DATA / "texts" / "little-stories.txt"
    argv = [str(base[0]) if a == "TINY" else str(text) if a == "TEXT" else a for a in argv]
    assert_user_error(zoo_run(*argv), message, max_seconds=10)


def test_no_arguments_prints_the_help(zoo_run):
    outcome = zoo_run()
    assert outcome.code == 0 and outcome.stdout.startswith("Usage: zoo") and "run" in outcome.stdout


# --- llama2.c files ----------------------------------------------------------------------------


def test_llama2c_files_that_are_not_checkpoints(zoo_run, tmp_path):
    real = (STORIES / "stories260K.bin").read_bytes()
    cases = {
        "truncated.bin": real[:5000],
        "header-only.bin": struct.pack("<7i", 64, 172, 5, 8, 4, 512, 512),
        "negative-sizes.bin": struct.pack("<7i", -64, 172, 5, 8, 4, 512, 512) + b"\0" * 64,
    }
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        assert_user_error(zoo_run("run", tmp_path / name, "-p", "hi"), "is a file in no known format")


def test_llama2c_header_with_absurd_sizes_is_refused_by_the_config_check(zoo_run, tmp_path):
    dim, hidden, layers, heads, kv, vocab, seq = 2, 1, 2000, 1, 1, 1, 2
    floats = vocab * dim + layers * (dim + 4 * dim * dim + dim + 3 * hidden * dim) + dim + seq * (dim // heads)
    (tmp_path / "huge.bin").write_bytes(struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq) + b"\0" * 4 * floats)
    assert_user_error(zoo_run("info", tmp_path / "huge.bin"), "num_hidden_layers must be between 1 and 1024, got 2000")


def test_llama2c_tokenizer_problems(zoo_run, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(STORIES / "stories260K.bin", alone / "model.bin")
    assert_user_error(zoo_run("run", alone / "model.bin", "-p", "hi"), "no tokenizer next to")
    (tmp_path / "bad.bin").write_bytes(b"\x01\x00\x00\x00" + b"\xff" * 40)
    assert_user_error(zoo_run("run", alone / "model.bin", "-p", "hi", "--tokenizer", tmp_path / "bad.bin"), "is not a llama2.c tokenizer")
    gpt2 = SHARED_DATA / "gpt2-tokenizer"
    assert_user_error(zoo_run("run", alone / "model.bin", "-p", "hi", "--tokenizer", gpt2), "the tokenizer has 50257 tokens")
    assert_user_error(zoo_run("run", alone / "model.bin", "-p", "hi", "--weights", alone / "model.bin"), "single file already")


# --- plugins whose functions fail while a model loads ------------------------------------------


def test_plugin_functions_that_fail_at_load_are_one_line_naming_the_plugin(zoo_run, base, tmp_path, monkeypatch):
    from zoo.architectures.gpt2.config import GPT2Config
    from zoo.core.architecture import Architecture, Checkpoint, WeightFormat
    from zoo.plugins import manager

    real = manager.get_registry()

    def failing(behaviour):
        def function(*args):
            if behaviour == "raise":
                raise RuntimeError("plugin bug")
            if behaviour == "exit":
                raise SystemExit(3)
            if behaviour == "recurse":
                return function(*args)
            return behaviour  # a wrong return value

        return function

    def config_class(behaviour):
        return type("BadConfig", (GPT2Config,), {"from_hf": classmethod(lambda cls, hf: failing(behaviour)(hf))})

    tiny = base[0]
    ck = folder(tmp_path, tiny, changes={"architectures": ["BadArch"]})
    (tmp_path / "model.weird").write_bytes(b"x")
    good_config = json.loads((tiny / "config.json").read_text())
    cases = [
        ("config", "raise", "BadArch's config reader failed: RuntimeError: plugin bug"),
        ("config", "exit", "it called sys.exit(3)"),
        ("config", "recurse", "RecursionError"),
        ("config", None, "returned a NoneType, not a ModelConfig"),
        ("builder", "raise", "BadArch's model builder failed: RuntimeError: plugin bug"),
        ("builder", "exit", "it called sys.exit(3)"),
        ("mapper", "raise", "weight mapper failed on this checkpoint: RuntimeError: plugin bug"),
        ("mapper", "exit", "it called sys.exit(3)"),
        ("mapper", [1, 2], "weight mapper returned a list"),
        ("read_config", "raise", "weight format 'weird' reading model.weird failed: RuntimeError: plugin bug"),
        ("read_config", "exit", "it called sys.exit(3)"),
        ("read_config", [1], "returned a list, not a Mapping"),
        ("load", "raise", "weight format 'weird' loading model.weird failed: RuntimeError: plugin bug"),
        ("load", None, "returned a NoneType, not a Checkpoint"),
        ("load", Checkpoint(hf_config=[], tensors={}), "returned a malformed checkpoint"),
    ]
    for part, behaviour, message in cases:
        registry = manager.build_registry(manager.plugin_manager())
        plain = dict(config_class=GPT2Config, map_weights="zoo.architectures.gpt2.weights:map_weights")
        if part == "config":
            plain["config_class"] = config_class(behaviour)
        elif part == "mapper":
            plain["map_weights"] = failing(behaviour)
        arch = Architecture("BadArch", build_model=failing(behaviour) if part == "builder" else registry.architectures[
            "GPT2LMHeadModel"].build_model, **plain)
        registry.add(arch, "zoo-bad")
        fmt_read = failing(behaviour) if part == "read_config" else (lambda path: good_config)
        fmt_load = failing(behaviour) if part == "load" else (lambda path, tok: None)
        registry.add(WeightFormat("weird", lambda path: path.suffix == ".weird", fmt_load, fmt_read), "zoo-bad")
        monkeypatch.setattr(manager, "get_registry", lambda registry=registry: registry)
        target = tmp_path / "model.weird" if part in ("read_config", "load") else ck
        line = assert_user_error(zoo_run("run", target, "-p", "hi", "--tokenizer", tiny), message)
        if part not in ("mapper",):
            assert "plugin 'zoo-bad'" in line, line
    assert real is not None
