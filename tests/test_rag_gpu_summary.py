"""The RAG demo's GPU summary (examples/rag/gpu.py and the GPU parts of examples/rag/report.py).

:class:`GpuSampler` is driven by a scripted collector that returns fixed readings in the format of
``sage_monitor``'s ``GpuCollector.collect()`` (NVML itself has its own tests). With a long sampling
interval the sampler reads exactly twice per phase (when the phase starts and when it ends), after
one read when it is built, so each phase's figures are known in advance: per-GPU peaks, means,
the processes at each GPU's peak, the printed table and the results JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

from rag.gpu import GIB, GpuSampler  # noqa: E402
from rag.report import RunFigures, print_summary, results_document  # noqa: E402

H200_TOTAL = 140 * GIB
ONCE_PER_PHASE_END = 3600.0  # the sampler reads at a phase's start and end, never in between


class ScriptedCollector:
    """A metrics collector (``name`` and ``collect()``) that returns the given readings in order."""

    name = "gpu"

    def __init__(self, readings: list[dict[str, Any]]) -> None:
        self.readings = list(readings)

    def collect(self) -> dict[str, Any]:
        """The next scripted reading; fails the test when the sampler reads more often than scripted."""
        assert self.readings, "the sampler read the collector more often than the test scripted"
        return self.readings.pop(0)


def gpu_entry(index: int, used_gib: float, util: int | None, processes: list[tuple[int, str, float]],
              name: str = "NVIDIA H200") -> dict[str, Any]:
    """One GPU as ``GpuCollector.collect()`` reports it (every key, the figures the sampler ignores fixed)."""
    return {
        "index": index, "name": name, "uuid": f"GPU-{index:08d}",
        "utilization_gpu_pct": util, "utilization_memory_pct": None if util is None else util // 2,
        "memory_used_bytes": int(used_gib * GIB), "memory_total_bytes": H200_TOTAL, "memory_reserved_bytes": 0,
        "temperature_c": 40, "power_w": 120.0, "power_limit_w": 700.0, "sm_clock_mhz": 1980, "sm_clock_max_mhz": 1980,
        "processes": [{"pid": pid, "name": pname, "memory_used_bytes": int(gib * GIB)} for pid, pname, gib in processes],
    }


def reading(*gpus: dict[str, Any]) -> dict[str, Any]:
    """A whole collector reading."""
    return {"available": True, "driver": "570.86.15", "gpus": list(gpus), "time": 0.0}


ME = os.getpid()
VLLM = 4242


@pytest.fixture
def two_gpu_run() -> GpuSampler:
    """Two phases on two H200s: the vdb (this process) on GPU 0, the vLLM engine on GPU 1.

    ingestion: GPU 0 holds 0.8 then 0.5 GiB at 20% then 60%; GPU 1 stays idle and empty.
    answering: GPU 0 reports no utilisation; GPU 1 grows from 10 to 30 GiB at 50% then 90%.
    """
    collector = ScriptedCollector([
        reading(gpu_entry(0, 0.0, 0, []), gpu_entry(1, 0.0, 0, [])),
        reading(gpu_entry(0, 0.8, 20, [(ME, "python", 0.75)]), gpu_entry(1, 0.0, 0, [])),
        reading(gpu_entry(0, 0.5, 60, [(ME, "python", 0.45)]), gpu_entry(1, 0.0, 0, [])),
        reading(gpu_entry(0, 0.8, None, [(ME, "python", 0.75)]), gpu_entry(1, 10.0, 50, [(VLLM, "ray::LLM", 9.5)])),
        reading(gpu_entry(0, 0.8, None, [(ME, "python", 0.75)]),
                gpu_entry(1, 30.0, 90, [(VLLM, "ray::LLM", 29.0), (VLLM + 1, "ray::Worker", 0.5)])),
    ])
    sampler = GpuSampler(interval_s=ONCE_PER_PHASE_END, collector=collector)
    with sampler.phase("ingestion"):
        pass
    with sampler.phase("answering"):
        pass
    assert not collector.readings, "each phase reads the collector exactly twice"
    return sampler


def run_figures() -> RunFigures:
    """A run's timings with nothing answered (the GPU part of the summary is what these tests read)."""
    return RunFigures(config="gpu-ray", services={"vdb": "faiss on cuda", "llm": "vllm on cuda"})


def test_sampler_reports_every_gpu_per_phase_with_its_own_peak_and_utilization(two_gpu_run: GpuSampler) -> None:
    assert two_gpu_run.available and two_gpu_run.gpu_count == 2
    assert two_gpu_run.gpu_name == "2x NVIDIA H200"
    ingestion, answering = two_gpu_run.phases["ingestion"], two_gpu_run.phases["answering"]
    assert [g.index for g in ingestion] == [g.index for g in answering] == [0, 1]

    vdb, idle = ingestion
    assert vdb.samples == idle.samples == 2
    assert vdb.memory_used_peak_gib == pytest.approx(0.8) and vdb.memory_total_gib == pytest.approx(140)
    assert (vdb.utilization_mean_pct, vdb.utilization_max_pct) == (pytest.approx(40), 60)
    assert (idle.memory_used_peak_gib, idle.utilization_mean_pct, idle.utilization_max_pct) == (0, 0, 0)
    assert idle.processes_gib == {}

    vdb, llm = answering
    assert (vdb.utilization_mean_pct, vdb.utilization_max_pct) == (0, 0)  # the GPU reported no utilisation
    assert llm.memory_used_peak_gib == pytest.approx(30) and llm.name == "NVIDIA H200"
    assert (llm.utilization_mean_pct, llm.utilization_max_pct) == (pytest.approx(70), 90)


def test_processes_are_those_at_each_gpus_own_peak(two_gpu_run: GpuSampler) -> None:
    vdb, _ = two_gpu_run.phases["ingestion"]
    assert vdb.processes_gib == {f"this process (pid {ME}: vdb + embedder)": pytest.approx(0.75)}  # 0.8 GiB read, not 0.5
    _, llm = two_gpu_run.phases["answering"]
    assert llm.processes_gib == {f"ray::LLM (pid {VLLM})": pytest.approx(29), f"ray::Worker (pid {VLLM + 1})": pytest.approx(0.5)}


def test_summary_prints_one_row_per_phase_and_gpu(two_gpu_run: GpuSampler) -> None:
    console = Console(record=True, width=220)
    print_summary(console, run_figures(), two_gpu_run, {})
    text = console.export_text()
    assert "GPU: 2x NVIDIA H200 (NVML, through the monitor plugin)" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if ", GPU " in line}
    assert set(rows) == {"ingestion, GPU 0", "ingestion, GPU 1", "answering, GPU 0", "answering, GPU 1"}
    assert "0.8 / 140 GiB" in rows["ingestion, GPU 0"] and "40% / 60%" in rows["ingestion, GPU 0"]
    assert "0.0 / 140 GiB" in rows["ingestion, GPU 1"] and "│ -" in rows["ingestion, GPU 1"]
    assert "30.0 / 140 GiB" in rows["answering, GPU 1"] and "70% / 90%" in rows["answering, GPU 1"]
    assert f"ray::LLM (pid {VLLM}): 29.00 GiB" in rows["answering, GPU 1"]


def test_results_json_holds_a_list_of_per_gpu_figures_per_phase(two_gpu_run: GpuSampler) -> None:
    document = json.loads(json.dumps(results_document(run_figures(), two_gpu_run)))
    assert document["device"] == "2x NVIDIA H200"
    assert list(document["gpu"]) == ["ingestion", "answering"]
    llm = document["gpu"]["answering"][1]
    assert set(llm) == {"index", "name", "samples", "memory_used_peak_gib", "memory_total_gib",
                        "utilization_mean_pct", "utilization_max_pct", "processes_gib"}
    assert (llm["index"], llm["name"], llm["samples"]) == (1, "NVIDIA H200", 2)
    assert llm["memory_used_peak_gib"] == pytest.approx(30) and llm["utilization_mean_pct"] == pytest.approx(70)
    assert llm["processes_gib"][f"ray::LLM (pid {VLLM})"] == pytest.approx(29)
    assert [g["index"] for g in document["gpu"]["ingestion"]] == [0, 1]


def test_one_gpu_keeps_one_row_per_phase_and_its_plain_name() -> None:
    busy = reading(gpu_entry(0, 12.0, 80, [(VLLM, "python", 11.0)]))
    collector = ScriptedCollector([reading(gpu_entry(0, 0.0, 0, [])), busy, busy])
    sampler = GpuSampler(interval_s=ONCE_PER_PHASE_END, collector=collector)
    with sampler.phase("answering"):
        pass
    console = Console(record=True, width=220)
    print_summary(console, run_figures(), sampler, {})
    text = console.export_text()
    assert sampler.gpu_name == "NVIDIA H200" and "GPU: NVIDIA H200 (NVML" in text
    assert ", GPU 0" not in text
    row = next(line for line in text.splitlines() if "12.0 / 140 GiB" in line)
    assert row.split("│")[1].strip() == "answering" and "80% / 80%" in row
    assert results_document(run_figures(), sampler)["gpu"]["answering"][0]["memory_used_peak_gib"] == pytest.approx(12)


def test_gpus_of_different_models_are_named_one_after_the_other() -> None:
    first = reading(gpu_entry(0, 0.0, 0, [], name="NVIDIA H200"), gpu_entry(1, 0.0, 0, [], name="NVIDIA A10"),
                    gpu_entry(2, 0.0, 0, [], name="NVIDIA A10"))
    assert GpuSampler(collector=ScriptedCollector([first])).gpu_name == "NVIDIA H200, 2x NVIDIA A10"


def test_without_a_gpu_the_summary_says_none_was_used_and_the_json_has_none() -> None:
    reason = "no NVIDIA GPU: NVML did not initialise (Driver Not Loaded)"
    sampler = GpuSampler(collector=ScriptedCollector([{"available": False, "gpus": [], "reason": reason, "time": 0.0}]))
    with sampler.phase("answering") as figures:
        pass
    assert not sampler.available and figures == [] and sampler.gpu_count == 0
    console = Console(record=True, width=220)
    print_summary(console, run_figures(), sampler, {})
    assert f"GPU: none used ({reason}); every service ran on the CPU." in console.export_text()
    document = results_document(run_figures(), sampler)
    assert document["gpu"] is None and document["device"] == "cpu"
