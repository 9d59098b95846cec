"""`sage plugins`: the backends with their options (JSON schemas with ``--json``, names in the table)."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from sage_core.cli import cli, plugins_listing
from sage_core.plugin import BackendSpec, hookimpl
from sage_core.plugins.manager import PluginManager


class Opaque:
    """A type JSON schema cannot express."""


class OpaqueOptions(BaseModel):
    """Options holding an arbitrary object."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    handle: Opaque | None = None
    """Something only Python can pass."""


class Store:
    """A KV backend of the tests (never created here)."""

    def __init__(self, device: str = "cpu", size: int = 1) -> None:
        self.size = size


class OddPlugin:
    """Backends without an options model and with one JSON schema cannot express."""

    @hookimpl
    def sage_backends(self, register: Callable[[BackendSpec], None]) -> None:
        """Two KV backends."""
        register(BackendSpec(kind="kv", name="undeclared", factory=Store))
        register(BackendSpec(kind="kv", name="opaque", factory=Store, options=OpaqueOptions))


def backends(listing: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The listing's backends by (kind, name)."""
    return {(b["kind"], b["name"]): b for b in listing["backends"]}


@pytest.mark.timeout(60)
def test_json_lists_every_builtin_backend_with_its_option_schema() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = backends(json.loads(result.output))
    numpy = listed[("vdb", "numpy")]["options"]
    assert numpy["additionalProperties"] is False and set(numpy["properties"]) == {"dim", "metric", "path"}
    assert numpy["properties"]["metric"]["enum"] == ["cosine", "ip", "l2"] and numpy["properties"]["metric"]["default"] == "cosine"
    assert numpy["properties"]["dim"]["description"].startswith("Vector dimension")
    assert set(listed[("embedding", "hashing")]["options"]["properties"]) == {"dim", "ngram_range", "seed"}
    for key in [("kv", "memory"), ("kv", "sqlite"), ("graph", "networkx")]:
        assert set(listed[key]["options"]["properties"]) == {"path"}


@pytest.mark.timeout(60)
def test_a_backend_without_a_model_lists_null_and_an_inexpressible_one_says_why() -> None:
    manager = PluginManager(load_entry_points=False)
    manager.register(OddPlugin(), name="odd")
    listed = backends(plugins_listing(manager))
    assert listed[("kv", "undeclared")]["options"] is None
    assert listed[("kv", "opaque")]["options"]["error"].startswith("PydanticInvalidForJsonSchema")


@pytest.mark.timeout(60)
def test_the_table_names_each_backend_s_options() -> None:
    result = CliRunner().invoke(cli, ["plugins"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    numpy_row = next(line for line in result.output.splitlines() if "│ vdb " in line and "numpy_vdb" in line)
    assert "dim, metric, path" in numpy_row
