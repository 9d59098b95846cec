"""Fallback chains: a failing, hanging, absent or saturated primary; writes mirrored to fallbacks."""

from __future__ import annotations

import threading
from concurrent.futures import wait
from typing import Any, Iterator

import numpy as np
import pytest

from sage_core.builtin.numpy_vdb import NumpyVectorStore
from sage_core.errors import BackendUnavailable, ServiceError
from sage_core.services.registry import ServiceRegistry
from sage_core.testing import unit_vectors


class Answer:
    """A healthy backend naming itself in every answer."""

    def __init__(self, name: str = "fallback") -> None:
        self.name = name

    def ask(self, question: int) -> tuple[str, int]:
        return self.name, question


class FailingPrimary:
    def ask(self, question: int) -> tuple[str, int]:
        raise RuntimeError("primary is broken")


class HangingPrimary:
    release = threading.Event()

    def ask(self, question: int) -> tuple[str, int]:
        HangingPrimary.release.wait(30)
        return "primary", question


class AbsentPrimary:
    def __init__(self) -> None:
        raise BackendUnavailable("no GPU here; install CUDA or use the CPU fallback")


@pytest.fixture
def hanging() -> Iterator[None]:
    HangingPrimary.release.clear()
    yield
    HangingPrimary.release.set()


def ask_many(manager: ServiceRegistry, name: str, count: int) -> list[tuple[str, int]]:
    futures = [manager.async_[name].ask(i) for i in range(count)]
    done, not_done = wait(futures, timeout=20)
    assert not not_done, f"{len(not_done)} callers never got an answer"
    return [f.result() for f in futures]


def test_failing_primary_every_caller_answered_by_fallback(manager: ServiceRegistry) -> None:
    manager.register("svc", FailingPrimary, fallback=[Answer])
    answers = ask_many(manager, "svc", 200)
    assert answers == [("fallback", i) for i in range(200)]
    stats = manager.metrics()["svc"]
    assert stats["served_by"] == {"FailingPrimary": 0, "Answer": 200}
    assert stats["fallback_calls"] == 200 and stats["errors"] == 0


def test_hanging_primary_times_out_and_no_request_is_lost(manager: ServiceRegistry, hanging: None) -> None:
    manager.register("svc", HangingPrimary, fallback=[Answer], timeout_s=0.2, workers=2)
    answers = ask_many(manager, "svc", 50)
    assert answers == [("fallback", i) for i in range(50)]
    assert manager.metrics()["svc"]["served_by"]["Answer"] == 50


def test_primary_unavailable_at_start_is_skipped(manager: ServiceRegistry) -> None:
    manager.register("svc", AbsentPrimary, fallback=[Answer])
    assert manager.sync["svc"].ask(1) == ("fallback", 1)
    primary = manager.metrics()["svc"]["backends"][0]
    assert primary["usable"] is False and "no GPU here" in primary["replicas"][0]["error"]


def test_gpu_backend_without_gpu_falls_back_to_cpu(manager: ServiceRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    from sage_core.services.devices import gpu_count

    gpu_count.cache_clear()
    try:
        manager.register("vdb", kind="vdb", backend="numpy", device="cuda", options={"dim": 4}, fallback=["numpy"])
        manager.sync["vdb"].add(np.eye(4, dtype=np.float32), ids=list("abcd"))
        assert manager.sync["vdb"].search(np.eye(4, dtype=np.float32)[2], top_k=1)[0].id == "c"
        error = manager.metrics()["vdb"]["backends"][0]["replicas"][0]["error"]
        assert "not 'cuda'" in error or "no NVIDIA GPU" in error
    finally:
        gpu_count.cache_clear()


def test_no_backend_available_fails_start_with_every_reason(manager: ServiceRegistry) -> None:
    manager.register("svc", AbsentPrimary)
    with pytest.raises(ServiceError, match="no backend available.*no GPU here"):
        manager.start()


def test_saturated_primary_sends_overflow_to_fallback(manager: ServiceRegistry) -> None:
    release = threading.Event()

    class HeldPrimary:
        def ask(self, question: int) -> tuple[str, int]:
            release.wait(30)
            return "primary", question

    manager.register("svc", HeldPrimary, fallback=[Answer], max_queue_depth=2, workers=2)
    manager.start()
    held = [manager.async_["svc"].ask(i) for i in range(2)]  # the primary's two slots, busy until released
    overflow = [manager.sync["svc"].ask(i) for i in range(8)]  # one at a time: the fallback itself is never saturated
    release.set()
    assert [f.result(10) for f in held] == [("primary", 0), ("primary", 1)]
    assert overflow == [("fallback", i) for i in range(8)]
    stats = manager.metrics()["svc"]
    assert stats["served_by"] == {"HeldPrimary": 2, "Answer": 8} and stats["saturated_skips"] == 8


class FlakyStore(NumpyVectorStore):
    """A numpy store whose searches (or writes) can be switched to fail."""

    broken_reads = False
    broken_writes = False

    def search(self, query: Any, top_k: int = 10, filter: Any = None) -> Any:
        if FlakyStore.broken_reads:
            raise RuntimeError("index corrupted")
        return super().search(query, top_k=top_k, filter=filter)

    def add(self, vectors: Any, ids: Any = None, metadata: Any = None) -> list[str]:
        if FlakyStore.broken_writes:
            raise RuntimeError("disk full")
        return super().add(vectors, ids=ids, metadata=metadata)


@pytest.fixture
def flaky() -> Iterator[type[FlakyStore]]:
    FlakyStore.broken_reads = FlakyStore.broken_writes = False
    yield FlakyStore
    FlakyStore.broken_reads = FlakyStore.broken_writes = False


def test_writes_reach_the_fallback_so_it_answers_with_the_same_data(manager: ServiceRegistry, flaky) -> None:
    manager.register("vdb", flaky, kind="vdb", options={"dim": 8}, fallback=["numpy"])
    vectors = unit_vectors(30, 8)
    ids = manager.sync["vdb"].add(vectors)
    before = [h.id for h in manager.sync["vdb"].search(vectors[3], top_k=5)]
    flaky.broken_reads = True
    after = [h.id for h in manager.sync["vdb"].search(vectors[3], top_k=5)]
    assert after == before and after[0] == ids[3]
    assert manager.metrics()["vdb"]["served_by"] == {"FlakyStore": 2, "numpy": 1}  # add, search; search


def test_a_write_failing_on_the_primary_only_marks_it_stale(manager: ServiceRegistry, flaky) -> None:
    manager.register("vdb", flaky, kind="vdb", options={"dim": 8}, fallback=["numpy"])
    vectors = unit_vectors(5, 8)
    manager.sync["vdb"].add(vectors[:2], ids=["a", "b"])
    flaky.broken_writes = True
    manager.sync["vdb"].add(vectors[2:], ids=["c", "d", "e"])
    assert manager.sync["vdb"].search(vectors[4], top_k=1)[0].id == "e"
    assert manager.sync["vdb"].count() == 5
    stats = manager.metrics()["vdb"]
    assert stats["backends"][0]["replicas"][0]["stale"] is True
    assert stats["served_by"]["numpy"] >= 2


def test_when_every_backend_fails_the_error_names_each(manager: ServiceRegistry) -> None:
    manager.register("svc", FailingPrimary, fallback=[FailingPrimary])
    with pytest.raises(ServiceError, match="failed on every backend: FailingPrimary: .*FailingPrimary#1") as info:
        manager.sync["svc"].ask(1)
    assert isinstance(info.value.cause, RuntimeError)


def test_a_hanging_write_times_out_and_the_fallback_keeps_the_data(manager: ServiceRegistry, hanging: None) -> None:
    class HangingWrites(NumpyVectorStore):
        def add(self, vectors: Any, ids: Any = None, metadata: Any = None) -> list[str]:
            HangingPrimary.release.wait(30)
            return super().add(vectors, ids=ids, metadata=metadata)

    manager.register("vdb", HangingWrites, kind="vdb", options={"dim": 8}, fallback=["numpy"], timeout_s=0.2)
    vectors = unit_vectors(4, 8)
    assert manager.sync["vdb"].add(vectors, ids=list("abcd")) == list("abcd")
    assert manager.sync["vdb"].search(vectors[2], top_k=1)[0].id == "c"
    assert manager.metrics()["vdb"]["served_by"]["numpy"] == 2
