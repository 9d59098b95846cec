"""Meta-tests: the documentation and the packaging keep up with the code."""

from __future__ import annotations

import inspect
import tomllib
import typing
from pathlib import Path

import pytest

import sage_core
import sage_core.plugin
import sage_core.testing
from sage_core.plugins import hookspecs

ROOT = Path(__file__).parent.parent.parent
HOOKS = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("sage_")]


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.__name__)
def test_every_hook_is_documented_in_the_readme_with_its_signature(hook) -> None:
    readme = (ROOT / "README.md").read_text()
    params = ", ".join(inspect.signature(hook).parameters)
    assert f"{hook.__name__}({params})" in readme
    assert hook.__doc__ and len(hook.__doc__.strip()) > 20


PUBLIC = [(sage_core, name) for name in sage_core.__all__] + [(sage_core.plugin, name) for name in sage_core.plugin.__all__]


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=lambda v: getattr(v, "__name__", v))
def test_every_public_name_resolves_and_is_documented(module, name: str) -> None:
    value = getattr(module, name)
    if (callable(value) or inspect.isclass(value)) and typing.get_origin(value) is None:  # not a type alias
        assert inspect.getdoc(value), f"{module.__name__}.{name} has no docstring"


@pytest.mark.parametrize("pyproject", sorted(ROOT.glob("plugins/*/pyproject.toml")), ids=lambda p: p.parent.name)
def test_every_plugin_package_declares_the_sage_entry_point_group(pyproject: Path) -> None:
    project = tomllib.loads(pyproject.read_text())["project"]
    assert project["entry-points"]["sage"], f"{pyproject} declares no [project.entry-points.sage]"
    assert "sage-core" in " ".join(project["dependencies"])


CONTRACTS = [getattr(sage_core.plugin, name) for name in ("VectorStore", "KVStore", "GraphStore", "Memory", "Embedder", "LLM")]


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.__name__)
def test_every_contract_method_is_documented_and_the_readme_names_its_suite(contract: type) -> None:
    methods = [name for name, _ in inspect.getmembers(contract, inspect.isfunction) if not name.startswith("_")]
    undocumented = [name for name in methods if len(inspect.getdoc(getattr(contract, name)) or "") < 10]
    assert methods and not undocumented, f"{contract.__name__} methods without a docstring: {undocumented}"
    suite = f"{contract.__name__}Contract"
    assert hasattr(sage_core.testing, suite), f"sage_core.testing has no {suite}"
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    assert any(f"`{contract.__name__}`" in row and f"`{suite}`" in row for row in rows), (
        f"the README's plugin guide has no row naming {contract.__name__} and {suite}"
    )
