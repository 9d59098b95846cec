"""A memory whose parts are registered services, named in its options: the service layer applies to its stores."""

from __future__ import annotations

import threading
from typing import Any, Iterator, Mapping

import pytest

from sage_core import BaseFunction, ConfigError, LocalEnvironment
from sage_core.builtin.kv_stores import MemoryKVStore
from sage_core.errors import BackendUnavailable, ServiceTimeout
from sage_core.services.registry import ServiceRegistry

STORES = {
    "mem_kv": {"kind": "kv", "backend": "sqlite"},
    "mem_vectors": {"kind": "vdb", "backend": "numpy"},
    "mem_graph": {"kind": "graph", "backend": "networkx"},
    "embedder": {"kind": "embedding", "backend": "hashing"},
}
OVER_SERVICES = {
    "kv": {"service": "mem_kv"},
    "vector": {"service": "mem_vectors"},
    "graph": {"service": "mem_graph"},
    "embedder": {"service": "embedder"},
}


class Remember(BaseFunction):
    """Stores a note in its session, then asks the memory for it by its text."""

    def execute(self, data: dict[str, Any]) -> tuple[str, str]:
        memory = self.call_service["memory"]
        stored = memory.store_memory(content=data["content"], session_id=data["session"])
        found = memory.retrieve_memories(query=data["content"], session_id=data["session"], top_k=1)
        return stored, found[0]["id"]


class NoGpuVectors:
    """A vector backend that cannot run here, as a GPU store on a machine without a GPU."""

    def __init__(self) -> None:
        raise BackendUnavailable("no CUDA device is visible")


class GatedKV(MemoryKVStore):
    """The built-in dict KV store whose ``put_many`` waits until the test opens ``gate``."""

    gate = threading.Event()

    def put_many(self, items: Mapping[str, Any]) -> None:
        GatedKV.gate.wait()
        super().put_many(items)


@pytest.fixture
def registry() -> Iterator[ServiceRegistry]:
    """A service registry, closed after the test."""
    services = ServiceRegistry(job_name="memory-over-services")
    yield services
    services.close()


def register_stores(services: ServiceRegistry, **changes: dict[str, Any]) -> None:
    """The four part services, with ``changes`` replacing some of them."""
    for name, options in {**STORES, **changes}.items():
        services.register(name, **options)


def test_a_pipeline_memory_reaches_its_stores_through_the_service_layer() -> None:
    env = LocalEnvironment("memory-over-services")
    try:
        env.register_service("memory", kind="memory", backend="sage_memory", options=OVER_SERVICES)  # before its stores
        register_stores(env.services)
        notes = [{"content": f"note {i} about topic {i * 7}", "session": f"user-{i % 3}"} for i in range(24)]
        pairs: list[tuple[str, str]] = []
        env.from_batch(notes).map(Remember, parallelism=3).sink(pairs.append)
        job = env.submit(autostop=True)

        assert job.status == "finished", job.summary()
        assert len(pairs) == len(notes) and all(stored == found for stored, found in pairs)
        metrics = env.services.metrics()
        assert metrics["mem_vectors"]["calls"] == 2 * len(notes)  # one upsert and one search per note
        assert metrics["mem_vectors"]["batch"]["search"]["requests"] == len(notes)
        assert metrics["embedder"]["batch"]["embed"]["requests"] == 2 * len(notes)  # content, then query
        assert metrics["mem_graph"]["served_by"] == {"networkx": len(notes)}
        assert env.services.sync["memory"].count() == len(notes)
        assert env.services.sync["mem_kv"].count() == len(notes)  # the records are in the KV service
    finally:
        env.close()


def test_a_fallback_of_a_store_service_serves_when_its_primary_cannot_start(registry: ServiceRegistry) -> None:
    registry.register("memory", kind="memory", backend="sage_memory", options=OVER_SERVICES)
    register_stores(registry, mem_vectors={"kind": "vdb", "factory": NoGpuVectors, "fallback": ["numpy"]})
    memory = registry.sync["memory"]

    stored = memory.store_memory(content="kept by the fallback", session_id="s")

    assert memory.retrieve_memories(query="kept by the fallback", session_id="s", top_k=1)[0]["id"] == stored
    vectors = registry.metrics()["mem_vectors"]
    assert vectors["served_by"] == {"NoGpuVectors": 0, "numpy": 2}
    assert [failure["backend"] for failure in vectors["start_failures"]] == ["NoGpuVectors"]


def test_a_store_call_past_its_timeout_fails_the_memory_call_with_service_timeout(registry: ServiceRegistry) -> None:
    registry.register("memory", kind="memory", backend="sage_memory", options=OVER_SERVICES)
    register_stores(registry, mem_kv={"kind": "kv", "factory": GatedKV, "timeout_s": 0.2})
    memory = registry.sync["memory"]
    GatedKV.gate.clear()
    try:
        with pytest.raises(ServiceTimeout, match=r"'mem_kv'.*took longer than 0\.2s") as info:
            memory.store_memory(content="the KV store is stuck", session_id="s")
    finally:
        GatedKV.gate.set()
    assert isinstance(info.value.cause, ServiceTimeout) and info.value.cause.service == "mem_kv"
    assert memory.count() == 0  # the memory undid the write
    assert registry.metrics()["mem_kv"]["timeouts"] == 1


def test_an_unknown_store_service_is_a_config_error_listing_the_registered_services(registry: ServiceRegistry) -> None:
    registry.register("memory", kind="memory", backend="sage_memory", options={**OVER_SERVICES, "vector": {"service": "vectors"}})
    register_stores(registry)

    with pytest.raises(ConfigError, match=r"services\.memory\.options: vector\.service: no service named 'vectors'; registered services: embedder \(embedding\), mem_graph \(graph\), mem_kv \(kv\), mem_vectors \(vdb\), memory \(memory\)"):
        registry.start()


def test_a_store_service_of_the_wrong_kind_is_a_config_error(registry: ServiceRegistry) -> None:
    registry.register("memory", kind="memory", backend="sage_memory", options={**OVER_SERVICES, "graph": {"service": "mem_kv"}})
    register_stores(registry)

    with pytest.raises(ConfigError, match=r"services\.memory\.options: graph\.service: service 'mem_kv' is of kind 'kv', the memory's graph needs kind 'graph'"):
        registry.sync["memory"].count()


def test_a_memory_in_its_own_process_cannot_reach_store_services(registry: ServiceRegistry) -> None:
    registry.register("memory", kind="memory", backend="sage_memory", isolation="process", options=OVER_SERVICES)
    register_stores(registry)

    with pytest.raises(ConfigError, match=r"services\.memory\.isolation: a backend in its own process cannot call other services"):
        registry.sync["memory"].count()


def test_a_memory_in_its_own_process_with_its_own_stores_still_works(registry: ServiceRegistry) -> None:
    registry.register("memory", kind="memory", backend="sage_memory", isolation="process")
    memory = registry.sync["memory"]

    stored = memory.store_memory(content="owned stores travel with the memory", session_id="s")

    assert memory.get(stored)["content"] == "owned stores travel with the memory"


def test_persistence_needs_the_stores_owned(registry: ServiceRegistry, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"services\.memory\.options.*path: a persistent memory snapshots the stores it owns, but kv\.service='mem_kv'"):
        registry.register("memory", kind="memory", backend="sage_memory", options={"kv": {"service": "mem_kv"}, "path": str(tmp_path)})


def test_a_part_names_a_service_or_a_backend_not_both(registry: ServiceRegistry) -> None:
    with pytest.raises(ConfigError, match=r"services\.memory\.options\.kv.*either service .* or backend/options/device"):
        registry.register("memory", kind="memory", backend="sage_memory", options={"kv": {"service": "mem_kv", "backend": "sqlite"}})
