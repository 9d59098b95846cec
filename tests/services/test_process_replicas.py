"""``isolation: process``: each replica in its own child process, called exactly like a local one."""

from __future__ import annotations

import os
import sys
from concurrent.futures import wait
from pathlib import Path

import numpy as np
import pytest

from sage_core.errors import ConfigError, ServiceError
from sage_core.services.process_replica import ProcessReplica
from sage_core.services.registry import ServiceRegistry

sys.path.insert(0, str(Path(__file__).parent))  # the child processes import the backends by module name
from process_backends import Fallback, Where  # noqa: E402


def replica_processes(manager: ServiceRegistry, name: str) -> list:
    return [r._process for g in manager.service(name).tiers for r in g.replicas if hasattr(r, "_process")]


def test_calls_are_served_in_one_child_process_per_replica(manager: ServiceRegistry) -> None:
    manager.register("where", Where, isolation="process", replicas=2)
    futures = [manager.async_["where"].pid() for _ in range(64)]
    wait(futures)
    pids = {f.result() for f in futures}
    assert len(pids) == 2 and os.getpid() not in pids
    served = [r["served"] for g in manager.metrics()["where"]["backends"] for r in g["replicas"]]
    assert len(served) == 2 and all(count > 0 for count in served)


def test_async_batchable_and_streaming_methods_work_across_the_pipe(manager: ServiceRegistry) -> None:
    manager.register("where", Where, isolation="process")
    assert manager.sync["where"].double(x=21) == 42
    futures = [manager.async_["where"].total(rows=np.full(3, i)) for i in range(40)]
    assert [f.result(10) for f in futures] == [3.0 * i for i in range(40)]
    assert manager.metrics()["where"]["batch"]["total"]["mean_rows"] > 1
    assert list(manager.sync["where"].count(n=5)) == [0, 1, 2, 3, 4]
    stream = manager.sync["where"].count(n=1000)
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()  # stops the generator in the child
    assert list(manager.sync["where"].count(n=3)) == [0, 1, 2]


def test_errors_and_results_that_do_not_pickle_fail_only_their_call(manager: ServiceRegistry) -> None:
    manager.register("where", Where, isolation="process")
    with pytest.raises(ServiceError, match="no such thing") as info:
        manager.sync["where"].fail(message="no such thing")
    assert isinstance(info.value.cause, ValueError)
    with pytest.raises(ServiceError, match="cannot be sent back"):
        manager.sync["where"].unpicklable()
    with pytest.raises(ServiceError, match="cannot be sent to its process"):
        manager.sync["where"].double(x=lambda: 1)
    assert manager.sync["where"].double(x=1) == 2


def test_a_factory_that_does_not_pickle_is_refused_at_registration_naming_the_key(manager: ServiceRegistry) -> None:
    with pytest.raises(ConfigError, match=r"services\.where\.factory: isolation: process needs a factory that pickles"):
        manager.register("where", lambda: Where(), isolation="process")
    with pytest.raises(ConfigError, match=r"services\.where\.fallback\[0\]\.factory"):
        manager.register("where", Where, fallback=[{"factory": lambda: Fallback(), "isolation": "process"}])


def test_a_creator_that_does_not_pickle_fails_the_start_with_the_reason() -> None:
    replica = ProcessReplica("where/r0", lambda: Where())
    with pytest.raises(ValueError, match="needs a backend creator that pickles"):
        replica.start().result(10)
    assert replica.state == "failed"


def test_a_crashed_replica_not_restarted_fails_its_call_and_the_fallback_serves(manager: ServiceRegistry) -> None:
    manager.register("where", Where, isolation="process", fallback=[Fallback], restart={"max_restarts": 0})
    with pytest.raises(ServiceError, match=r"its process died with exit code 3 before answering this call"):
        manager.sync["where"].crash(code=3)
    assert manager.sync["where"].pid() == os.getpid()


def test_registered_backends_shard_across_child_processes(manager: ServiceRegistry) -> None:
    manager.register("vdb", kind="vdb", backend="numpy", device="cpu", isolation="process", shards=2, options={"dim": 4})
    vectors = np.eye(4, dtype=np.float32)
    manager.sync["vdb"].add(vectors, ids=["a", "b", "c", "d"])
    hits = manager.sync["vdb"].search(query=vectors[2], top_k=2)
    assert hits[0].id == "c" and len(hits) == 2
    assert manager.sync["vdb"].count() == 4


def test_closing_the_service_ends_its_processes() -> None:
    manager = ServiceRegistry(job_name="close")
    manager.register("where", Where, isolation="process", replicas=2)
    assert manager.sync["where"].double(x=1) == 2
    processes = replica_processes(manager, "where")
    manager.close()
    assert len(processes) == 2 and all(p.poll() is not None for p in processes)


def test_calls_in_flight_when_the_service_closes_still_get_their_results() -> None:
    manager = ServiceRegistry(job_name="close-in-flight")
    manager.register("where", Where, isolation="process", workers=4)
    manager.start()
    naps = [manager.async_["where"].nap(seconds=0.3) for _ in range(4)]
    manager.close()
    assert [f.result(10) for f in naps] == [0.3] * 4


def test_a_stream_item_late_past_the_timeout_raises_and_the_replica_serves_on(manager: ServiceRegistry) -> None:
    manager.register("where", Where, isolation="process", timeout_s=0.2)
    stream = manager.sync["where"].slow_count(n=3, seconds=1.0)
    with pytest.raises(ServiceError, match="no item"):
        next(stream)
    assert manager.sync["where"].double(x=4) == 8
