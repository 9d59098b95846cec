"""The seed's RAGStep example runs unchanged against the memory and vdb services in a pipeline.

``RAGStep`` below is copied verbatim from the SAGE-Flow GPU design note (``shared/seeds``); only the
imports differ (``sage.middleware.services.memory`` is ``sage_memory`` here).
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

import numpy as np
import pytest

from sage_core import BaseFunction, LocalEnvironment
from sage_memory import MemoryService

DIM = 32
CORPUS = 200


class RAGStep(BaseFunction):
    def execute(self, data):
        # 向量检索(VDB 后端可指向 SAGE-DB GPU)
        results = self.call_service["vdb_service"].search(
            query=data["query_vector"], top_k=10
        )
        # 长期记忆交互(Memory 内部编排 KV/VDB/Graph)
        self.call_service["memory_service"].store_memory(
            content=data["content"], vector=data["query_vector"],
            session_id=data.get("sid","default"), memory_type="conversation"
        )
        return {"hits": results}


def numpy_vdb(env: LocalEnvironment) -> None:
    """The built-in numpy vector store, by config."""
    env.register_service("vdb_service", kind="vdb", backend="numpy")


def faiss_vdb(env: LocalEnvironment) -> None:
    """The FAISS plugin's ``VDBService``, registered exactly as the seed does."""
    faiss_plugin = pytest.importorskip("sage_vdb_faiss", reason="the sage-vdb-faiss plugin is not installed")
    VDBService = faiss_plugin.VDBService
    env.register_service("vdb_service", lambda: VDBService())


@pytest.fixture(params=[numpy_vdb, faiss_vdb], ids=["numpy-vdb", "faiss-vdb"])
def env(request: pytest.FixtureRequest) -> Iterator[LocalEnvironment]:
    """The seed's environment: a memory service with defaults and a vdb service holding a corpus."""
    environment = LocalEnvironment("gpu_flow_demo")
    environment.register_service("memory_service", lambda: MemoryService())
    request.param(environment)
    yield environment
    environment.close()


@pytest.fixture
def corpus() -> np.ndarray:
    """Unit vectors the vdb service holds (ids ``doc-<row>``)."""
    vectors = np.random.default_rng(7).normal(size=(CORPUS, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def records(corpus: np.ndarray, count: int) -> list[dict[str, Any]]:
    """Queries near corpus rows, alternating between two sessions (one record leaves ``sid`` out)."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(count):
        query = corpus[i] + rng.normal(0, 0.05, DIM).astype(np.float32)
        record = {"query_vector": query.astype(np.float32), "content": f"turn {i}", "sid": f"user-{i % 2}"}
        out.append(record)
    del out[-1]["sid"]
    return out


@pytest.mark.parametrize("parallelism", [1, 3])
def test_seed_rag_step_searches_the_vdb_and_stores_memories_per_session(
    env: LocalEnvironment, corpus: np.ndarray, parallelism: int
) -> None:
    env.services.start()
    env.services.sync["vdb_service"].add(vectors=corpus, ids=[f"doc-{i}" for i in range(CORPUS)])
    inputs = records(corpus, 40)
    outputs: list[dict[str, Any]] = []
    lock = threading.Lock()

    def collect(result: dict[str, Any]) -> None:
        with lock:
            outputs.append(result)

    env.from_batch(inputs).map(RAGStep, parallelism=parallelism).sink(collect)
    job = env.submit(autostop=True)

    assert job.status == "finished", job.summary()
    assert len(outputs) == len(inputs)
    top_ids = sorted(result["hits"][0].id for result in outputs)
    assert top_ids == sorted(f"doc-{i}" for i in range(len(inputs)))
    assert all(len(result["hits"]) == 10 for result in outputs)

    memory = env.services.sync["memory_service"]
    assert memory.list_sessions() == ["default", "user-0", "user-1"]
    for i, record in enumerate(inputs):
        session = record.get("sid", "default")
        found = memory.retrieve_memories(vector=record["query_vector"], session_id=session, top_k=1)
        assert [(m["content"], m["session_id"], m["memory_type"]) for m in found] == [(f"turn {i}", session, "conversation")]
