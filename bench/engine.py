"""Engine overhead: a pipeline of cheap functions against a plain Python loop calling the same ones.

from_batch of N small dicts -> map -> filter keeping half -> map -> sink counting, on the local
runtime; also with a keyby between the maps (no chaining) and with parallelism 2. Every figure is
measured in this one run (best of --repeat). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any, Callable

from sage_core import LocalEnvironment


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


def pipeline(data: list[dict], *, keyed: bool = False, parallelism: int = 1, monitor: bool = False) -> int:
    """The same work as a SAGE pipeline on the local runtime."""
    counter = Counter()
    env = LocalEnvironment("engine-bench")
    stream = env.from_batch(data).map(enrich, parallelism=parallelism)
    if keyed:
        stream = stream.keyby(by_bucket)
    stream.filter(keep_even, parallelism=parallelism).map(finish, parallelism=parallelism).sink(counter)
    env.submit(autostop=True, monitor=monitor)
    env.close()
    return counter.count


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
    parser.add_argument("--monitor", action="store_true", help="also measure with monitoring on")
    args = parser.parse_args()
    data = [{"id": i} for i in range(args.n)]
    expected = plain_loop(data)
    figures: dict[str, Any] = {"n": args.n, "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    figures["loop_rps"] = records_per_s(lambda: plain_loop(data), args.n, args.repeat, expected)
    figures["chained_rps"] = records_per_s(lambda: pipeline(data), args.n, args.repeat, expected)
    figures["keyed_rps"] = records_per_s(lambda: pipeline(data, keyed=True), args.n, args.repeat, expected)
    figures["parallel2_rps"] = records_per_s(lambda: pipeline(data, parallelism=2), args.n, args.repeat, expected)
    if args.monitor:
        figures["monitored_rps"] = records_per_s(lambda: pipeline(data, monitor=True), args.n, args.repeat, expected)
        figures["monitor_overhead"] = round(1 - figures["monitored_rps"] / figures["chained_rps"], 4)
    figures["chained_ratio"] = round(figures["chained_rps"] / figures["loop_rps"], 4)
    figures["keyed_ratio"] = round(figures["keyed_rps"] / figures["loop_rps"], 4)
    for key in ("loop_rps", "chained_rps", "keyed_rps", "parallel2_rps", "monitored_rps"):
        if key in figures:
            figures[key] = round(figures[key])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
