"""The plugin registers backend ``faiss`` of kind ``vdb``; its factory resolves devices and options."""

from __future__ import annotations

import pytest

from sage_core import ConfigError
from sage_core.plugin import BackendUnavailable, VectorStore, get_plugin_manager
from sage_core.plugins.manager import PluginManager
from sage_vdb_faiss import FaissOptions, VDBService, gpu_count, plugin

no_gpu = pytest.mark.skipif(gpu_count() > 0, reason="checks behaviour on a machine without a GPU")


@pytest.fixture
def manager():
    """A plugin manager without entry points, with this plugin registered in-process."""
    pm = PluginManager(load_entry_points=False)
    pm.register(plugin, name="faiss-under-test")
    yield pm
    pm.unregister("faiss-under-test")


def test_plugin_offers_faiss_backend_for_vdb_on_cpu_and_cuda(manager):
    spec = manager.backend("vdb", "faiss")
    assert spec.devices == ("cpu", "cuda") and spec.plugin == "faiss-under-test"
    store = spec.factory(device="cpu", dim=8)
    try:
        assert isinstance(store, VDBService) and isinstance(store, VectorStore)
    finally:
        store.close()


def test_installed_entry_point_loads_the_plugin():
    info = {p.name: p for p in get_plugin_manager().plugins()}
    assert "faiss" in info and info["faiss"].error is None
    assert "sage_backends" in info["faiss"].hooks
    assert get_plugin_manager().backend("vdb", "faiss").factory is plugin.create_backend


def test_the_options_model_lists_every_option_but_the_device(manager):
    assert manager.backend("vdb", "faiss").options is FaissOptions
    fields = set(FaissOptions.model_fields)
    assert {"dim", "index", "metric", "nprobe", "fp16", "multi_gpu", "gpu_temp_memory_mb"} <= fields
    assert "device" not in fields and "path" not in fields


def test_config_options_reach_the_store_validated(manager):
    from sage_core.services.registry import ServiceRegistry

    services = ServiceRegistry(manager, job_name="faiss-options")
    try:
        services.register("vdb", kind="vdb", backend="faiss", device="cpu", options={"dim": "8", "metric": "l2", "nprobe": 4})
        services.start()
        (replica,) = services.service("vdb").tiers[0].replicas
        config = replica.backend.config
        assert (config.dim, config.metric, config.nprobe, config.device) == (8, "l2", 4, "cpu")
        with pytest.raises(ConfigError, match=r"services\.bad\.options\.nprobe: Input should be greater than or equal to 1"):
            services.register("bad", kind="vdb", backend="faiss", options={"nprobe": 0})
    finally:
        services.close()


def test_auto_device_uses_the_cpu_without_a_gpu():
    store = plugin.create_backend(device="auto", dim=8)
    try:
        assert store.device == ("cpu" if gpu_count() == 0 else "cuda:0")
    finally:
        store.close()


@no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_backend_unavailable_with_a_fix(device):
    with pytest.raises(BackendUnavailable, match="use device 'cpu' or 'auto', or name a fallback"):
        plugin.create_backend(device=device, dim=8)


@no_gpu
def test_cuda_without_a_gpu_fails_at_creation_even_before_dim_is_known():
    with pytest.raises(BackendUnavailable):
        VDBService(device="cuda")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "tpu"}, r"VDBService\.device: unknown device 'tpu'"),
        ({"metric": "hamming"}, r"VDBService\.metric: Input should be 'cosine', 'ip' or 'l2'"),
        ({"indexx": "Flat"}, r"VDBService\.indexx: unknown key \(did you mean 'index'\?\); valid keys: device, dim, "),
        ({"multi_gpu": "mirror"}, r"VDBService\.multi_gpu: Input should be 'shard' or 'replicate'"),
        ({"nprobe": 0}, r"VDBService\.nprobe: Input should be greater than or equal to 1"),
        ({"rebuild_ratio": 0}, r"VDBService\.rebuild_ratio: Input should be greater than 0"),
        ({"dim": -3}, r"VDBService\.dim: Input should be greater than 0"),
        ({"index": " "}, r"VDBService\.index: index must be a faiss index_factory string"),
    ],
)
def test_bad_options_are_config_errors_naming_the_fix(options, message):
    with pytest.raises(ConfigError, match=message):
        VDBService(**options)


def test_unknown_index_factory_string_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot build index 'NotAnIndex'"):
        VDBService(8, index="NotAnIndex", device="cpu")


def test_bad_index_string_with_unknown_dim_fails_at_first_add_and_store_recovers(data):
    store = VDBService(index="PQ5", device="cpu")  # 16 is not divisible by 5
    try:
        with pytest.raises(ConfigError, match="cannot build index 'PQ5' for dimension 16"):
            store.add(data[:4])
        assert store.dim is None and store.count() == 0
    finally:
        store.close()
