"""Third-party plugins through the `zoo` entry-point group: good, broken and clashing ones."""

from __future__ import annotations

import json

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


def test_two_plugins_registering_one_name_is_an_error_naming_both(tmp_path):
    make_plugin(tmp_path, "zoo-clash", "zoo_clash", CLASH)
    assert_one_line_error(zoo("list", env=env_with(tmp_path)), "GPT2LMHeadModel", "builtin:gpt2", "zoo-clash")


def test_zoo_plugins_variable_limits_loading(tmp_path):
    make_plugin(tmp_path, "zoo-good", "zoo_good", GOOD)
    result = zoo("list", env={**env_with(tmp_path), "ZOO_PLUGINS": ""})
    assert "my-gpt2" not in result.stdout and "gpt2" in result.stdout
