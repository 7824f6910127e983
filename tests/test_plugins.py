"""Third-party plugins through the `zoo` entry-point group: good, broken and clashing ones."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_one_line_error, make_plugin, zoo

GOOD = '''
from zoo.core.architecture import ModelAlias
from zoo.plugins.hookspecs import hookimpl

@hookimpl
def register_models(register):
    register(ModelAlias("my-gpt2", "someone/my-gpt2", "GPT2LMHeadModel", "a fine-tune", 124_439_808))
'''

BROKEN_IMPORT = "raise ImportError('this plugin needs a package that is not installed')\n"

BROKEN_HOOK = '''
from zoo.plugins.hookspecs import hookimpl

@hookimpl
def register_models(register):
    raise RuntimeError("bug in plugin")
'''

CLASH = '''
from zoo.core.architecture import Architecture
from zoo.architectures.gpt2.config import GPT2Config
from zoo.plugins.hookspecs import hookimpl

@hookimpl
def register_architectures(register):
    register(Architecture("GPT2LMHeadModel", GPT2Config, "x:y", "x:z"))
'''


def env_with(site) -> dict[str, str]:
    import os

    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_third_party_alias_is_listed_with_its_plugin(tmp_path):
    make_plugin(tmp_path, "zoo-good", "zoo_good", GOOD)
    rows = {r["name"]: r for r in json.loads(zoo("list", "--json", env=env_with(tmp_path)).stdout)}
    assert rows["my-gpt2"]["plugin"] == "zoo-good"
    assert rows["my-gpt2"]["source"] == "hf://someone/my-gpt2"
    assert "gpt2" in rows


def test_plugin_failing_at_import_is_one_warning_and_the_rest_works(tmp_path):
    make_plugin(tmp_path, "zoo-broken", "zoo_broken", BROKEN_IMPORT)
    make_plugin(tmp_path, "zoo-good", "zoo_good", GOOD)
    result = zoo("list", env=env_with(tmp_path))
    assert result.returncode == 0
    warnings = [l for l in result.stderr.splitlines() if "zoo-broken" in l]
    assert len(warnings) == 1 and "failed to import" in warnings[0]
    assert "Traceback" not in result.stderr
    assert "gpt2" in result.stdout and "my-gpt2" in result.stdout


def test_plugin_failing_in_a_hook_is_skipped(tmp_path):
    make_plugin(tmp_path, "zoo-buggy", "zoo_buggy", BROKEN_HOOK)
    result = zoo("list", env=env_with(tmp_path))
    assert result.returncode == 0
    assert "zoo-buggy" in result.stderr and "bug in plugin" in result.stderr
    assert "gpt2" in result.stdout


def test_a_name_taken_twice_keeps_the_first_record_and_warns(tmp_path):
    make_plugin(tmp_path, "zoo-clash", "zoo_clash", CLASH)
    result = zoo("list", env=env_with(tmp_path))
    assert result.returncode == 0 and "gpt2" in result.stdout
    warning = [l for l in result.stderr.splitlines() if "zoo-clash" in l]
    assert len(warning) == 1 and "builtin:gpt2" in warning[0] and "GPT2LMHeadModel" in warning[0]
    rows = {r["name"]: r for r in json.loads(zoo("list", "--json", env=env_with(tmp_path)).stdout)}
    assert rows["GPT2LMHeadModel"]["plugin"] == "builtin:gpt2"


def test_asking_for_a_name_taken_twice_is_an_error_naming_both(tmp_path):
    make_plugin(tmp_path, "zoo-clash", "zoo_clash", CLASH)
    assert_one_line_error(zoo("info", "gpt2", env=env_with(tmp_path)), "GPT2LMHeadModel", "builtin:gpt2", "zoo-clash")


def test_strict_plugins_turns_warnings_into_errors(tmp_path):
    make_plugin(tmp_path, "zoo-broken", "zoo_broken", BROKEN_IMPORT)
    result = zoo("list", env={**env_with(tmp_path), "ZOO_STRICT_PLUGINS": "1"})
    assert_one_line_error(result, "zoo-broken", "ZOO_STRICT_PLUGINS")
    assert result.returncode == 1


HOSTILE = {
    "exits": "import sys\nsys.exit(3)\n",
    "bad-signature": (
        "from zoo.plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef register_models(register, surprise):\n    pass\n"
    ),
    "malformed-record": (
        "from zoo.core.architecture import ModelAlias\nfrom zoo.plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef register_models(register):\n    register(ModelAlias('', 'no-slash', 'X'))\n    register('junk')\n"
    ),
    "exits-in-hook": (
        "import sys\nfrom zoo.plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef register_models(register):\n    sys.exit(4)\n"
    ),
    "raising-matcher": (
        "from zoo.core.architecture import WeightFormat\nfrom zoo.plugins.hookspecs import hookimpl\n\n"
        "def boom(path):\n    raise RuntimeError('matcher bug')\n\n"
        "@hookimpl\ndef register_weight_formats(register):\n"
        "    register(WeightFormat('boom', boom, boom, boom))\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_misbehaving_plugin_is_one_warning_and_zoo_keeps_working(tmp_path, kind):
    make_plugin(tmp_path, f"zoo-{kind}", f"zoo_{kind.replace('-', '_')}", HOSTILE[kind])
    result = zoo("list", env=env_with(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "gpt2" in result.stdout
    if kind != "raising-matcher":  # a matcher only runs when a file is resolved
        assert [l for l in result.stderr.splitlines() if f"zoo-{kind}" in l], result.stderr


def test_a_raising_matcher_is_a_warning_when_a_file_is_resolved(tmp_path):
    make_plugin(tmp_path, "zoo-raising-matcher", "zoo_raising_matcher", HOSTILE["raising-matcher"])
    stray = tmp_path / "weights.bin"
    stray.write_bytes(b"\x00" * 64)
    result = zoo("info", str(stray), env=env_with(tmp_path))
    assert_one_line_error(result, "no known format")
    assert "matcher bug" in result.stderr


COMMAND = '''
import click
from zoo.plugins.hookspecs import hookimpl

@click.command("hello")
@click.argument("name")
def hello(name):
    """Say hello from a plugin."""
    click.echo(f"hello {name}")

@hookimpl
def register_commands(register):
    register(hello)
'''

BROKEN_COMMAND = '''
from zoo.plugins.hookspecs import hookimpl

@hookimpl
def register_commands(register):
    raise RuntimeError("command hook bug")
'''


def test_a_plugin_command_is_listed_and_runs(tmp_path):
    make_plugin(tmp_path, "zoo-hello", "zoo_hello", COMMAND)
    assert "hello" in zoo("--help", env=env_with(tmp_path)).stdout
    result = zoo("hello", "world", env=env_with(tmp_path))
    assert result.returncode == 0 and result.stdout == "hello world\n"


def test_a_plugin_whose_command_hook_raises_leaves_the_cli_working(tmp_path):
    make_plugin(tmp_path, "zoo-broken-command", "zoo_broken_command", BROKEN_COMMAND)
    result = zoo("--help", env=env_with(tmp_path))
    assert result.returncode == 0 and "run" in result.stdout
    assert "zoo-broken-command" in result.stderr and "command hook bug" in result.stderr
    assert zoo("list", env=env_with(tmp_path)).returncode == 0


def test_zoo_plugins_variable_limits_loading(tmp_path):
    make_plugin(tmp_path, "zoo-good", "zoo_good", GOOD)
    result = zoo("list", env={**env_with(tmp_path), "ZOO_PLUGINS": ""})
    assert "my-gpt2" not in result.stdout and "gpt2" in result.stdout
