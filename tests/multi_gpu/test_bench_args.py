"""The two-GPU benchmarks' plans and flags, checked on the CPU before device time is spent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sage_core.plugins.manager import get_plugin_manager
from sage_core.services.config import parse_service

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import llm_multi_gpu  # noqa: E402
import llm_vllm  # noqa: E402
import vdb_multi_gpu  # noqa: E402


def test_two_gpu_llm_lines_double_the_prompts_and_keep_every_replica_batch_full() -> None:
    args = llm_vllm._parse(["--gpu", "--gpus", "2"])
    plans = llm_multi_gpu.plans(args.prompts, args.gpus)
    assert [(p.config, p.prompts, p.replicas, p.tensor_parallel_size, p.runtime) for p in plans] == [
        ("1gpu", 512, 1, 1, "local"), ("tp2", 1024, 1, 2, "local"), ("replicas2", 1024, 2, 1, "local"),
        ("process-replicas2", 1024, 2, 1, "process"), ("ray-replicas2", 1024, 2, 1, "ray"),
    ]
    assert args.runs == 2 and args.new_tokens == 128 and args.prompt_tokens == 128
    assert [p.capacity(1024) for p in plans] == [1024, 1024, 2048, 2048, 2048]


def test_ray_line_registers_the_llm_service_by_config_one_gpu_per_replica_actor() -> None:
    args = llm_vllm._parse(["--gpu", "--gpus", "2", "--configs", "ray-replicas2", "--max-num-seqs", "256"])
    [plan] = llm_multi_gpu.plans(args.prompts, args.gpus, args.configs.split(","))
    registration = llm_multi_gpu.service_registration(args, "/models/llama-1b", plan)
    assert {k: registration[k] for k in ("kind", "backend", "device", "replicas", "resources")} == {
        "kind": "llm", "backend": "vllm", "device": "cuda", "replicas": 2, "resources": {"num_gpus": 1},
    }
    local = llm_multi_gpu.plans(args.prompts, args.gpus, ["replicas2"])[0]
    assert registration["options"] == llm_multi_gpu.engine_options(args, local) | {"model": "/models/llama-1b"}
    options = registration["options"]
    assert (options["max_num_seqs"], options["gpu_memory_utilization"], options["dtype"]) == (256, 0.4, "bfloat16")


def test_ray_and_process_registrations_are_valid_service_configs() -> None:
    args = llm_vllm._parse(["--gpu", "--gpus", "2"])
    ray_plan, process_plan = llm_multi_gpu.plans(args.prompts, args.gpus, ["ray-replicas2", "process-replicas2"])
    config = parse_service("llm", llm_multi_gpu.service_registration(args, "/models/llama-1b", ray_plan), get_plugin_manager())
    assert (config.replicas, config.resources.num_gpus, config.device, config.options["model"]) == (2, 1, "cuda", "/models/llama-1b")
    assert config.isolation == "thread"
    config = parse_service("llm", llm_multi_gpu.service_registration(args, "/models/llama-1b", process_plan), get_plugin_manager())
    assert (config.replicas, config.isolation, config.resources.num_gpus) == (2, "process", None)


@pytest.mark.parametrize("argv", [["--gpus", "2"], ["--gpu", "--gpus", "2", "--configs", "tp3"], ["--gpu", "--configs", "tp2"]])
def test_llm_bench_refuses_inconsistent_gpu_flags(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        llm_vllm._parse(argv)
    assert "--" in capsys.readouterr().err


def test_vdb_lines_register_the_plugin_options_for_each_layout() -> None:
    args = vdb_multi_gpu.parse([])
    layouts = {c: vdb_multi_gpu.registration(c, args) for c in vdb_multi_gpu.SERVICE_CONFIGS}
    assert layouts["1gpu"]["options"]["device"] == "cuda:0"
    assert layouts["shard"]["options"]["multi_gpu"] == "shard" and layouts["replicate"]["options"]["multi_gpu"] == "replicate"
    assert (layouts["replicas2"]["device"], layouts["replicas2"]["replicas"]) == ("cuda", 2)
    assert all(r["options"]["fp16"] and r["options"]["dim"] == 768 and r["kind"] == "vdb" for r in layouts.values())


def test_vdb_bench_names_an_unknown_configuration() -> None:
    with pytest.raises(SystemExit):
        vdb_multi_gpu.parse(["--configs", "1gpu,sharded"])
