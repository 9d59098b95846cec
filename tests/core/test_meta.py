"""Meta-tests: the documentation and the packaging keep up with the code."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import pytest

import sage_core
from sage_core.plugins import hookspecs

ROOT = Path(__file__).parent.parent.parent
HOOKS = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("sage_")]


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.__name__)
def test_every_hook_is_documented_in_the_readme_with_its_signature(hook) -> None:
    readme = (ROOT / "README.md").read_text()
    params = ", ".join(inspect.signature(hook).parameters)
    assert f"{hook.__name__}({params})" in readme
    assert hook.__doc__ and len(hook.__doc__.strip()) > 20


@pytest.mark.parametrize("name", sage_core.__all__)
def test_every_public_name_resolves_and_is_documented(name: str) -> None:
    value = getattr(sage_core, name)
    if callable(value) or inspect.isclass(value):
        assert inspect.getdoc(value), f"sage_core.{name} has no docstring"


@pytest.mark.parametrize("pyproject", sorted(ROOT.glob("plugins/*/pyproject.toml")), ids=lambda p: p.parent.name)
def test_every_plugin_package_declares_the_sage_entry_point_group(pyproject: Path) -> None:
    project = tomllib.loads(pyproject.read_text())["project"]
    assert project["entry-points"]["sage"], f"{pyproject} declares no [project.entry-points.sage]"
    assert "sage-core" in " ".join(project["dependencies"])
