"""Replicas share load; shards split data and merge search results exactly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import zlib
from concurrent.futures import wait

import numpy as np
import pytest

from sage_core.builtin.numpy_vdb import NumpyVectorStore
from sage_core.errors import ConfigError
from sage_core.plugins.sharding import stable_shard
from sage_core.services.registry import ServiceRegistry
from sage_core.testing import unit_vectors


@pytest.fixture
def data() -> tuple[np.ndarray, list[str], list[dict]]:
    vectors = unit_vectors(600, 16, seed=5)
    ids = [f"doc-{i}" for i in range(600)]
    return vectors, ids, [{"group": i % 4} for i in range(600)]


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_sharded_search_matches_single_store(manager: ServiceRegistry, data, metric: str) -> None:
    vectors, ids, metadata = data
    manager.register("sharded", kind="vdb", backend="numpy", shards=4, options={"dim": 16, "metric": metric})
    single = NumpyVectorStore(dim=16, metric=metric)
    manager.sync["sharded"].add(vectors, ids=ids, metadata=metadata)
    single.add(vectors, ids=ids, metadata=metadata)
    queries = unit_vectors(20, 16, seed=9)
    for filter in (None, {"group": [1, 3]}):
        got = manager.sync["sharded"].search(queries, top_k=15, filter=filter)
        want = single.search(queries, top_k=15, filter=filter)
        assert [[h.id for h in row] for row in got] == [[h.id for h in row] for row in want]
        np.testing.assert_allclose([[h.score for h in r] for r in got], [[h.score for h in r] for r in want], rtol=1e-6)
    one = manager.sync["sharded"].search(queries[0], top_k=5)
    assert [h.id for h in one] == [h.id for h in single.search(queries[0], top_k=5)]


def test_sharded_writes_are_routed_by_stable_id_hash(manager: ServiceRegistry, data) -> None:
    vectors, ids, _ = data
    manager.register("sharded", kind="vdb", backend="numpy", shards=3, options={"dim": 16})
    proxy = manager.sync["sharded"]
    assert proxy.add(vectors, ids=ids) == ids
    assert proxy.count() == 600
    per_shard = [r["served"] for b in manager.metrics()["sharded"]["backends"] for r in b["replicas"]]
    assert all(count > 0 for count in per_shard)
    got = proxy.get(["doc-5", "nope", "doc-400"])
    assert got[1] is None and got[0]["id"] == "doc-5" and got[2]["id"] == "doc-400"
    np.testing.assert_allclose(got[2]["vector"], vectors[400], rtol=1e-6)
    assert proxy.delete(["doc-5", "doc-6", "nope"]) == 2 and proxy.count() == 598
    added = proxy.add(vectors[:3])
    assert len(set(added)) == 3 and proxy.count() == 601


def test_stable_shard_is_the_same_in_another_process_with_another_hash_seed() -> None:
    keys = [f"doc-{i}" for i in range(50)]
    code = f"from sage_core.plugins.sharding import stable_shard; print([stable_shard(k, 7) for k in {keys!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert other.stdout.strip() == str([stable_shard(k, 7) for k in keys])
    assert [stable_shard(k, 7) for k in keys] == [zlib.crc32(k.encode()) % 7 for k in keys]


def test_sharded_store_saves_and_loads_one_file_per_shard(manager: ServiceRegistry, data, tmp_path) -> None:
    vectors, ids, _ = data
    manager.register("a", kind="vdb", backend="numpy", shards=2, options={"dim": 16})
    manager.register("b", kind="vdb", backend="numpy", shards=2, options={"dim": 16})
    manager.sync["a"].add(vectors[:50], ids=ids[:50])
    manager.sync["a"].save(str(tmp_path / "vdb"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vdb.shard0-of-2", "vdb.shard1-of-2"]
    manager.sync["b"].load(str(tmp_path / "vdb"))
    assert manager.sync["b"].count() == 50
    assert manager.sync["b"].search(vectors[7], top_k=1)[0].id == "doc-7"


def test_sharded_kv_routes_keys_and_merges_key_lists(manager: ServiceRegistry) -> None:
    manager.register("kv", kind="kv", backend="memory", shards=3)
    for i in range(30):
        manager.sync["kv"].put(f"k{i:02d}", i)
    assert manager.sync["kv"].get("k17") == 17
    assert manager.sync["kv"].keys("k1") == [f"k1{i}" for i in range(10)]
    assert manager.sync["kv"].count() == 30
    assert manager.sync["kv"].delete("k17") is True and manager.sync["kv"].get("k17") is None


def test_kinds_without_shard_rules_cannot_be_sharded(manager: ServiceRegistry) -> None:
    with pytest.raises(ConfigError, match="services.g.shards: kind 'graph' cannot be sharded"):
        manager.register("g", kind="graph", backend="networkx", shards=2)


def test_replicas_share_concurrent_load(manager: ServiceRegistry) -> None:
    release = threading.Event()

    class Held:
        def work(self) -> str:
            release.wait(30)
            return threading.current_thread().name

    manager.register("slow", Held, replicas=3, workers=1)
    manager.start()
    futures = [manager.async_["slow"].work() for _ in range(12)]  # all in flight together: none ends before release
    release.set()
    wait(futures, timeout=10)
    replicas = {f.result().rsplit("-w", 1)[0] for f in futures}
    assert len(replicas) == 3
    served = [r["served"] for r in manager.metrics()["slow"]["backends"][0]["replicas"]]
    assert served == [4, 4, 4]


def test_writes_reach_every_replica_of_a_store(manager: ServiceRegistry, data) -> None:
    vectors, ids, _ = data
    manager.register("vdb", kind="vdb", backend="numpy", replicas=2, options={"dim": 16})
    generated = manager.sync["vdb"].add(vectors[:10])
    futures = [manager.async_["vdb"].search(query=vectors[i % 10], top_k=1) for i in range(40)]
    assert [f.result(5)[0].id for f in futures] == [generated[i % 10] for i in range(40)]
    replicas = manager.metrics()["vdb"]["backends"][0]["replicas"]
    assert all(r["served"] > 1 for r in replicas)
