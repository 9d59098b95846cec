"""FAISS on several GPUs through SAGE's service layer (issue 10): one GPU, sharded, replicated, replicas.

1M x 768 random unit vectors, flat inner-product index, fp16 storage. One JSON line per configuration,
in this order (each store closed before the next is built):

* ``direct_1gpu``: FAISS called directly on one GPU in batches of ``--direct-batch`` (the bar);
* ``1gpu``: ``VDBService`` on ``cuda`` behind the service layer;
* ``shard``: the plugin's ``multi_gpu: shard`` (vectors split over every GPU, one store);
* ``replicate``: the plugin's ``multi_gpu: replicate`` (every GPU holds all, queries split);
* ``replicas2``: the vdb service with ``replicas: N``, ``device: cuda`` (replica r on ``cuda:r``;
  the service layer mirrors the add and spreads searches by load).

Service lines are measured with ``--callers`` concurrent asyncio callers, each awaiting one search of
``--caller-batch`` queries at a time (best of ``--repeat``). Keys: ``config``, ``qps``,
``ratio_to_1gpu`` (over the ``1gpu`` service line), ``gpu_utilization_mean`` (per GPU, NVML samples
during the timed searches), ``recall_at_10`` against exact search on ``--recall-sample`` queries.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Iterator

import numpy as np
from gpu_load import GpuLoad
from vdb_faiss import (
    direct_throughput,
    exact_top10,
    recall_at_10,
    run_callers,
    unit_vectors,
)

SERVICE_CONFIGS = ("1gpu", "shard", "replicate", "replicas2")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's command line (checked before any data is made)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors stored")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=100_000, help="queries per timed measurement")
    parser.add_argument("--callers", type=int, default=64, help="concurrent callers through the service")
    parser.add_argument("--caller-batch", type=int, default=256, help="queries per service call")
    parser.add_argument("--batch-max", type=int, default=8_192, help="service batch max_size (rows)")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--direct-batch", type=int, default=10_000, help="queries per direct FAISS call")
    parser.add_argument("--repeat", type=int, default=3, help="timed measurements per line (best reported)")
    parser.add_argument("--recall-sample", type=int, default=1_000, help="queries checked against exact search")
    parser.add_argument("--gpus", type=int, default=2, help="GPUs for shard/replicate/replicas (default 2)")
    parser.add_argument("--gpu-temp-memory-mb", type=int, default=1024, help="scratch memory per GPU resources object")
    parser.add_argument("--configs", default=",".join(("direct_1gpu", *SERVICE_CONFIGS)), help="comma list of lines to run")
    args = parser.parse_args(argv)
    choices = ("direct_1gpu", *SERVICE_CONFIGS)
    unknown = [c for c in args.configs.split(",") if c not in choices]
    if unknown:
        parser.error(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
    for name in ("n", "dim", "queries", "callers", "caller_batch", "batch_max", "direct_batch", "repeat", "recall_sample"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.gpus < 2:
        parser.error(f"--gpus {args.gpus}: the multi-GPU lines need at least 2")
    args.recall_sample = min(args.recall_sample, args.queries)
    return args


def registration(config: str, args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``ServiceRegistry.register`` for one service configuration."""
    from sage_vdb_faiss import VDBService

    options: dict[str, Any] = {
        "dim": args.dim, "index": "Flat", "metric": "ip", "fp16": True, "gpu_temp_memory_mb": args.gpu_temp_memory_mb,
    }
    batch = {"max_size": args.batch_max, "max_wait_ms": args.batch_wait_ms}
    common = {"factory": VDBService, "kind": "vdb", "batch": batch, "timeout_s": None}
    if config == "1gpu":
        return common | {"options": options | {"device": "cuda:0"}}
    if config in ("shard", "replicate"):
        return common | {"options": options | {"device": "cuda", "multi_gpu": config}}
    if config == "replicas2":
        return common | {"options": options, "device": "cuda", "replicas": args.gpus}
    raise ValueError(f"unknown service configuration {config!r}; choose from {', '.join(SERVICE_CONFIGS)}")


def lines(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Every configuration of ``args.configs``, one line each; a failed one yields a line with ``error``."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < args.gpus:
        raise SystemExit(f"needs a GPU build of FAISS and {args.gpus} visible GPUs (FAISS sees {faiss.get_num_gpus()})")
    data = unit_vectors(args.n, args.dim, seed=0)
    queries = unit_vectors(args.queries, args.dim, seed=1)
    truth = exact_top10(data, queries[: args.recall_sample])
    one_gpu: float | None = None
    for config in args.configs.split(","):
        load = GpuLoad()
        try:
            qps, found, extra = measure_direct(data, queries, args, load) if config == "direct_1gpu" else measure_service(
                config, data, queries, args, load
            )
        except Exception as exc:  # noqa: BLE001 - one failed configuration must not cost the others
            yield {"config": config, "error": f"{type(exc).__name__}: {exc}"}
            continue
        if config == "1gpu":
            one_gpu = qps
        yield {
            "config": config,
            "qps": round(qps, 1),
            "ratio_to_1gpu": None if one_gpu is None else round(qps / one_gpu, 3),
            "gpu_utilization_mean": load.means(),
            "recall_at_10": round(recall_at_10(found[: args.recall_sample], truth), 4),
            **extra,
            "n": args.n,
            "dim": args.dim,
            "queries": args.queries,
            "faiss": faiss.__version__,
            "machine": f"{faiss.get_num_gpus()} GPUs, {os.cpu_count()} cpus",
        }


def measure_direct(data: np.ndarray, queries: np.ndarray, args: argparse.Namespace, load: GpuLoad) -> tuple[float, np.ndarray, dict[str, Any]]:
    """FAISS alone on GPU 0 (fp16 flat): best queries/s of ``--repeat`` passes, and the ids it found."""
    import faiss

    resources = faiss.StandardGpuResources()
    resources.setTempMemory(args.gpu_temp_memory_mb * 2**20)
    cloner = faiss.GpuClonerOptions()
    cloner.useFloat16 = True
    index = faiss.index_cpu_to_gpu(resources, 0, faiss.IndexFlatIP(args.dim), cloner)
    index.add(data)
    with load.sampling():
        qps = max(direct_throughput(index, queries, batch=args.direct_batch) for _ in range(args.repeat))
    found = index.search(queries[: args.recall_sample], 10)[1]
    del index, resources
    return qps, found, {"direct_batch": args.direct_batch}


def measure_service(
    config: str, data: np.ndarray, queries: np.ndarray, args: argparse.Namespace, load: GpuLoad
) -> tuple[float, np.ndarray, dict[str, Any]]:
    """The store of ``config`` behind a ``ServiceRegistry``, searched by concurrent callers."""
    from sage_core.services.registry import ServiceRegistry

    manager = ServiceRegistry(job_name=f"bench-vdb-{config}")
    try:
        manager.register("vdb", **registration(config, args))
        started = time.perf_counter()
        manager.sync["vdb"].add(data, ids=[str(i) for i in range(len(data))], timeout_s=None)
        build_s = time.perf_counter() - started
        search = manager.async_["vdb"].search_arrays
        for future in [search(query=queries[i], top_k=10, timeout_s=None) for i in range(64)]:
            future.result()  # warm-up (every replica)
        found = np.full((len(queries), 10), -1, dtype=np.int64)
        best = 0.0
        with load.sampling():
            for _ in range(args.repeat):
                best = max(best, len(queries) / run_callers(search, queries, found, args.callers, args.caller_batch))
        metrics = manager.metrics()["vdb"]
        devices = manager.sync["vdb"].stats(timeout_s=None)["device"]
    finally:
        manager.close()
    served = [r["served"] for g in metrics["backends"] for r in g["replicas"]]
    mean_rows = metrics["batch"].get("search_arrays", {}).get("mean_rows")
    return best, found, {"build_s": round(build_s, 1), "served_per_replica": served, "mean_batch_rows": mean_rows, "device": devices}


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run the lines, print one JSON line each."""
    args = parse(argv)
    for record in lines(args):
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
