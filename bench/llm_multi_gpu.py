"""The multi-GPU lines of ``bench/llm_vllm.py --gpu --gpus N`` (issue 13).

The 1.1B random Llama through the pipeline in three configurations, one after another in the same
process (each environment closed and its GPU memory released before the next):

* ``1gpu``: one engine on one GPU, ``--prompts`` prompts per timed run;
* ``tpN``: one engine with ``tensor_parallel_size: N`` across N GPUs, N x the prompts;
* ``replicasN``: the llm service with ``replicas: N``, ``device: cuda`` (replica r pinned to
  ``cuda:r``), N x the prompts, spread by the service layer over the replicas by load.

Equal load per GPU: each engine keeps the same batch as the one-GPU engine, and the map's
``capacity`` is at least replicas x ``max_num_seqs`` so every replica's batch stays full. One JSON
line per configuration: ``config``, ``output_tokens_per_s`` (median of ``--runs``),
``ratio_to_1gpu``, ``gpu_utilization_mean`` (one figure per GPU, NVML samples taken during the timed
runs), ``prompts``, ``engine_start_s``. A configuration that fails prints a line with ``error``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from gpu_load import GpuLoad
from llm_vllm import Counter, Feed, Generate, _as_text, _check_round_trip, _device_name, _engine_options, _tokens

MULTI_GPU_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
"""NVLink multicast off (exported before any engine starts; child processes inherit it)."""


@dataclass(frozen=True)
class Plan:
    """One configuration: how many engines, how wide each is, and the prompts of a timed run."""

    config: str
    prompts: int
    replicas: int = 1
    tensor_parallel_size: int = 1

    def capacity(self, max_num_seqs: int) -> int:
        """Requests the map keeps in flight: every prompt, and at least a full batch per replica."""
        return max(self.prompts, self.replicas * max_num_seqs)


def config_names(gpus: int) -> tuple[str, ...]:
    """The configuration names for ``gpus`` GPUs: ``1gpu``, ``tp{gpus}``, ``replicas{gpus}``."""
    return ("1gpu", f"tp{gpus}", f"replicas{gpus}")


def plans(prompts: int, gpus: int, configs: Sequence[str] | None = None) -> list[Plan]:
    """The plans to run, in order; the multi-GPU ones get ``gpus`` x the prompts (equal load per GPU)."""
    if gpus < 2:
        raise ValueError(f"--gpus {gpus}: the multi-GPU lines need at least 2 GPUs")
    every = {
        "1gpu": Plan("1gpu", prompts),
        f"tp{gpus}": Plan(f"tp{gpus}", prompts * gpus, tensor_parallel_size=gpus),
        f"replicas{gpus}": Plan(f"replicas{gpus}", prompts * gpus, replicas=gpus),
    }
    wanted = list(every) if not configs else list(configs)
    unknown = [name for name in wanted if name not in every]
    if unknown:
        raise ValueError(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(every)}")
    return [every[name] for name in wanted]


def run_multi_gpu(args: argparse.Namespace, model: str) -> Iterator[dict[str, Any]]:
    """Measure every plan of ``args`` on ``model``; yields one JSON-ready line per plan."""
    import torch

    torch.cuda.empty_cache()  # the model was built on the GPU in this process
    idle = GpuLoad()
    baseline = idle.read("memory_used_bytes")
    one_gpu_rate: float | None = None
    for plan in plans(args.prompts, args.gpus, args.configs.split(",") if args.configs else None):
        load = GpuLoad()
        try:
            figures = measure_plan(args, model, plan, load)
        except Exception as exc:  # noqa: BLE001 - one failed configuration must not cost the others
            yield {"config": plan.config, "error": f"{type(exc).__name__}: {exc}", "prompts": plan.prompts}
            continue
        finally:
            gc.collect()
            if not idle.wait_released(baseline):
                print(f"bench: GPU memory not released within 120 s after {plan.config}", file=sys.stderr, flush=True)
        rate = figures.pop("rate")
        if plan.config == "1gpu":
            one_gpu_rate = rate
        yield {
            "config": plan.config,
            "output_tokens_per_s": round(rate, 1),
            "ratio_to_1gpu": None if one_gpu_rate is None else round(rate / one_gpu_rate, 3),
            "gpu_utilization_mean": load.means(),
            "prompts": plan.prompts,
            **figures,
            "replicas": plan.replicas,
            "tensor_parallel_size": plan.tensor_parallel_size,
            "prompt_tokens": args.prompt_tokens,
            "new_tokens": args.new_tokens,
            "runs": args.runs,
            "eager": args.eager,
            "device": _device_name(),
        }


def measure_plan(args: argparse.Namespace, model: str, plan: Plan, load: GpuLoad) -> dict[str, Any]:
    """Start the plan's engines behind the llm service, feed one untimed and ``args.runs`` timed runs."""
    import numpy as np

    from sage_core import LocalEnvironment
    from sage_llm_vllm import VLLMService

    options = {
        **_engine_options(args),
        "gpu_memory_utilization": args.gpu_share,
        "tensor_parallel_size": plan.tensor_parallel_size,
        "max_num_seqs": args.max_num_seqs,
        "max_num_batched_tokens": args.max_num_batched_tokens,
    }
    engines: list[Any] = []

    async def start(device: str) -> Any:
        # awaited on the replica's event loop; the service layer hands replica r the device cuda:r
        engine = VLLMService(device, model=model, **options)
        engines.append(engine)
        return engine

    rng = np.random.default_rng(args.seed)
    sampling = {"max_tokens": args.new_tokens, "temperature": 0.0, "ignore_eos": True}
    env = LocalEnvironment(f"bench-llm-{plan.config}")
    try:
        env.register_service("llm", start, device="cuda", replicas=plan.replicas, timeout_s=1800)
        began = time.perf_counter()
        env.services.start()
        start_s = time.perf_counter() - began
        tokenizer = engines[0].tokenizer
        vocab = (len(tokenizer.all_special_ids) + 1, len(tokenizer))
        max_num_seqs = min(engine.max_num_seqs for engine in engines)
        feed, done = Feed(), Counter()
        env.from_source(feed).map(Generate(sampling), capacity=plan.capacity(max_num_seqs), ordered=False).sink(done)
        job = env.submit(autostop=False)

        def timed_run() -> float:
            prompts = [rng.integers(vocab[0], vocab[1], args.prompt_tokens).tolist() for _ in range(plan.prompts)]
            texts = [_as_text(tokenizer, ids) for ids in prompts]
            begin = time.perf_counter()
            results = done.expect(len(texts), lambda: feed.put(texts))
            return _tokens(c.token_ids for c in results) / (time.perf_counter() - begin)

        try:
            _check_round_trip(tokenizer, rng.integers(vocab[0], vocab[1], args.prompt_tokens).tolist())
            timed_run()  # warm-up, untimed
            rates = []
            for _ in range(args.runs):
                with load.sampling():
                    rates.append(timed_run())
        finally:
            job.stop()
        served = [r["served"] for g in env.services.metrics()["llm"]["backends"] for r in g["replicas"]]
    finally:
        env.close()
    return {
        "rate": statistics.median(rates),
        "engine_start_s": round(start_s, 1),
        "engine_start_s_each": [round(engine.engine_start_s, 1) for engine in engines],
        "served_per_replica": served,
        "capacity": plan.capacity(max_num_seqs),
        "engine_max_num_seqs": max_num_seqs,
    }

