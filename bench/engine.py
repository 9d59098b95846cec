"""Engine overhead: a pipeline of cheap functions against a plain Python loop calling the same ones.

from_batch of N small dicts -> map -> filter keeping half -> map -> sink counting, on the local
runtime (``--runtime local``, the default) or on Ray (``--runtime ray``: a local Ray instance, each
task an actor); also with a keyby between the maps (no chaining) and with parallelism 2. Every
figure is measured in this one run (best of --repeat); a Ray run also measures the chained
pipeline locally, a Ray actor call round trip against a round trip to a thread, and a synchronous
service call from a task, on Ray and locally (``ray_service_call_us``, ``local_service_call_us``,
``ray_service_vs_thread_rtt``), and the rate of 64 concurrent asynchronous calls from a task, on
Ray against locally (``ray_service_64_callers_vs_local``). Timings
include starting the job's tasks (threads, or actors); ``keyed_job_overhead_s`` is the time of the
keyed pipeline on two records, that start-up alone. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import threading
import time
from typing import Any, Callable

from sage_core import LocalEnvironment, MapFunction, RemoteEnvironment


def enrich(record: dict) -> dict:
    """First map: derive a value."""
    return {"id": record["id"], "value": record["id"] * 3}


def keep_even(record: dict) -> bool:
    """Filter: keep half."""
    return record["id"] % 2 == 0


def finish(record: dict) -> int:
    """Second map: reduce to a number."""
    return record["value"] + 1


def by_bucket(record: dict) -> int:
    """Key for the keyed variant."""
    return record["id"] % 64


class Counter:
    """Sink counting records (thread-safe enough: one sink instance)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, record: Any) -> None:
        self.count += 1


def plain_loop(data: list[dict]) -> int:
    """The baseline: the same functions in a loop."""
    counter = Counter()
    for record in data:
        enriched = enrich(record)
        if keep_even(enriched):
            counter(finish(enriched))
    return counter.count


def pipeline(
    data: list[dict], *, keyed: bool = False, parallelism: int = 1, monitor: bool = False, runtime: str = "local"
) -> int:
    """The same work as a SAGE pipeline; returns how many records reached the sink."""
    config = {"monitor": {"enabled": True}} if monitor else None
    environment = RemoteEnvironment if runtime == "ray" else LocalEnvironment
    env = environment("engine-bench", config=config)
    stream = env.from_batch(data).map(enrich, parallelism=parallelism)
    if keyed:
        stream = stream.keyby(by_bucket)
    stream.filter(keep_even, parallelism=parallelism).map(finish, parallelism=parallelism).sink(Counter(), name="count")
    job = env.submit(autostop=True)
    env.close()
    return job.summary()["operators"]["count"]["in"]


def round_trips_us(calls: int = 2000) -> dict[str, float]:
    """Mean round trip of a call to a Ray actor and of a request to a thread through two queues."""
    import ray

    @ray.remote(num_cpus=0)
    class Echo:
        def echo(self, value: Any) -> Any:
            return value

    actor = Echo.remote()
    ray.get(actor.echo.remote(0))
    began = time.perf_counter()
    for i in range(calls):
        ray.get(actor.echo.remote(i))
    actor_us = (time.perf_counter() - began) / calls * 1e6
    ray.kill(actor)
    requests: queue.SimpleQueue = queue.SimpleQueue()
    replies: queue.SimpleQueue = queue.SimpleQueue()

    def serve() -> None:
        while (value := requests.get()) is not None:
            replies.put(value)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    began = time.perf_counter()
    for i in range(calls):
        requests.put(i)
        replies.get()
    thread_us = (time.perf_counter() - began) / calls * 1e6
    requests.put(None)
    thread.join()
    return {"ray_actor_rtt_us": round(actor_us, 1), "thread_rtt_us": round(thread_us, 1)}


class EchoService:
    """A service that answers at once: what remains of a call is the framework's cost."""

    def echo(self, value: Any) -> Any:
        """``value`` back."""
        return value


class TimedEcho(MapFunction):
    """Calls the echo service synchronously; returns how long the call took, in seconds."""

    def execute(self, value: int) -> float:
        began = time.perf_counter()
        self.call_service["echo"].echo(value=value)
        return time.perf_counter() - began


def service_call_us(runtime: str, calls: int = 2000) -> float:
    """Mean time of a synchronous service call from a task (after a warm-up of 100 calls)."""
    env = RemoteEnvironment("engine-bench-service") if runtime == "ray" else LocalEnvironment("engine-bench-service")
    env.register_service("echo", EchoService)
    timings = env.from_batch(list(range(calls + 100))).map(TimedEcho).collect()
    env.submit()
    env.close()
    measured = timings.records[100:]
    return sum(measured) / len(measured) * 1e6


class StampService:
    """Answers at once with the time it served the call (the same clock for every process here)."""

    def stamp(self, value: Any) -> float:
        """When this call was served."""
        return time.time()


class AskStamp(MapFunction):
    """Calls the stamp service asynchronously (the map's ``capacity`` bounds the calls in flight)."""

    def execute(self, value: int) -> Any:
        return self.call_service_async["stamp"].stamp(value=value)


def concurrent_calls_per_s(runtime: str, calls: int = 20_000, callers: int = 64) -> float:
    """Calls served per second with ``callers`` calls in flight from one task (from the service's own stamps)."""
    env = RemoteEnvironment("engine-bench-callers") if runtime == "ray" else LocalEnvironment("engine-bench-callers")
    env.register_service("stamp", StampService)
    stamps = env.from_batch(list(range(calls))).map(AskStamp, capacity=callers).collect()
    env.submit()
    env.close()
    served = sorted(stamps.records)[calls // 10:]  # after a warm-up tenth
    return (len(served) - 1) / (served[-1] - served[0])


def _timed(run: Callable[[], Any]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def records_per_s(run: Callable[[], int], n: int, repeat: int, expected: int) -> float:
    """Best throughput over ``repeat`` runs; checks the result each time."""
    best = 0.0
    for _ in range(repeat):
        began = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - began
        if count != expected:
            raise SystemExit(f"wrong result: {count} records reached the sink, expected {expected}")
        best = max(best, n / elapsed)
    return best


def main() -> None:
    """Run every variant and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runtime", choices=("local", "ray"), default="local", help="where the pipelines run")
    parser.add_argument("--monitor", action="store_true", help="also measure with monitoring on")
    args = parser.parse_args()
    data = [{"id": i} for i in range(args.n)]
    expected = plain_loop(data)
    runtime = args.runtime
    figures: dict[str, Any] = {
        "n": args.n,
        "runtime": runtime,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }

    if runtime == "ray":
        RemoteEnvironment("engine-bench-connect").close()  # start Ray outside the timed runs

    def rps(**variant: Any) -> float:
        return records_per_s(lambda: pipeline(data, runtime=runtime, **variant), args.n, args.repeat, expected)

    figures["loop_rps"] = records_per_s(lambda: plain_loop(data), args.n, args.repeat, expected)
    figures["chained_rps"] = rps()
    figures["keyed_rps"] = rps(keyed=True)
    figures["parallel2_rps"] = rps(parallelism=2)
    if args.monitor:
        figures["monitored_rps"] = rps(monitor=True)
        figures["monitor_overhead"] = round(1 - figures["monitored_rps"] / figures["chained_rps"], 4)
    figures["keyed_job_overhead_s"] = round(min(_timed(lambda: pipeline(data[:2], keyed=True, runtime=runtime)) for _ in range(args.repeat)), 3)
    figures["chained_ratio"] = round(figures["chained_rps"] / figures["loop_rps"], 4)
    figures["keyed_ratio"] = round(figures["keyed_rps"] / figures["loop_rps"], 4)
    if runtime == "ray":
        figures["local_chained_rps"] = records_per_s(lambda: pipeline(data), args.n, args.repeat, expected)
        figures["ray_vs_local_chained"] = round(figures["chained_rps"] / figures["local_chained_rps"], 4)
        figures.update(round_trips_us())
        figures["local_service_call_us"] = round(service_call_us("local"), 1)
        figures["ray_service_call_us"] = round(service_call_us("ray"), 1)
        figures["ray_service_vs_thread_rtt"] = round(figures["ray_service_call_us"] / figures["thread_rtt_us"], 2)
        figures["local_service_64_callers_per_s"] = round(concurrent_calls_per_s("local"))
        figures["ray_service_64_callers_per_s"] = round(concurrent_calls_per_s("ray"))
        figures["ray_service_64_callers_vs_local"] = round(
            figures["ray_service_64_callers_per_s"] / figures["local_service_64_callers_per_s"], 4
        )
    for key in ("loop_rps", "chained_rps", "keyed_rps", "parallel2_rps", "monitored_rps", "local_chained_rps"):
        if key in figures:
            figures[key] = round(figures[key])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
