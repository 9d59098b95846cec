"""Fixtures for the Ray runtime tests: one two-node local cluster for the whole session.

The cluster binds 127.0.0.1, runs without token authentication and starts only when a test
needs it (about 15 s on a 2-core machine). ``environment`` gives each flow test a factory of
environments, parametrised over the local and the Ray runtime.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray binds 127.0.0.1 (read when ray is imported)

from sage_core import LocalEnvironment, SinkFunction  # noqa: E402
from sage_core.api.environment import BaseEnvironment  # noqa: E402

NODE_OBJECT_STORE_BYTES = 128 * 1024 * 1024


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Ship this directory's test modules to Ray workers by value (workers need not import them)."""
    try:
        from ray import cloudpickle
    except ImportError:
        return
    here = Path(__file__).parent
    for module in {item.module for item in items if isinstance(item, pytest.Function)}:
        if module is not None and Path(module.__file__).parent == here and module.__name__ in sys.modules:
            cloudpickle.register_pickle_by_value(module)
    if __name__ in sys.modules:
        cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """Two Ray nodes on 127.0.0.1, one CPU each: ``node_a`` (the head, with the machine's GPUs) and
    ``node_b``; the driver joins."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from sage_core.services.devices import gpu_count

    common = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": NODE_OBJECT_STORE_BYTES}
    cluster = Cluster()
    cluster.add_node(resources={"node_a": 8}, num_gpus=gpu_count(), include_dashboard=False, **common)
    cluster.add_node(resources={"node_b": 8}, **common)
    ray.init(address=cluster.address, logging_level="WARNING")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def node_ids(ray_cluster: Any) -> dict[str, str]:
    """Ray node id by custom resource (``node_a``, ``node_b``)."""
    import ray

    ids = {}
    for node in ray.nodes():
        for name in ("node_a", "node_b"):
            if node["Alive"] and name in node["Resources"]:
                ids[name] = node["NodeID"]
    return ids


EnvironmentFactory = Callable[..., BaseEnvironment]


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def environment(request: pytest.FixtureRequest) -> Iterator[EnvironmentFactory]:
    """``environment(name, config=None)`` on the local runtime, then on Ray; closed after the test."""
    made: list[BaseEnvironment] = []

    def make(name: str, config: Any = None, **options: Any) -> BaseEnvironment:
        if request.param == "ray":
            from sage_core import RemoteEnvironment

            cluster = request.getfixturevalue("ray_cluster")
            env: BaseEnvironment = RemoteEnvironment(name, address=cluster.address, config=config, **options)
        else:
            env = LocalEnvironment(name, config=config)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


class JsonLines(SinkFunction):
    """Appends each record as a JSON line to a file of its own in ``directory`` (any runtime)."""

    def __init__(self, directory: Path) -> None:
        self.directory = str(directory)
        self.file: Any = None

    def open(self) -> None:
        name = f"{self.ctx.operator}-{self.ctx.instance}-{os.getpid()}-{id(self)}.jsonl"
        self.file = open(os.path.join(self.directory, name), "a", buffering=1)

    def execute(self, record: Any) -> None:
        self.file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def read_lines(directory: Path) -> list[Any]:
    """Every record the :class:`JsonLines` sinks wrote into ``directory``."""
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl")) for line in path.read_text().splitlines()]


@pytest.fixture
def written(tmp_path: Path) -> tuple[Callable[[], JsonLines], Callable[[], list[Any]]]:
    """``(make_sink, read)``: a sink writing into a fresh directory, and the records written there."""
    directory = tmp_path / "sink"
    directory.mkdir()
    return (lambda: JsonLines(directory)), (lambda: read_lines(directory))
