"""Plugin discovery: installed packages, broken ones, unknown hooks, the CLI listing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sage_core.plugin import hookimpl
from sage_core.cli import cli
from sage_core.plugins.manager import DEFAULT_PLUGINS, PluginManager

PACKAGES = Path(__file__).parent.parent / "plugin_packages"


@pytest.fixture(scope="module")
def installed_plugins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example and the broken plugin installed into a directory of their own, never into this venv.

    Returns the environment of a Python process that sees them (``PYTHONPATH``: their entry points
    are found through the ``.dist-info`` there).
    """
    sources, target = tmp_path_factory.mktemp("sources"), tmp_path_factory.mktemp("site")
    names = ("sage_example_plugin", "sage_broken_plugin")
    for name in names:
        shutil.copytree(PACKAGES / name, sources / name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "-q", "install", "--no-deps", "--no-build-isolation", "--target", str(target),
         *(str(sources / name) for name in names)],
        check=True,
    )
    return {**os.environ, "PYTHONPATH": str(target)}


def run(env: dict[str, str], *args: str) -> str:
    """The output of ``python ARGS`` in a process that sees the installed plugins."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True, env=env).stdout


def sage_plugins_json(env: dict[str, str]) -> list[dict]:
    return json.loads(run(env, "-m", "sage_core", "plugins", "--json"))["plugins"]


def test_installed_plugin_is_discovered_with_version_and_hooks(installed_plugins: dict[str, str]) -> None:
    rows = {row["name"]: row for row in sage_plugins_json(installed_plugins)}
    example = rows["example"]
    assert example["version"] == "1.2.3" and example["error"] is None
    assert example["hooks"] == ["sage_backends", "sage_register_commands", "sage_services"]


def test_broken_plugin_is_reported_and_the_core_still_starts(installed_plugins: dict[str, str]) -> None:
    rows = {row["name"]: row for row in sage_plugins_json(installed_plugins)}
    assert "a_module_that_is_not_installed" in rows["broken"]["error"]
    assert rows["example"]["error"] is None and all(rows[m]["error"] is None for m in DEFAULT_PLUGINS)


def test_plugin_backend_serves_through_config(installed_plugins: dict[str, str]) -> None:
    code = (
        "from sage_core import LocalEnvironment\n"
        "env = LocalEnvironment('p')\n"
        "env.register_service('shout', kind='text', backend='upper', options={'suffix': '!'})\n"
        "got = []\n"
        "class Step:\n"
        "    pass\n"
        "from sage_core import MapFunction\n"
        "class Shout(MapFunction):\n"
        "    def execute(self, data):\n"
        "        return self.call_service['shout'].transform(text=data)\n"
        "env.from_batch(['hi']).map(Shout).sink(got.append)\n"
        "env.submit(); env.close(); print(got[0])\n"
    )
    assert run(installed_plugins, "-c", code).strip() == "HI!"


def test_sage_plugins_json_lists_kinds_and_backends(installed_plugins: dict[str, str]) -> None:
    listing = json.loads(run(installed_plugins, "-m", "sage_core", "plugins", "--json"))
    kinds = {k["name"]: k for k in listing["kinds"]}
    assert kinds["text"]["contract"] == "sage_example_plugin.TextTransform"
    assert "search" in kinds["vdb"]["sharded_methods"] and kinds["vdb"]["write_methods"]
    backends = {(b["kind"], b["name"]): b for b in listing["backends"]}
    assert backends[("text", "upper")]["plugin"] == "example"
    assert backends[("vdb", "numpy")]["devices"] == ["cpu"]


def test_plugin_command_is_added_to_the_cli(installed_plugins: dict[str, str]) -> None:
    assert run(installed_plugins, "-m", "sage_core", "shout").strip() == "HELLO FROM A PLUGIN"


class UnknownHook:
    @hookimpl
    def sage_not_a_hook(self) -> None:
        """Implements a hook that does not exist."""


def test_unknown_hook_is_reported_with_the_plugin_name() -> None:
    manager = PluginManager(load_entry_points=False)
    manager.register(UnknownHook(), name="typo-plugin")
    info = next(i for i in manager.plugins() if i.name == "typo-plugin")
    assert "sage_not_a_hook" in info.error
    assert not manager.pm.is_registered(manager.pm.get_plugin("typo-plugin"))


def test_allowlist_loads_only_named_entry_point_plugins(installed_plugins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGE_LOAD_PLUGINS", "")
    names = {i.name for i in PluginManager().plugins()}
    assert names == set(DEFAULT_PLUGINS)


def test_every_builtin_plugin_registers_without_errors() -> None:
    manager = PluginManager(load_entry_points=False)
    assert all(info.error is None and info.hooks for info in manager.plugins())
    assert {"vdb", "embedding", "llm", "kv", "graph", "memory"} <= set(manager.kinds())


def test_plugins_command_prints_a_table() -> None:
    result = CliRunner().invoke(cli, ["plugins"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "sage_core.builtin.numpy_vdb" in result.output
