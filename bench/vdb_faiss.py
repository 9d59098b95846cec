"""FAISS vector search: FAISS called directly against the same search through SAGE's service layer.

CPU lines (default 200k x 384 random unit vectors, fixed seeds): Flat, HNSW32 and IVF1024 (nprobe 16).
For each index, in one run and side by side:

* ``direct_qps``: ``index.search`` on the whole query set in one batch (FAISS on its own);
* ``service_qps``: the same queries from ``--callers`` concurrent asyncio callers, each awaiting
  one call of ``--caller-batch`` queries at a time through ``ServiceRegistry.async_["vdb"].search_arrays``
  to a ``sage_vdb_faiss.VDBService`` (the service layer coalesces them into stacked FAISS calls;
  results come back as one structured array per call);
* ``service_hits_qps`` / ``hits_ratio``: the same through ``search``, whose results read as lists of
  ``Hit`` (columnar ``sage_core.plugin.Hits``: no ``Hit`` object is made until the caller reads one);
* ``service_hits_read_qps`` / ``hits_read_ratio``: ``search`` again, each caller reading every hit's
  ``id`` (so every ``Hit`` object is made, in the callers' thread) before its next call;
* ``ratio`` = service / direct (target >= 0.85) and ``recall_at_10`` of the service's answers
  against exact search;
* ``direct_qps_at_service_batch``: FAISS called directly in batches as large as the service's
  mean batch, and ``service_vs_same_batch``: what the service layer itself costs (the rest of the
  gap is FAISS being slower on small batches than on one big one).

``--gpu`` prints GPU lines instead: flat 1M x 768, fp32 and fp16 storage, direct searches in
batches of ``--gpu-direct-batch`` and callers sending ``--gpu-caller-batch`` queries each, plus
``gpu_vs_cpu``: the GPU service's queries/s over FAISS's CPU flat index on the same data.

One JSON line per configuration. ``--n`` and ``--queries`` shrink the run for a quick check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from typing import Any, Callable, Iterator

import faiss
import numpy as np
from sage_vdb_faiss import VDBService

from sage_core.services.registry import ServiceRegistry

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
    parser.add_argument("--batch-max", type=int, default=64, help="service batch max_size (rows)")
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
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; best of each is reported")
    parser.add_argument(
        "--blas-threshold",
        type=int,
        default=20,
        help="faiss.cvar.distance_compute_blas_threshold for both paths; FAISS 1.15's default (128000) "
        "keeps flat searches of fewer queries off BLAS, which made both paths 2-3x slower here; -1 keeps it",
    )
    parser.add_argument("--cpu-baseline-queries", type=int, default=1_000, help="queries for gpu_vs_cpu")
    args = parser.parse_args()
    if args.blas_threshold >= 0:
        faiss.cvar.distance_compute_blas_threshold = args.blas_threshold
    for record in gpu_lines(args) if args.gpu else cpu_lines(args):
        print(json.dumps(record), flush=True)


# ---------------------------------------------------------------------- CPU


def cpu_lines(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """One line per CPU index: direct vs service queries/s and recall@10."""
    data = unit_vectors(args.n, args.dim, seed=0)
    queries = unit_vectors(args.queries, args.dim, seed=1)
    truth = exact_top10(data, queries)
    for name in args.indexes.split(","):
        spec = CPU_INDEXES[name.strip()]
        direct_index, direct_build = timed(lambda: build_direct(spec, data, args))
        options = {"index": spec, "metric": "ip", "device": "cpu", "nprobe": args.nprobe, "ef_search": args.ef_search}
        if spec.startswith("IVF"):  # train on as many vectors as the direct index did
            options["train_max"] = args.train_sample
            options["train_min"] = min(len(data), 39 * faiss.extract_index_ivf(direct_index).nlist)
        with LoadedService(data, options, args.batch_max, args.batch_wait_ms) as service:
            figures = compare(direct_index, service, queries, len(queries), args, args.caller_batch)
        del direct_index
        yield line(spec, "cpu", data, figures, truth) | {
            "build_s": {"direct": round(direct_build, 1), "service": service.build_s}
        }


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


def gpu_lines(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
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
    for fp16 in (False, True):
        resources = faiss.StandardGpuResources()
        cloner = faiss.GpuClonerOptions()
        cloner.useFloat16 = fp16
        gpu_index = faiss.index_cpu_to_gpu(resources, 0, faiss.IndexFlatIP(args.gpu_dim), cloner)
        gpu_index.add(data)
        if truth is None:  # fp32 flat on the GPU is exact
            truth = gpu_index.search(queries, 10)[1]
        options = {"index": "Flat", "metric": "ip", "device": "cuda", "fp16": fp16}
        with LoadedService(data, options, args.gpu_batch_max, args.batch_wait_ms) as service:
            figures = compare(gpu_index, service, queries, args.gpu_direct_batch, args, args.gpu_caller_batch)
        del gpu_index, resources
        yield line("Flat fp16" if fp16 else "Flat fp32", "cuda", data, figures, truth) | {
            "gpu_vs_cpu": round(figures["service_qps"] / cpu_qps, 1),
            "cpu_flat_qps": round(cpu_qps, 1),
        }


# ---------------------------------------------------------------------- measurements


def direct_throughput(index: faiss.Index, queries: np.ndarray, batch: int) -> float:
    """Queries/s of ``index.search`` over ``queries`` in batches of ``batch`` (after a warm-up)."""
    index.search(queries[: min(len(queries), 64)], 10)
    start = time.perf_counter()
    for offset in range(0, len(queries), batch):
        index.search(queries[offset : offset + batch], 10)
    return len(queries) / (time.perf_counter() - start)


class LoadedService:
    """A ``VDBService`` behind a ``ServiceRegistry`` (the service layer a flow uses), holding ``data``."""

    def __init__(self, data: np.ndarray, options: dict[str, Any], batch_max: int, batch_wait_ms: float) -> None:
        self.manager = ServiceRegistry(job_name="bench-vdb-faiss")
        batch = {"max_size": batch_max, "max_wait_ms": batch_wait_ms}
        self.manager.register("vdb", lambda: VDBService(data.shape[1], **options), batch=batch)
        try:
            start = time.perf_counter()
            self.manager.sync["vdb"].add(data, ids=[str(i) for i in range(len(data))], timeout_s=None)
            self.build_s = round(time.perf_counter() - start, 1)
            self.searches = {"arrays": self.manager.async_["vdb"].search_arrays, "hits": self.manager.async_["vdb"].search}
            self.searches["hits_read"] = self.searches["hits"]
            for search in self.searches.values():
                for future in [search(query=data[i], top_k=10) for i in range(64)]:
                    future.result()  # warm-up
        except BaseException:
            self.manager.close()
            raise

    def __enter__(self) -> "LoadedService":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.manager.close()

    def measure(self, queries: np.ndarray, callers: int, caller_batch: int, how: str = "arrays") -> tuple[float, np.ndarray]:
        """Queries/s of ``callers`` concurrent callers searching every query, and the ids found.

        ``how``: ``arrays`` calls ``search_arrays`` (one structured array per call), ``hits`` calls
        ``search`` (hits read as ``Hit`` objects), ``hits_read`` calls ``search`` and reads every hit.
        """
        found = np.full((len(queries), 10), -1, dtype=np.int64)
        elapsed = run_callers(self.searches[how], queries, found, callers, caller_batch, read=how == "hits_read")
        return len(queries) / elapsed, found

    def mean_batch_rows(self) -> float:
        """Mean rows per stacked search call so far."""
        return float(self.manager.metrics()["vdb"]["batch"].get("search_arrays", {}).get("mean_rows") or 1.0)


def compare(
    index: faiss.Index,
    service: LoadedService,
    queries: np.ndarray,
    direct_batch: int,
    args: argparse.Namespace,
    caller_batch: int,
) -> dict[str, Any]:
    """Best of ``--repeat`` interleaved rounds: FAISS direct, the service, FAISS at the service's batch size."""
    best = {"direct_qps": 0.0, "service_qps": 0.0, "service_hits_qps": 0.0, "service_hits_read_qps": 0.0, "same_batch_qps": 0.0}
    found = np.empty(0)
    for _ in range(args.repeat):
        best["direct_qps"] = max(best["direct_qps"], direct_throughput(index, queries, batch=direct_batch))
        qps, found = service.measure(queries, args.callers, caller_batch)
        best["service_qps"] = max(best["service_qps"], qps)
        hits_qps, _ = service.measure(queries, args.callers, caller_batch, how="hits")
        best["service_hits_qps"] = max(best["service_hits_qps"], hits_qps)
        read_qps, _ = service.measure(queries, args.callers, caller_batch, how="hits_read")
        best["service_hits_read_qps"] = max(best["service_hits_read_qps"], read_qps)
        same = direct_throughput(index, queries, batch=max(1, round(service.mean_batch_rows())))
        best["same_batch_qps"] = max(best["same_batch_qps"], same)
    direct_found = np.concatenate(
        [index.search(queries[lo : lo + direct_batch], 10)[1] for lo in range(0, len(queries), direct_batch)]
    )
    return best | {
        "found": found,
        "direct_found": direct_found,
        "mean_batch_rows": round(service.mean_batch_rows(), 1),
    }


def run_callers(
    search: Any, queries: np.ndarray, found: np.ndarray, callers: int, caller_batch: int, read: bool = False
) -> float:
    """Seconds for ``callers`` asyncio tasks, each awaiting one call of ``caller_batch`` queries at a
    time, to search every query (the caller model of ``bench/services.py``); then fills ``found``.
    ``read``: each caller reads every hit's ``id`` of an answer before its next call."""
    chunks = iter(range(0, len(queries), caller_batch))
    answers: dict[int, Any] = {}

    async def caller() -> None:
        for lo in chunks:
            hi = min(lo + caller_batch, len(queries))
            query = queries[lo] if hi - lo == 1 else queries[lo:hi]
            result = await asyncio.wrap_future(search(query=query, top_k=10, timeout_s=None))
            answers[lo] = [result] if hi - lo == 1 else result
            if read:
                for row in answers[lo]:
                    for hit in row:
                        hit.id  # noqa: B018 - reading it is the point

    async def run_all() -> None:
        await asyncio.gather(*(caller() for _ in range(callers)))

    start = time.perf_counter()
    asyncio.run(run_all())
    elapsed = time.perf_counter() - start
    for lo, rows in answers.items():
        for offset, hits in enumerate(rows):
            ids = [i for i in hits["id"] if i is not None] if isinstance(hits, np.ndarray) else [h.id for h in hits]
            found[lo + offset, : len(ids)] = [int(i) for i in ids]
    return elapsed


def line(index: str, device: str, data: np.ndarray, figures: dict[str, Any], truth: np.ndarray) -> dict[str, Any]:
    """The JSON line of one configuration (contract keys first)."""
    return {
        "index": index,
        "device": device,
        "n": len(data),
        "dim": data.shape[1],
        "direct_qps": round(figures["direct_qps"], 1),
        "service_qps": round(figures["service_qps"], 1),
        "ratio": round(figures["service_qps"] / figures["direct_qps"], 3),
        "service_hits_qps": round(figures["service_hits_qps"], 1),
        "hits_ratio": round(figures["service_hits_qps"] / figures["direct_qps"], 3),
        "service_hits_read_qps": round(figures["service_hits_read_qps"], 1),
        "hits_read_ratio": round(figures["service_hits_read_qps"] / figures["direct_qps"], 3),
        "recall_at_10": round(recall_at_10(figures["found"], truth), 4),
        "direct_recall_at_10": round(recall_at_10(figures["direct_found"], truth), 4),
        "queries": len(truth),
        "mean_batch_rows": figures["mean_batch_rows"],
        "direct_qps_at_service_batch": round(figures["same_batch_qps"], 1),
        "service_vs_same_batch": round(figures["service_qps"] / figures["same_batch_qps"], 3),
        "blas_threshold": faiss.cvar.distance_compute_blas_threshold,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} omp threads, load {os.getloadavg()[0]:.1f}",
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
