"""The NVML GPU collector: a clean 'no GPU' report without a driver, nvidia-smi's figures with one."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest

from sage_monitor.gpu import MIB, GpuCollector

SMI_FIELDS = "utilization.gpu,memory.used,memory.total,temperature.gpu"


def nvml_works() -> bool:
    """Whether NVML initialises here (a driver and a GPU)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    pynvml.nvmlShutdown()
    return True


def smi(query: str, flag: str = "--query-gpu") -> list[list[float]]:
    """Rows of ``nvidia-smi {flag}={query} --format=csv,noheader,nounits`` as numbers."""
    out = subprocess.run(
        ["nvidia-smi", f"{flag}={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [[float(v) for v in line.split(",")] for line in out.strip().splitlines() if line.strip()]


@pytest.fixture
def collector() -> GpuCollector:
    gpu = GpuCollector()
    yield gpu
    gpu.close()


def test_without_nvml_the_collector_reports_no_gpu_and_logs_no_error(
    collector: GpuCollector, caplog: pytest.LogCaptureFixture
) -> None:
    if nvml_works():
        pytest.skip("NVML works on this machine: the no-GPU path cannot be seen here")
    caplog.set_level(logging.DEBUG)
    first = collector.collect()
    second = collector.collect()
    assert first["available"] is False and first["gpus"] == []
    assert "NVML" in first["reason"] or "pynvml" in first["reason"]
    assert second["reason"] == first["reason"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a machine without a GPU is not an error"


@pytest.mark.gpu
def test_gpu_readings_agree_with_nvidia_smi_run_beside_them(collector: GpuCollector) -> None:
    if shutil.which("nvidia-smi") is None or not nvml_works():
        pytest.skip("no NVIDIA GPU here (nvidia-smi or NVML missing)")
    before = smi(SMI_FIELDS)
    figures = collector.collect()
    after = smi(SMI_FIELDS)
    assert figures["available"] is True
    assert len(figures["gpus"]) == len(before) > 0
    for gpu, row_before, row_after in zip(figures["gpus"], before, after, strict=True):
        (util_a, used_a, total, temp_a), (util_b, used_b, _, temp_b) = row_before, row_after
        low, high = min(util_a, util_b), max(util_a, util_b)
        assert low - 10 <= gpu["utilization_gpu_pct"] <= high + 10, (gpu, row_before, row_after)
        assert abs(gpu["memory_total_bytes"] / MIB - total) <= 1, (gpu, total)
        used = gpu["memory_used_bytes"] / MIB
        assert min(used_a, used_b) - 64 <= used <= max(used_a, used_b) + 64, (gpu, row_before, row_after)
        assert min(temp_a, temp_b) - 2 <= gpu["temperature_c"] <= max(temp_a, temp_b) + 2
        assert gpu["power_w"] is None or 0 < gpu["power_w"] < 2000
        assert gpu["sm_clock_mhz"] is None or 0 <= gpu["sm_clock_mhz"] <= (gpu["sm_clock_max_mhz"] or 10_000)
        assert gpu["name"] and gpu["uuid"]


@pytest.mark.gpu
def test_gpu_memory_per_process_matches_nvidia_smi_compute_apps(collector: GpuCollector) -> None:
    if shutil.which("nvidia-smi") is None or not nvml_works():
        pytest.skip("no NVIDIA GPU here (nvidia-smi or NVML missing)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch cannot reach the GPU")
    held = torch.empty(256 * MIB, dtype=torch.uint8, device="cuda")  # this process now holds GPU memory
    torch.cuda.synchronize()
    try:
        apps = {int(pid): used for pid, used in smi("pid,used_memory", "--query-compute-apps")}
        ours = {p["pid"]: p for gpu in collector.collect()["gpus"] for p in gpu["processes"]}
    finally:
        del held
        torch.cuda.empty_cache()
    assert apps, "nvidia-smi lists no compute process although this one allocated 256 MiB"
    assert set(apps) <= set(ours), (apps, ours)
    for pid, used in apps.items():
        reported = ours[pid]["memory_used_bytes"]
        assert reported is not None and abs(reported / MIB - used) <= 64, (pid, used, ours[pid])
    assert max(apps.values()) >= 256
