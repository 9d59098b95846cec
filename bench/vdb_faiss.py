"""FAISS vector search: FAISS called directly against the same search through SAGE's service layer.

CPU lines (default 200k x 384 random unit vectors, fixed seeds): Flat, HNSW32 and IVF1024 (nprobe 16).
For each index, in one run and side by side:

* ``direct_qps``: ``index.search`` on the whole query set in one batch (FAISS on its own);
* ``service_qps``: the same queries from ``--callers`` concurrent threads, each sending
  ``--caller-batch`` queries per call through ``ServiceManager.async_["vdb"].search`` to a
  ``sage_vdb_faiss.VDBService`` (the service layer coalesces them into stacked FAISS calls);
* ``ratio`` = service / direct (target >= 0.85) and ``recall_at_10`` of the service's answers
  against exact search.

``--gpu`` prints GPU lines instead: flat 1M x 768, fp32 and fp16 storage, direct searches in
batches of ``--gpu-direct-batch`` and callers sending ``--gpu-caller-batch`` queries each, plus
``gpu_vs_cpu``: the GPU service's queries/s over FAISS's CPU flat index on the same data.

One JSON line per configuration. ``--n`` and ``--queries`` shrink the run for a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from typing import Any, Callable

import faiss
import numpy as np

from sage_core.services.manager import ServiceManager
from sage_vdb_faiss import VDBService

CPU_INDEXES = {"flat": "Flat", "hnsw32": "HNSW32", "ivf1024": "IVF1024,Flat"}


def main() -> None:
    """Parse flags, run the chosen lines, print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="vectors in the CPU store")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=5_000, help="queries per measurement (CPU)")
    parser.add_argument("--indexes", default="flat,hnsw32,ivf1024", help=f"comma list of {', '.join(CPU_INDEXES)}")
    parser.add_argument("--callers", type=int, default=64, help="concurrent callers through the service")
    parser.add_argument("--caller-batch", type=int, default=1, help="queries per service call (CPU)")
    parser.add_argument("--batch-max", type=int, default=32, help="service batch max_size (rows)")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0, help="service batch max_wait_ms")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--ef-search", type=int, default=64)
    parser.add_argument("--train-sample", type=int, default=51_200, help="IVF training vectors (both paths)")
    parser.add_argument("--gpu", action="store_true", help="run the GPU lines instead of the CPU ones")
    parser.add_argument("--gpu-n", type=int, default=1_000_000)
    parser.add_argument("--gpu-dim", type=int, default=768)
    parser.add_argument("--gpu-queries", type=int, default=100_000)
    parser.add_argument("--gpu-direct-batch", type=int, default=10_000)
    parser.add_argument("--gpu-caller-batch", type=int, default=256)
    parser.add_argument("--gpu-batch-max", type=int, default=8_192)
    parser.add_argument("--cpu-baseline-queries", type=int, default=1_000, help="queries for gpu_vs_cpu")
    args = parser.parse_args()
    lines = gpu_lines(args) if args.gpu else cpu_lines(args)
    for line in lines:
        print(json.dumps(line), flush=True)


# ---------------------------------------------------------------------- CPU


def cpu_lines(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One line per CPU index: direct vs service queries/s and recall@10."""
    data = unit_vectors(args.n, args.dim, seed=0)
    queries = unit_vectors(args.queries, args.dim, seed=1)
    truth = exact_top10(data, queries)
    lines = []
    for name in args.indexes.split(","):
        spec = CPU_INDEXES[name.strip()]
        direct_index, direct_build = timed(lambda: build_direct(spec, data, args))
        direct_qps = direct_throughput(direct_index, queries, batch=len(queries))
        del direct_index
        options = {"index": spec, "metric": "ip", "device": "cpu", "nprobe": args.nprobe, "ef_search": args.ef_search}
        if spec.startswith("IVF"):  # train on the same number of vectors as the direct index
            options["train_max"] = args.train_sample
            options["train_min"] = min(len(data), 39 * 1024)
        measured = service_throughput(
            data, queries, options, args.callers, args.caller_batch, args.batch_max, args.batch_wait_ms
        )
        lines.append(
            line(spec, "cpu", data, direct_qps, measured, truth)
            | {"build_s": {"direct": round(direct_build, 1), "service": measured["build_s"]}}
        )
    return lines


def build_direct(spec: str, data: np.ndarray, args: argparse.Namespace) -> faiss.Index:
    """The index FAISS users would build by hand, with the same search parameters as the service."""
    index = faiss.index_factory(data.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        sample = np.random.default_rng(0).choice(len(data), min(args.train_sample, len(data)), replace=False)
        index.train(data[np.sort(sample)])
    index.add(data)
    space = faiss.ParameterSpace()
    if faiss.try_extract_index_ivf(index) is not None:
        space.set_index_parameter(index, "nprobe", args.nprobe)
    if "HNSW" in spec:
        space.set_index_parameter(index, "efSearch", args.ef_search)
    return index


# ---------------------------------------------------------------------- GPU


def gpu_lines(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Flat 1M x 768 on one GPU, fp32 and fp16 storage; plus the CPU flat baseline for gpu_vs_cpu."""
    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        raise SystemExit("--gpu needs a GPU build of FAISS and a visible GPU (faiss.get_num_gpus() == 0)")
    data = unit_vectors(args.gpu_n, args.gpu_dim, seed=0)
    queries = unit_vectors(args.gpu_queries, args.gpu_dim, seed=1)
    cpu_index = faiss.IndexFlatIP(args.gpu_dim)
    cpu_index.add(data)
    cpu_qps = direct_throughput(cpu_index, queries[: args.cpu_baseline_queries], batch=args.cpu_baseline_queries)
    del cpu_index
    truth = None
    lines = []
    for fp16 in (False, True):
        resources = faiss.StandardGpuResources()
        options = faiss.GpuClonerOptions()
        options.useFloat16 = fp16
        gpu_index = faiss.index_cpu_to_gpu(resources, 0, faiss.IndexFlatIP(args.gpu_dim), options)
        gpu_index.add(data)
        if truth is None:  # fp32 flat on the GPU is exact
            truth = gpu_index.search(queries, 10)[1]
        direct_qps = direct_throughput(gpu_index, queries, batch=args.gpu_direct_batch)
        del gpu_index, resources
        measured = service_throughput(
            data,
            queries,
            {"index": "Flat", "metric": "ip", "device": "cuda", "fp16": fp16},
            args.callers,
            args.gpu_caller_batch,
            args.gpu_batch_max,
            args.batch_wait_ms,
        )
        name = "Flat fp16" if fp16 else "Flat fp32"
        lines.append(
            line(name, "cuda", data, direct_qps, measured, truth)
            | {"gpu_vs_cpu": round(measured["qps"] / cpu_qps, 1), "cpu_flat_qps": round(cpu_qps, 1)}
        )
    return lines


# ---------------------------------------------------------------------- measurements


def direct_throughput(index: faiss.Index, queries: np.ndarray, batch: int) -> float:
    """Queries/s of ``index.search`` over ``queries`` in batches of ``batch`` (after a warm-up)."""
    index.search(queries[: min(len(queries), 64)], 10)
    start = time.perf_counter()
    for offset in range(0, len(queries), batch):
        index.search(queries[offset : offset + batch], 10)
    return len(queries) / (time.perf_counter() - start)


def service_throughput(
    data: np.ndarray,
    queries: np.ndarray,
    options: dict[str, Any],
    callers: int,
    caller_batch: int,
    batch_max: int,
    batch_wait_ms: float,
) -> dict[str, Any]:
    """Load ``data`` into a VDBService behind a ServiceManager, then search from ``callers`` threads."""
    manager = ServiceManager(job_name="bench-vdb-faiss")
    manager.register(
        "vdb", lambda: VDBService(data.shape[1], **options), batch={"max_size": batch_max, "max_wait_ms": batch_wait_ms}
    )
    try:
        start = time.perf_counter()
        manager.sync["vdb"].add(data, ids=[str(i) for i in range(len(data))], timeout_s=None)
        build_s = time.perf_counter() - start
        search = manager.async_["vdb"].search
        for future in [search(query=queries[i], top_k=10) for i in range(min(64, len(queries)))]:
            future.result()  # warm-up
        found = np.full((len(queries), 10), -1, dtype=np.int64)
        chunks = [(s, min(s + caller_batch, len(queries))) for s in range(0, len(queries), caller_batch)]
        barrier = threading.Barrier(callers + 1)
        errors: list[BaseException] = []

        def caller(mine: list[tuple[int, int]]) -> None:
            barrier.wait()
            try:
                for lo, hi in mine:
                    query = queries[lo] if hi - lo == 1 else queries[lo:hi]
                    result = search(query=query, top_k=10, timeout_s=None).result()
                    for row, hits in enumerate([result] if hi - lo == 1 else result):
                        found[lo + row, : len(hits)] = [int(h.id) for h in hits]
            except BaseException as exc:  # reported after the run
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(chunks[c::callers],)) for c in range(callers)]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        batch = manager.metrics()["vdb"]["batch"].get("search", {})
        return {"qps": len(queries) / elapsed, "found": found, "build_s": round(build_s, 1), "batch": batch}
    finally:
        manager.close()


def line(
    index: str, device: str, data: np.ndarray, direct_qps: float, measured: dict[str, Any], truth: np.ndarray
) -> dict[str, Any]:
    """The JSON line of one configuration (contract keys first)."""
    return {
        "index": index,
        "device": device,
        "n": len(data),
        "dim": data.shape[1],
        "direct_qps": round(direct_qps, 1),
        "service_qps": round(measured["qps"], 1),
        "ratio": round(measured["qps"] / direct_qps, 3),
        "recall_at_10": round(recall_at_10(measured["found"], truth), 4),
        "queries": len(truth),
        "mean_batch_rows": measured["batch"].get("mean_rows"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, faiss {faiss.__version__}, {faiss.omp_get_max_threads()} omp threads",
    }


def exact_top10(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact inner-product top-10 ids (FAISS flat, the ground truth for recall)."""
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    return index.search(queries, 10)[1]


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-10 found in the returned top-10."""
    return float(np.mean([len(set(f) & set(t)) / 10.0 for f, t in zip(found.tolist(), truth.tolist())]))


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` random unit vectors, generated in float32 blocks to keep memory at one copy."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65_536):
        block = rng.standard_normal((min(65_536, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the seconds it took."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


if __name__ == "__main__":
    main()
