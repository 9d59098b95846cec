"""Services called from a running pipeline: blocking calls and Futures kept in flight by map."""

from __future__ import annotations

import numpy as np
import pytest

from sage_core import LocalEnvironment, MapFunction
from sage_core.testing import unit_vectors


class AsyncSearch(MapFunction):
    """Returns the Future of a search; the map keeps up to ``capacity`` of them in flight."""

    def execute(self, query: np.ndarray):
        return self.call_service_async["vdb"].search(query=query, top_k=1)


class BlockingEmbed(MapFunction):
    def execute(self, text: str):
        return self.call_service["emb"].embed(text)


@pytest.fixture
def vectors() -> np.ndarray:
    return unit_vectors(200, 8, seed=2)


@pytest.mark.parametrize("ordered", [True, False])
def test_async_map_keeps_searches_in_flight_and_batches_them(
    env: LocalEnvironment, collected: list, vectors: np.ndarray, ordered: bool
) -> None:
    env.register_service("vdb", kind="vdb", backend="numpy", options={"dim": 8}, batch={"max_wait_ms": 5})
    env.services.sync["vdb"].add(vectors, ids=[f"v{i}" for i in range(200)])
    env.from_batch(list(vectors)).map(AsyncSearch, capacity=64, ordered=ordered).sink(collected.append)
    env.submit(autostop=True)
    ids = [hits[0].id for hits in collected]
    expected = [f"v{i}" for i in range(200)]
    assert ids == expected if ordered else sorted(ids) == sorted(expected)
    batch = env.services.metrics()["vdb"]["batch"]["search"]
    assert batch["requests"] == 200 and batch["mean_rows"] > 1


def test_blocking_calls_from_a_map_and_services_from_config(collected: list) -> None:
    config = {"services": {"emb": {"kind": "embedding", "backend": "hashing", "options": {"dim": 32}}}}
    with LocalEnvironment("cfg", config=config) as env:
        env.from_batch(["a b", "c d"]).map(BlockingEmbed).sink(collected.append)
        env.submit(autostop=True)
        assert [v.shape for v in collected] == [(32,), (32,)]
        assert env.services.metrics()["emb"]["calls"] == 2
