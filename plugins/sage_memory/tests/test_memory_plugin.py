"""The plugin: the ``sage_memory`` backend, and stores chosen by config from any installed backend."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from sage_core import ConfigError
from sage_core.plugin import BackendSpec, get_plugin_manager, hookimpl
from sage_memory import MemoryService


def test_memory_backend_is_offered_through_the_plugin_manager() -> None:
    spec = get_plugin_manager().backend("memory", "sage_memory")

    memory = spec.factory(device="cpu", retrieval={"graph_weight": 0.25})
    try:
        assert isinstance(memory, MemoryService)
        assert memory.config.retrieval.graph_weight == 0.25
        memory_id = memory.store_memory("made by the backend factory")
        assert memory.get(memory_id)["content"] == "made by the backend factory"
    finally:
        memory.close()


def test_entry_point_is_declared_in_the_sage_group() -> None:
    info = {p.name: p for p in get_plugin_manager().plugins()}["memory"]

    assert info.error is None and "sage_backends" in info.hooks


@pytest.mark.parametrize("spec", get_plugin_manager().backends("vdb"), ids=lambda s: s.name)
def test_every_installed_cpu_vector_store_can_serve_the_memory_and_persist(spec: BackendSpec, tmp_path: Path) -> None:
    if "cpu" not in spec.devices:
        pytest.skip(f"vdb backend {spec.name!r} has no CPU mode")
    config = {"vector": {"backend": spec.name, "device": "cpu"}, "path": tmp_path}
    with MemoryService(**config) as memory:
        wanted = memory.store_memory("the quick brown fox jumps", memory_type="fact")
        memory.store_memory("an unrelated sentence about tax law", memory_type="fact")
        memory.store_memory("the quick brown fox again", session_id="other", memory_type="fact")
        memory.delete(memory.store_memory("quick brown fox, soon deleted"))
        assert memory.retrieve_memories(query="quick brown fox", top_k=1)[0]["id"] == wanted
        memory.save()

    with MemoryService(**config) as reopened:
        found = reopened.retrieve_memories(query="quick brown fox", top_k=5, memory_type="fact")
        assert [r["id"] for r in found][0] == wanted and len(found) == 2
        assert reopened.stores.vector.count() == 3


def test_unknown_backend_names_the_part_and_lists_installed_choices() -> None:
    with pytest.raises(ConfigError, match=r"vector\.backend: unknown backend 'nope'.*numpy"):
        MemoryService(vector={"backend": "nope"})


def test_bad_backend_options_name_the_part() -> None:
    with pytest.raises(ConfigError, match=r"embedder\.options .* rejected by backend 'hashing'"):
        MemoryService(embedder={"backend": "hashing", "options": {"dimension": 8}})


def test_store_options_reach_the_backend() -> None:
    with MemoryService(embedder={"options": {"dim": 64}}, vector={"options": {"metric": "ip"}}) as memory:
        memory.store_memory("sized by the embedder")
        assert memory.stores.vector.dim == 64
        assert memory.stores.vector.metric == "ip"


class JsonLinesKV:
    """A third party's KV backend: a dict persisted as JSON lines (a real, small implementation)."""

    def __init__(self, device: str = "cpu") -> None:
        self.data: dict[str, str] = {}
        self.lock = threading.Lock()
        self.puts = 0

    def put(self, key: str, value: Any) -> None:
        with self.lock:
            self.data[key] = json.dumps(value)
            self.puts += 1

    def get(self, key: str, default: Any = None) -> Any:
        text = self.data.get(key)
        return default if text is None else json.loads(text)

    def delete(self, key: str) -> bool:
        with self.lock:
            return self.data.pop(key, None) is not None

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in list(self.data) if k.startswith(prefix))

    def count(self) -> int:
        return len(self.data)

    def save(self, path: str) -> None:
        Path(path).write_text("".join(json.dumps([k, v]) + "\n" for k, v in sorted(self.data.items())))

    def load(self, path: str) -> None:
        self.data = dict(json.loads(line) for line in Path(path).read_text().splitlines())

    def close(self) -> None:
        pass


class ThirdPartyPlugin:
    """Offers :class:`JsonLinesKV` as the ``jsonl`` KV backend."""

    @hookimpl
    def sage_backends(self, register) -> None:
        register(BackendSpec(kind="kv", name="jsonl", factory=JsonLinesKV, description="test plugin"))


@pytest.fixture
def third_party_kv() -> Iterator[str]:
    """The ``jsonl`` KV backend registered in-process, unregistered afterwards."""
    manager = get_plugin_manager()
    manager.register(ThirdPartyPlugin(), name="test-jsonl-kv")
    yield "jsonl"
    manager.unregister("test-jsonl-kv")


def test_a_third_party_kv_backend_chosen_by_config_holds_the_records(third_party_kv: str, tmp_path: Path) -> None:
    with MemoryService(kv={"backend": third_party_kv}, path=tmp_path) as memory:
        memory_id = memory.store_memory("kept by a plugin's store", metadata={"via": "jsonl"})
        assert isinstance(memory.stores.kv, JsonLinesKV) and memory.stores.kv.puts == 1

    with MemoryService(kv={"backend": third_party_kv}, path=tmp_path) as reopened:
        assert reopened.get(memory_id)["metadata"] == {"via": "jsonl"}
