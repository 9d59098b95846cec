"""Configuration: YAML and dicts validated with key paths and the installed choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from sage_core.config import JobConfig, SageConfig, load_config
from sage_core.errors import ConfigError
from sage_core.services.registry import ServiceRegistry

YAML = """
services:
  vdb:
    kind: vdb
    backend: numpy
    options: {dim: 8, metric: l2}
    replicas: 2
    fallback: [numpy]
    batch: {max_size: 64, max_wait_ms: 1}
    timeout_s: 5
  kv:
    kind: kv
    backend: sqlite
job:
  error_policy: skip
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sage.yaml"
    path.write_text(text)
    return path


def test_yaml_file_loads_into_validated_models(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, YAML))
    vdb = config.services["vdb"]
    assert vdb.options == {"dim": 8, "metric": "l2"} and vdb.replicas == 2
    assert vdb.fallback[0].backend == "numpy" and vdb.batch.max_size == 64
    assert config.job == JobConfig(error_policy="skip")


def test_defaults_when_nothing_is_given() -> None:
    config = load_config(None)
    assert config == SageConfig() and config.job.queue_size == 64 and config.job.batch_size == 256


def test_loaded_services_run_in_a_manager(tmp_path: Path, manager: ServiceRegistry) -> None:
    config = load_config(write(tmp_path, YAML))
    manager.register_config({k: v.model_dump() for k, v in config.services.items()})
    manager.sync["kv"].put("x", 1)
    assert manager.sync["kv"].get("x") == 1
    assert manager.metrics()["vdb"]["backends"][1]["backend"] == "numpy#1"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"services": {"vdb": {"kind": "vdb", "backend": "numpy", "batch": {"max_sise": 3}}}},
         r"services\.vdb\.batch\.max_sise: unknown key \(did you mean 'max_size'\?\); valid keys: enabled, max_in_flight, max_size, max_wait_ms"),
        ({"services": {"vdb": {"kind": "vdb", "backend": "fais"}}},
         r"services\.vdb\.backend: unknown backend 'fais' for kind 'vdb'; installed backends: .*numpy"),
        ({"services": {"vdb": {"kind": "vector", "backend": "numpy"}}},
         r"services\.vdb\.kind: unknown service kind 'vector'; installed kinds: .*embedding.*vdb"),
        ({"services": {"vdb": {"kind": "vdb"}}},
         r"services\.vdb\.backend: required for kind 'vdb'; installed backends: .*numpy"),
        ({"services": {"vdb": {"kind": "vdb", "backend": "numpy", "options": {"dimm": 3}}}},
         r"services\.vdb\.options\.dimm: unknown key \(did you mean 'dim'\?\); valid keys: dim, metric, path"),
        ({"services": {"vdb": {"kind": "vdb", "backend": "numpy", "options": {"metric": "cos"}}}},
         r"services\.vdb\.options\.metric: Input should be 'cosine', 'ip' or 'l2' \(got 'cos'\)"),
        ({"services": {"vdb": {"kind": "vdb", "backend": "numpy", "fallback": [{"backend": "numpy", "options": {"dim": 0}}]}}},
         r"services\.vdb\.fallback\[0\]\.options\.dim: Input should be greater than or equal to 1"),
        ({"services": {"e": {"kind": "embedding", "backend": "hashing", "options": {"ngram_range": [3, 1]}}}},
         r"services\.e\.options\.ngram_range: ngram_range must be \(low, high\) with 1 <= low <= high, got \(3, 1\)"),
        ({"services": {"vdb": {"kind": "vdb", "backend": "numpy", "fallback": ["nope"]}}},
         r"services\.vdb\.fallback\[0\]\.backend: unknown backend 'nope'"),
        ({"services": {"vdb": {"kind": "vdb", "backend": "numpy", "replicas": 0}}},
         r"services\.vdb\.replicas: Input should be greater than or equal to 1"),
        ({"services": {"vdb": {"kind": "vdb", "backend": "numpy", "device": "gpu"}}},
         r"services\.vdb\.device: unknown device 'gpu'; valid devices: auto, cpu, cuda, cuda:N"),
        ({"job": {"error_policy": "retry"}}, r"job\.error_policy: Input should be 'fail', 'skip' or 'dead_letter'"),
        ({"jobs": {}}, r"jobs: unknown key \(did you mean 'job'\?\); valid keys: job, services"),
    ],
)
def test_errors_name_the_key_path_and_the_valid_choices(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config)


def test_missing_file_and_non_mapping_yaml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))


def test_factory_may_be_an_import_string(manager: ServiceRegistry) -> None:
    manager.register_config({"kv": {"factory": "sage_core.builtin.kv_stores:MemoryKVStore", "kind": "kv"}})
    manager.sync["kv"].put("k", "v")
    assert manager.sync["kv"].get("k") == "v"


def test_batch_false_turns_batching_off(manager: ServiceRegistry) -> None:
    manager.register("vdb", kind="vdb", backend="numpy", options={"dim": 4}, batch=False)
    manager.sync["vdb"].add([[1.0, 0, 0, 0]], ids=["a"])
    assert manager.sync["vdb"].search(query=[1.0, 0, 0, 0], top_k=1)[0].id == "a"
    assert manager.metrics()["vdb"]["batch"] == {}
