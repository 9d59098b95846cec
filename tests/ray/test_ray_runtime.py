"""Ray-only behaviour: placement by resources, restarts after ``ray.kill``, backpressure, errors."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sage_core import ConfigError, MapFunction, RemoteEnvironment, SinkFunction

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")


class Ids:
    """A service recording record ids (one replica: the ids of the whole job)."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def add(self, record_id: int) -> None:
        self.ids.append(record_id)

    def count(self) -> int:
        return len(self.ids)

    def all(self) -> list[int]:
        return list(self.ids)


class RecordIds(SinkFunction):
    def execute(self, record_id: int) -> None:
        self.call_service["ids"].add(record_id)


def slow_identity(x: int) -> int:
    time.sleep(0.002)
    return x


def wait_until(condition: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def remote(ray_cluster: Any) -> Any:
    """``remote(name, **options)``: RemoteEnvironments on the test cluster, closed after the test."""
    made: list[RemoteEnvironment] = []

    def make(name: str, **options: Any) -> RemoteEnvironment:
        env = RemoteEnvironment(name, address=ray_cluster.address, **options)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def test_tasks_and_replicas_run_on_the_nodes_their_resources_name(remote, node_ids, written) -> None:
    make_sink, read = written
    env = remote("placed", task_resources={"work": {"custom": {"node_b": 1}}, "json_lines": {"custom": {"node_a": 1}}})
    env.register_service("ids", Ids, replicas=2, resources={"num_cpus": 0.5, "custom": {"node_b": 1}})
    env.register_service("other", Ids, resources={"custom": {"node_a": 1}})
    env.from_batch(list(range(50))).map(lambda x: x, parallelism=2, name="work").sink(make_sink())
    job = env.submit()
    tasks = {task: where["node_id"] for task, where in job.runtime.placement().items()}
    assert tasks["work#0"] == tasks["work#1"] == node_ids["node_b"]
    assert tasks["json_lines#0"] == node_ids["node_a"]
    assert set(env.services.service("ids").placement().values()) == {node_ids["node_b"]}
    assert set(env.services.service("other").placement().values()) == {node_ids["node_a"]}
    assert sorted(read()) == list(range(50))


def test_a_killed_map_task_is_restarted_and_every_record_arrives_at_least_once(remote) -> None:
    env = remote("restart", config={"job": {"batch_size": 16}})
    env.register_service("ids", Ids)
    env.from_batch(list(range(3000))).map(slow_identity, parallelism=2, name="slow").sink(RecordIds)
    job = env.submit(autostop=False)
    ids = env.services.sync["ids"]
    wait_until(lambda: ids.count() >= 300)
    ray.kill(job.runtime.actors["slow#0"], no_restart=False)
    assert job.wait(timeout=300) == "finished"
    seen = ids.all()
    assert set(seen) == set(range(3000))
    assert job.runtime.error() is None


def test_a_killed_source_task_restarts_from_its_large_input(remote) -> None:
    env = remote("source-restart", config={"job": {"batch_size": 16}})
    env.register_service("ids", Ids)
    records = [{"id": i, "pad": "x" * 100} for i in range(3000)]  # over 100 KiB: kept in the object store
    env.from_batch(records).map(lambda r: slow_identity(r["id"]), name="slow").rebalance().sink(RecordIds)
    job = env.submit(autostop=False)
    ids = env.services.sync["ids"]
    wait_until(lambda: ids.count() >= 300)
    ray.kill(job.runtime.actors["source+slow#0"], no_restart=False)
    assert job.wait(timeout=300) == "finished"
    assert set(ids.all()) == set(range(3000))
    assert job.runtime.placement()["source+slow#0"]["restarted"]


class Echo:
    def echo(self, x: int) -> int:
        time.sleep(0.001)
        return x


class CallEcho(MapFunction):
    def execute(self, x: int) -> int:
        return self.call_service["echo"].echo(x)


def test_a_killed_service_replica_is_restarted_and_calls_keep_answering(remote, written) -> None:
    make_sink, read = written
    env = remote("replica", config={"job": {"batch_size": 8}})
    env.register_service("echo", Echo)
    env.from_batch(list(range(1500))).map(CallEcho).rebalance().sink(make_sink())
    job = env.submit(autostop=False)
    wait_until(lambda: len(read()) >= 200)
    (host,) = env.services.service("echo").replica_actors().values()
    ray.kill(host, no_restart=False)
    assert job.wait(timeout=300) == "finished"
    assert sorted(read()) == list(range(1500))
    assert job.summary()["services"]["echo"]["errors"] == 0


class Square:
    def square(self, x: int) -> tuple[int, int]:
        time.sleep(0.001)
        return x, x * x


class AskSquare(MapFunction):
    def execute(self, x: int) -> Any:
        return self.call_service_async["square"].square(x)


@pytest.mark.timeout(180)
def test_concurrent_callers_in_several_tasks_each_get_their_own_answer(remote, written) -> None:
    make_sink, read = written
    env = remote("callers")
    env.register_service("square", Square, replicas=2)
    env.from_batch(list(range(2000))).map(AskSquare, parallelism=2, capacity=64).sink(make_sink())
    job = env.submit()
    assert sorted(map(tuple, read())) == [(x, x * x) for x in range(2000)]
    figures = job.summary()["services"]["square"]
    assert figures["calls"] == 2000 and figures["errors"] == 0
    assert sum(r["served"] for r in figures["backends"][0]["replicas"]) == 2000


class Backup:
    def echo(self, x: int) -> int:
        return x


@pytest.mark.timeout(180)
def test_a_replica_host_that_dies_for_good_hands_its_calls_to_the_fallback(remote, written) -> None:
    make_sink, read = written
    env = remote("host-dies", config={"job": {"batch_size": 8}})
    env.register_service("echo", Echo, fallback=[Backup])
    env.from_batch(list(range(1500))).map(CallEcho).rebalance().sink(make_sink())
    job = env.submit(autostop=False)
    wait_until(lambda: len(read()) >= 200)
    ray.kill(env.services.service("echo").replica_actors()["echo/Echo/s0r0"], no_restart=True)
    assert job.wait(timeout=300) == "finished"
    assert sorted(read()) == list(range(1500))
    figures = job.summary()["services"]["echo"]
    assert figures["errors"] == 0 and figures["served_by"]["Backup"] > 0
    assert figures["served_by"]["Echo"] + figures["served_by"]["Backup"] == 1500


class Slow(SinkFunction):
    def execute(self, record: int) -> None:
        time.sleep(0.01)


def test_the_window_bounds_batches_in_flight_behind_a_slow_sink(remote) -> None:
    env = remote("pressure", config={"job": {"batch_size": 8, "queue_size": 2}})
    env.from_batch(list(range(20_000))).map(lambda x: x).rebalance().sink(Slow)
    job = env.submit(autostop=False)
    wait_until(lambda: job.summary()["operators"]["slow"]["in"] >= 100)  # a second of a sink at 100/s
    emitted = job.summary()["operators"]["source"]["out"]
    job.stop(timeout=120)
    # window 2 between the two tasks: the source is at most a few batches ahead of the sink
    consumed = job.summary()["operators"]["slow"]["in"]
    assert emitted - consumed <= 8 * 8, (emitted, consumed)


def test_a_generator_source_cannot_be_shipped_and_the_error_says_what_to_pass(remote) -> None:
    env = remote("generator")
    env.from_batch(x for x in range(3)).sink(lambda x: None)
    with pytest.raises(TypeError, match="pass from_batch a list"):
        env.submit()
    assert not [name for name in ray.util.list_named_actors() if name.startswith("sage/generator/")]


def test_task_resources_naming_no_operator_is_a_config_error(remote) -> None:
    env = remote("unknown", task_resources={"embed": {"num_cpus": 1}})
    env.from_batch([1]).map(lambda x: x, name="encode").sink(lambda x: None)
    with pytest.raises(ConfigError, match="task_resources: no operator named 'embed'; operators: source, encode, sink"):
        env.submit()


class DeviceProbe:
    """Reports the device it was created for and the GPUs Ray let its process see."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def where(self) -> list:
        import os

        return [self.device, os.environ.get("CUDA_VISIBLE_DEVICES")]


@pytest.mark.gpu
def test_a_replica_reserving_a_gpu_gets_one_and_runs_on_cuda(remote) -> None:
    from sage_core.services.devices import gpu_count

    if gpu_count() == 0:
        pytest.skip("no NVIDIA GPU visible (nvidia-smi, CUDA_VISIBLE_DEVICES)")
    env = remote("gpu")
    env.register_service("probe", DeviceProbe, device="cuda", resources={"num_gpus": 1})
    device, visible = env.services.sync["probe"].where()
    assert device == "cuda:0"
    assert visible is not None and len(visible.split(",")) == 1
