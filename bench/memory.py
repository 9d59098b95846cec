"""Memory service throughput and latency: store N memories, then retrieve, through the service layer.

The ``memory`` service (backend ``sage_memory``, default stores: SQLite KV, numpy vectors, networkx
graph, hashing embedder) runs under a :class:`sage_core.services.registry.ServiceRegistry`, as in a
pipeline. Measured in one run:

* ``store_per_s``: N memories stored with content only (the service embeds them), in batches of
  ``--batch`` through ``store_memories``, spread over ``--sessions`` sessions;
* ``store_single_per_s``: the same through one ``store_memory`` call per memory (a sample);
* ``retrieve_p50_ms`` / ``retrieve_p99_ms``: ``retrieve_memories(query=..., session_id=..., top_k=10)``
  latency, one call at a time, with ``top1_hit_rate`` (the memory the query was cut from ranks first);
* ``retrieve_hops1_p50_ms``: the same with graph expansion over links (``hops=1``);
* with ``--vector numpy,faiss`` each further vector backend's figures appear prefixed by its name;
* ``--stores services`` registers the KV, vector and graph stores and the embedder as services of their
  own that the memory calls by name (through the service layer: batching, fallback, timeouts) instead
  of stores the memory creates (``owned``, the default); ``stores`` in the JSON line says which.

Prints one JSON line. ``--n 2000`` for a quick run.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from typing import Any

import numpy as np

from sage_core.plugin import get_plugin_manager
from sage_core.services.registry import ServiceRegistry


def make_texts(n: int, rng: random.Random, vocabulary: int = 5000, words: int = 8) -> list[str]:
    """``n`` synthetic utterances of ``words`` words drawn from a fixed vocabulary."""
    return [" ".join(f"w{rng.randrange(vocabulary)}" for _ in range(words)) for _ in range(n)]


def register_memory(services: ServiceRegistry, backend: str, stores: str) -> None:
    """The ``memory`` service with the vector backend ``backend``: its own stores, or store services it calls."""
    if stores == "owned":
        services.register("memory", kind="memory", backend="sage_memory", device="cpu", options={"vector": {"backend": backend}})
        return
    parts = {"kv": ("kv", "sqlite"), "vector": ("vdb", backend), "graph": ("graph", "networkx"), "embedder": ("embedding", "hashing")}
    for part, (kind, name) in parts.items():
        services.register(f"memory_{part}", kind=kind, backend=name, device="cpu")
    services.register(
        "memory", kind="memory", backend="sage_memory", device="cpu", options={part: {"service": f"memory_{part}"} for part in parts}
    )


def measure(
    backend: str, stores: str, n: int, sessions: int, batch: int, queries: int, singles: int, seed: int
) -> dict[str, Any]:
    """Every figure for one vector backend."""
    rng = random.Random(seed)
    texts = make_texts(n, rng)
    with ServiceRegistry(job_name="bench-memory") as services:
        register_memory(services, backend, stores)
        services.start()
        memory = services.sync["memory"]

        ids: list[str] = []
        owner: list[str] = []
        started = time.perf_counter()
        for offset in range(0, n, batch):
            session = f"user-{(offset // batch) % sessions}"
            chunk = texts[offset : offset + batch]
            ids.extend(memory.store_memories(contents=chunk, session_id=session))
            owner.extend([session] * len(chunk))
        store_s = time.perf_counter() - started

        extra = make_texts(singles, rng)
        started = time.perf_counter()
        for text in extra:
            memory.store_memory(content=text, session_id="singles")
        single_s = time.perf_counter() - started

        for row in range(0, n - 1, max(1, n // 1000)):  # about 1000 links between neighbours of a batch
            if owner[row] == owner[row + 1]:
                memory.link(ids[row], ids[row + 1], "next")

        picks = [rng.randrange(n) for _ in range(queries)]
        latencies, hits = [], 0
        for row in picks:
            query = " ".join(texts[row].split()[:5])
            started = time.perf_counter()
            found = memory.retrieve_memories(query=query, session_id=owner[row], top_k=10)
            latencies.append(time.perf_counter() - started)
            hits += bool(found) and found[0]["id"] == ids[row]
        hop_latencies = []
        for row in picks[: max(1, queries // 4)]:
            started = time.perf_counter()
            memory.retrieve_memories(query=texts[row], session_id=owner[row], top_k=10, hops=1)
            hop_latencies.append(time.perf_counter() - started)
        assert memory.count() == n + singles, "the memory lost writes"

    ms = np.array(latencies) * 1e3
    return {
        "store_per_s": round(n / store_s, 1),
        "store_single_per_s": round(singles / single_s, 1),
        "retrieve_p50_ms": round(float(np.percentile(ms, 50)), 3),
        "retrieve_p99_ms": round(float(np.percentile(ms, 99)), 3),
        "retrieve_hops1_p50_ms": round(float(np.percentile(np.array(hop_latencies) * 1e3, 50)), 3),
        "top1_hit_rate": round(hits / queries, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="memories to store (default 100000)")
    parser.add_argument("--sessions", type=int, default=100, help="sessions the memories are spread over")
    parser.add_argument("--batch", type=int, default=1000, help="memories per store_memories call")
    parser.add_argument("--queries", type=int, default=1000, help="retrievals timed")
    parser.add_argument("--singles", type=int, default=2000, help="memories stored one call each")
    parser.add_argument("--vector", default="numpy", help="comma-separated vector backends; the first gives the main keys")
    parser.add_argument("--stores", choices=("owned", "services"), default="owned", help="the memory's own stores, or store services")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    backends = [b.strip() for b in args.vector.split(",") if b.strip()]
    installed = {spec.name for spec in get_plugin_manager().backends("vdb")}
    missing = [b for b in backends if b not in installed]
    if missing:
        sys.exit(f"vector backend(s) {missing} not installed; installed: {sorted(installed)}")

    result: dict[str, Any] = {
        "n": args.n, "sessions": args.sessions, "batch": args.batch, "vector": backends[0], "stores": args.stores
    }
    for position, backend in enumerate(backends):
        print(f"measuring vector backend {backend} ...", file=sys.stderr)
        figures = measure(backend, args.stores, args.n, args.sessions, args.batch, args.queries, args.singles, args.seed)
        prefix = "" if position == 0 else f"{backend}_"
        result.update({prefix + key: value for key, value in figures.items()})
    result["machine"] = f"{platform.machine()} {platform.python_version()}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
