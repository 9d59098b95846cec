"""RemoteEnvironment checks that need no Ray cluster: the optional dependency and the config."""

from __future__ import annotations

import sys

import pytest

from sage_core import ConfigError, RemoteEnvironment
from sage_core.services.config import parse_service
from sage_core.plugins.manager import get_plugin_manager


def test_missing_ray_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "sage-core\[ray\]"'):
        RemoteEnvironment("no-ray")


def test_service_resources_are_validated_with_the_key_path() -> None:
    with pytest.raises(ConfigError, match=r"services.vdb.resources.num_gpu: unknown key \(did you mean 'num_gpus'\?\)"):
        parse_service("vdb", {"kind": "vdb", "backend": "numpy", "resources": {"num_gpu": 1}}, get_plugin_manager())


def test_service_resources_parse_cpus_gpus_and_custom_resources() -> None:
    config = parse_service(
        "vdb",
        {"kind": "vdb", "backend": "numpy", "resources": {"num_cpus": 0.5, "num_gpus": 1, "custom": {"node_a": 1}},
         "fallback": [{"backend": "numpy", "resources": {"num_cpus": 1}}]},
        get_plugin_manager(),
    )
    assert (config.resources.num_cpus, config.resources.num_gpus, config.resources.custom) == (0.5, 1, {"node_a": 1})
    assert config.fallback[0].resources.num_cpus == 1 and config.fallback[0].resources.num_gpus is None
