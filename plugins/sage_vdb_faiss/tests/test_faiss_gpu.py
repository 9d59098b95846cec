"""The GPU path: run with ``pytest -m gpu`` on a machine with a GPU FAISS build; skipped here."""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
import pytest

from sage_core import ConfigError
from sage_core.plugin import BackendUnavailable
from sage_core.testing import VectorStoreContract, unit_vectors
from sage_vdb_faiss import VDBService, gpu_count

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(gpu_count() == 0, reason="no GPU visible to FAISS (faiss.get_num_gpus() == 0 or faiss-cpu)"),
]
two_gpus = pytest.mark.skipif(gpu_count() < 2, reason="needs two GPUs visible to FAISS")


class TestGpuFlatContract(VectorStoreContract):
    """The contract suite on a GPU flat index."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="Flat", device="cuda")


class TestGpuIvfContract(VectorStoreContract):
    """The contract suite on a GPU IVF index (trained once 20 vectors arrived, every list probed)."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Any]:
        return lambda: VDBService(self.dim, index="IVF4,Flat", train_min=20, nprobe=4, device="cuda")


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return unit_vectors(20_000, 64, seed=1)


def _recall(found: list[list[Any]], truth: np.ndarray) -> float:
    hits = sum(len({h.id for h in row} & {f"c{i}" for i in truth_row}) for row, truth_row in zip(found, truth))
    return hits / truth.size


@pytest.fixture(scope="module")
def exact_top10(corpus: np.ndarray) -> np.ndarray:
    return np.argsort(-(corpus[:200] @ corpus.T), axis=1)[:, :10]


def _loaded(make_vdb, corpus, **options):
    store = make_vdb(64, metric="ip", **options)
    store.add(corpus, ids=[f"c{i}" for i in range(len(corpus))], metadata=[{"part": i % 10} for i in range(len(corpus))])
    return store


def test_gpu_flat_matches_exact_search(make_vdb, corpus, exact_top10):
    store = _loaded(make_vdb, corpus, device="cuda")
    assert store.device == "cuda:0"
    assert _recall(store.search(corpus[:200], top_k=10), exact_top10) == 1.0


def test_fp16_storage_keeps_recall_above_99_percent(make_vdb, corpus, exact_top10):
    store = _loaded(make_vdb, corpus, device="cuda", fp16=True, gpu_temp_memory_mb=256)
    assert _recall(store.search(corpus[:200], top_k=10), exact_top10) >= 0.99


def test_gpu_ivf_trains_and_searches(make_vdb, corpus, exact_top10):
    store = _loaded(make_vdb, corpus, device="cuda", index="IVF64,Flat", nprobe=64)
    assert store.stats()["trained"]
    assert _recall(store.search(corpus[:200], top_k=10), exact_top10) >= 0.99


def test_gpu_filter_returns_top_k_matching_hits(make_vdb, corpus):
    store = _loaded(make_vdb, corpus, device="cuda", filter_exact_max=1)
    results = store.search(corpus[:50], top_k=10, filter={"part": 4})
    assert all(len(hits) == 10 and all(h.metadata["part"] == 4 for h in hits) for hits in results)


def test_gpu_deletes_are_tombstoned_then_compacted(make_vdb, corpus):
    store = _loaded(make_vdb, corpus, device="cuda", rebuild_ratio=0.3)
    gone = [f"c{i}" for i in range(0, 20_000, 2)]
    store.delete(gone[:4000])
    assert store.stats()["dead_rows"] == 4000
    assert not {h.id for hits in store.search(corpus[:100], top_k=10) for h in hits} & set(gone[:4000])
    store.delete(gone[4000:])
    assert store.stats()["dead_rows"] == 0 and store.count() == 10_000
    assert store.search(corpus[1], top_k=1)[0].id == "c1"


def test_top_k_beyond_the_gpu_selection_limit_is_answered_exactly(make_vdb, corpus):
    store = _loaded(make_vdb, corpus, device="cuda")
    hits = store.search(corpus[0], top_k=3000)
    assert len(hits) == 3000 and hits[0].id == "c0"


def test_saved_on_gpu_loads_on_cpu_and_back(make_vdb, corpus, tmp_path):
    store = _loaded(make_vdb, corpus[:2000], device="cuda", index="IVF16,Flat", nprobe=16)
    path = str(tmp_path / "gpu.zip")
    store.save(path)
    on_cpu = make_vdb(64, metric="ip", device="cpu")
    on_cpu.load(path)
    again = make_vdb(64, metric="ip", device="cuda")
    again.load(path)
    for loaded in (on_cpu, again):
        assert [h.id for h in loaded.search(corpus[5], top_k=3)] == [h.id for h in store.search(corpus[5], top_k=3)]


def test_concurrent_threads_share_one_gpu_store_safely(make_vdb, corpus):
    store = _loaded(make_vdb, corpus, device="cuda")
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(offset, offset + 40):
                assert store.search(corpus[i], top_k=1)[0].id == f"c{i}"
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(40 * t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_hnsw_on_cuda_is_a_config_error_and_auto_keeps_it_on_cpu(make_vdb):
    with pytest.raises(ConfigError, match="cannot run on the GPU"):
        make_vdb(32, index="HNSW32", device="cuda")
    assert make_vdb(32, index="HNSW32", device="auto").device == "cpu"


def test_gpu_number_out_of_range_is_backend_unavailable():
    with pytest.raises(BackendUnavailable, match=f"only {gpu_count()} GPU"):
        VDBService(8, device=f"cuda:{gpu_count()}")


@two_gpus
@pytest.mark.parametrize("mode", ["shard", "replicate"])
def test_multi_gpu_gives_the_single_gpu_answers_and_accepts_later_adds(make_vdb, corpus, mode):
    single = _loaded(make_vdb, corpus, device="cuda")
    spread = make_vdb(64, metric="ip", device="cuda", multi_gpu=mode)
    spread.add(corpus[:10_000], ids=[f"c{i}" for i in range(10_000)])
    spread.add(corpus[10_000:], ids=[f"c{i}" for i in range(10_000, 20_000)])
    assert spread.device.endswith(f"({mode})")
    expected = [[h.id for h in hits] for hits in single.search(corpus[:100], top_k=10)]
    assert [[h.id for h in hits] for hits in spread.search(corpus[:100], top_k=10)] == expected
