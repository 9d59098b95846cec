"""Service-layer benchmark: request batching on the built-in numpy vector store.

64 concurrent asyncio callers issue top-10 searches (one query each) through
``env.services.async_["vdb"].search`` (the environment's service registry):

* ``batched``: the method's ``@batchable`` path stacks concurrent queries into one matrix product;
* ``unbatched``: the same service with ``batch: false`` (one backend call per query on 4 workers);
* ``direct``: the backend's own batch search called once with every query (blocked matmul plus
  argpartition), the ceiling for the service layer;
* ``pipeline_async``: ``env.from_batch(queries).map(Step, capacity=256, ordered=False).sink(...)``
  whose Step returns ``self.call_service_async["vdb"].search(query=q, top_k=10)``.

Every mode searches the same store object (100k x 384 float32 by default) in this one run, and
the modes take turns on slices of the queries (``--rounds``) so that a shared, busy machine slows
each alike. Unbatched search is memory-bound (one pass over the whole store per query), so it runs
a subset of the queries (``--unbatched-queries``); rates are queries per second either way. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from typing import Any

import numpy as np

from sage_core import LocalEnvironment, MapFunction
from sage_core.plugin import get_plugin_manager


def make_store(vectors: int, dim: int, seed: int = 0) -> Any:
    """The built-in numpy store (through the plugin registry) filled with random vectors."""
    store = get_plugin_manager().backend("vdb", "numpy").factory(dim=dim, metric="cosine")
    rng = np.random.default_rng(seed)
    for start in range(0, vectors, 20_000):
        block = rng.standard_normal((min(20_000, vectors - start), dim), dtype=np.float32)
        store.add(block, ids=[f"doc-{i}" for i in range(start, start + len(block))])
    return store


def run_callers(proxy: Any, queries: np.ndarray, callers: int) -> float:
    """Seconds for ``callers`` asyncio tasks, each awaiting one search at a time, to run ``queries``."""
    next_index = iter(range(len(queries)))

    async def caller() -> int:
        done = 0
        for i in next_index:
            hits = await asyncio.wrap_future(proxy.search(query=queries[i], top_k=10))
            done += len(hits) == 10
        return done

    async def main() -> int:
        return sum(await asyncio.gather(*(caller() for _ in range(callers))))

    started = time.perf_counter()
    answered = asyncio.run(main())
    elapsed = time.perf_counter() - started
    if answered != len(queries):
        raise RuntimeError(f"only {answered} of {len(queries)} searches returned 10 hits")
    return elapsed


def run_direct(store: Any, queries: np.ndarray) -> float:
    """Seconds for one direct batch search over every query."""
    started = time.perf_counter()
    results = store.search(queries, top_k=10)
    elapsed = time.perf_counter() - started
    assert len(results) == len(queries)
    return elapsed


class Search(MapFunction):
    """Pipeline step: hand the vector store a query, return the Future of its hits."""

    def execute(self, query: np.ndarray) -> Any:
        """The Future of this query's top-10 hits."""
        return self.call_service_async["vdb"].search(query=query, top_k=10)


def run_pipeline(store: Any, queries: np.ndarray, capacity: int) -> float:
    """Seconds for an async-map pipeline over the same store to answer ``queries``."""
    answered = [0]

    def count(hits: Any) -> None:
        answered[0] += 1

    with LocalEnvironment("bench-pipeline") as env:
        env.register_service("vdb", lambda: store, kind="vdb")
        env.services.start()
        env.from_batch(list(queries)).map(Search, capacity=capacity, ordered=False).sink(count)
        started = time.perf_counter()
        env.submit(autostop=True)
        elapsed = time.perf_counter() - started
    if answered[0] != len(queries):
        raise RuntimeError(f"pipeline answered {answered[0]} of {len(queries)} queries")
    return elapsed


def main() -> None:
    """Run every mode and print one JSON line of figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--unbatched-queries", type=int, default=2_000)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--capacity", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=4, help="slices of the queries the modes take turns on")
    args = parser.parse_args()

    store = make_store(args.vectors, args.dim)
    rng = np.random.default_rng(1)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    store.search(queries[:256], top_k=10)  # warm BLAS threads and caches

    # Modes take turns on successive slices of the queries, so that a busy machine slows each
    # mode alike; a mode's rate is its queries over its summed time.
    seconds = dict.fromkeys(("batched", "unbatched", "direct", "pipeline"), 0.0)
    counts = dict.fromkeys(seconds, 0)
    chunks = np.array_split(np.arange(args.queries), args.rounds)
    unbatched_chunk = max(1, args.unbatched_queries // args.rounds)
    with LocalEnvironment("bench-callers") as env:
        env.register_service("vdb", lambda: store, kind="vdb", batch={"max_size": 256, "max_wait_ms": 2})
        env.register_service("vdb_unbatched", lambda: store, kind="vdb", batch=False, workers=4)
        env.services.start()
        modes = {
            "batched": lambda q: run_callers(env.services.async_["vdb"], q, args.callers),
            "unbatched": lambda q: run_callers(env.services.async_["vdb_unbatched"], q[:unbatched_chunk], args.callers),
            "direct": lambda q: run_direct(store, q),
            "pipeline": lambda q: run_pipeline(store, q, args.capacity),
        }
        order = list(modes)
        for round_index, chunk in enumerate(chunks):
            part = queries[chunk]
            for mode in order[round_index % 4 :] + order[: round_index % 4]:
                seconds[mode] += modes[mode](part)
                counts[mode] += min(len(part), unbatched_chunk) if mode == "unbatched" else len(part)
        batch_stats = env.services.metrics()["vdb"]["batch"]["search"]
    qps = {mode: counts[mode] / seconds[mode] for mode in seconds}
    batched, unbatched, direct, pipeline = qps["batched"], qps["unbatched"], qps["direct"], qps["pipeline"]

    print(
        json.dumps(
            {
                "batched_qps": round(batched, 1),
                "unbatched_qps": round(unbatched, 1),
                "direct_qps": round(direct, 1),
                "batched_vs_unbatched": round(batched / unbatched, 2),
                "batched_vs_direct": round(batched / direct, 3),
                "pipeline_async_qps": round(pipeline, 1),
                "pipeline_vs_direct": round(pipeline / direct, 3),
                "mean_batch_rows": batch_stats["mean_rows"],
                "vectors": args.vectors,
                "dim": args.dim,
                "queries": args.queries,
                "unbatched_queries": counts["unbatched"],
                "callers": args.callers,
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
