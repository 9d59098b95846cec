"""The multi-GPU lines of ``bench/llm_vllm.py --gpu --gpus N`` (issue 13).

The 1.1B random Llama through the pipeline in four configurations, one after another in the same
process (each environment closed and its GPU memory released before the next):

* ``1gpu``: one engine on one GPU, ``--prompts`` prompts per timed run;
* ``tpN``: one engine with ``tensor_parallel_size: N`` across N GPUs, N x the prompts;
* ``replicasN``: the llm service with ``replicas: N``, ``device: cuda`` (replica r pinned to
  ``cuda:r``), N x the prompts, spread by the service layer over the replicas by load; every
  engine's front-end runs in this process;
* ``process-replicasN``: the same, with ``isolation: process``: each replica (its engine's
  front-end) in its own child process, the flow in this one;
* ``ray-replicasN``: the same flow and service in a ``RemoteEnvironment``: each replica a Ray actor
  reserving one GPU (its engine's front-end in that actor's process), the source and sink task
  actors fed and drained by this process through Ray queues (``bench/ray_feed.py``).

Equal load per GPU: each engine keeps the same batch as the one-GPU engine, and the map's
``capacity`` is at least replicas x ``max_num_seqs`` so every replica's batch stays full. One JSON
line per configuration: ``config``, ``output_tokens_per_s`` (median of ``--runs``),
``ratio_to_1gpu``, ``gpu_utilization_mean`` (one figure per GPU, NVML samples taken during the timed
runs), ``prompts``, ``engine_start_s``, ``driver_cpu`` (CPU seconds of this process per wall second
of the timed runs: near 1.0 means one core, as much as Python threads sharing the GIL get).
A configuration that fails prints a line with ``error``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import operator
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import llm_vllm
from gpu_load import GpuLoad
from llm_vllm import (
    Counter,
    Feed,
    Generate,
    _as_text,
    _check_round_trip,
    _device_name,
    _engine_options,
    _tokens,
)

MULTI_GPU_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
"""NVLink multicast off (exported before any engine starts; child processes inherit it)."""

SERVICE_TIMEOUT_S = 1800
"""The llm service's per-call limit: with every prompt of a run in flight, the last waits long."""


@dataclass(frozen=True)
class Plan:
    """One configuration: how many engines, how wide each is, the prompts of a timed run, and where
    it runs (``local``: this process; ``process``: each replica in a child process, the flow here;
    ``ray``: one Ray actor per replica and per task)."""

    config: str
    prompts: int
    replicas: int = 1
    tensor_parallel_size: int = 1
    runtime: str = "local"

    def capacity(self, max_num_seqs: int) -> int:
        """Requests the map keeps in flight: every prompt, and at least a full batch per replica."""
        return max(self.prompts, self.replicas * max_num_seqs)


def config_names(gpus: int) -> tuple[str, ...]:
    """The configuration names for ``gpus`` GPUs, in the order they run."""
    return ("1gpu", f"tp{gpus}", f"replicas{gpus}", f"process-replicas{gpus}", f"ray-replicas{gpus}")


def plans(prompts: int, gpus: int, configs: Sequence[str] | None = None) -> list[Plan]:
    """The plans to run, in order; the multi-GPU ones get ``gpus`` x the prompts (equal load per GPU)."""
    if gpus < 2:
        raise ValueError(f"--gpus {gpus}: the multi-GPU lines need at least 2 GPUs")
    every = {
        "1gpu": Plan("1gpu", prompts),
        f"tp{gpus}": Plan(f"tp{gpus}", prompts * gpus, tensor_parallel_size=gpus),
        f"replicas{gpus}": Plan(f"replicas{gpus}", prompts * gpus, replicas=gpus),
        f"process-replicas{gpus}": Plan(f"process-replicas{gpus}", prompts * gpus, replicas=gpus, runtime="process"),
        f"ray-replicas{gpus}": Plan(f"ray-replicas{gpus}", prompts * gpus, replicas=gpus, runtime="ray"),
    }
    wanted = list(every) if not configs else list(configs)
    unknown = [name for name in wanted if name not in every]
    if unknown:
        raise ValueError(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(every)}")
    return [every[name] for name in wanted]


def engine_options(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    """The options of each of the plan's engines (``VLLMService`` keywords, ``model`` aside)."""
    return {
        **_engine_options(args),
        "gpu_memory_utilization": args.gpu_share,
        "tensor_parallel_size": plan.tensor_parallel_size,
        "max_num_seqs": args.max_num_seqs,
        "max_num_batched_tokens": args.max_num_batched_tokens,
    }


def service_registration(args: argparse.Namespace, model: str, plan: Plan) -> dict[str, Any]:
    """The llm service of a ``process`` or ``ray`` plan, by config: backend ``vllm``, one replica per GPU.

    In child processes the service layer hands replica r the device ``cuda:r``; on Ray each replica
    actor reserves a GPU and Ray sets its ``CUDA_VISIBLE_DEVICES``, so ``cuda`` is that GPU.
    """
    placement = {"resources": {"num_gpus": 1}} if plan.runtime == "ray" else {"isolation": "process"}
    return {
        "kind": "llm",
        "backend": "vllm",
        "device": "cuda",
        "replicas": plan.replicas,
        "timeout_s": SERVICE_TIMEOUT_S,
        "options": {**engine_options(args, plan), "model": model},
        **placement,
    }


def run_multi_gpu(args: argparse.Namespace, model: str) -> Iterator[dict[str, Any]]:
    """Measure every plan of ``args`` on ``model``; yields one JSON-ready line per plan."""
    import torch

    torch.cuda.empty_cache()  # the model was built on the GPU in this process
    idle = GpuLoad()
    baseline = idle.read("memory_used_bytes")
    one_gpu_rate: float | None = None
    for plan in plans(args.prompts, args.gpus, args.configs.split(",") if args.configs else None):
        load = GpuLoad()
        measure = measure_ray_plan if plan.runtime == "ray" else measure_plan
        try:
            figures = measure(args, model, plan, load)
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
    """Start the plan's engines behind the llm service, feed one untimed and ``args.runs`` timed runs.

    A ``local`` plan creates the engines in this process (their figures are read off them); a
    ``process`` plan registers the service by config, each replica in its own child process.
    """
    from sage_llm_vllm import VLLMService

    from sage_core import LocalEnvironment

    options = engine_options(args, plan)
    engines: list[Any] = []

    async def start(device: str) -> Any:
        # awaited on the replica's event loop; the service layer hands replica r the device cuda:r
        engine = VLLMService(device, model=model, **options)
        engines.append(engine)
        return engine

    env = LocalEnvironment(f"bench-llm-{plan.config}")
    try:
        if plan.runtime == "process":
            env.register_service("llm", **service_registration(args, model, plan))
        else:
            env.register_service("llm", start, device="cuda", replicas=plan.replicas, timeout_s=SERVICE_TIMEOUT_S)
        began = time.perf_counter()
        env.services.start()
        start_s = time.perf_counter() - began
        tokenizer, max_num_seqs = _engine_facts(engines, model, args)
        feed, done = Feed(), Counter()
        env.from_source(feed).map(Generate(_sampling(args)), capacity=plan.capacity(max_num_seqs), ordered=False).sink(done)
        job = env.submit(autostop=False)

        def generate(texts: list[str]) -> int:
            return _tokens(c.token_ids for c in done.expect(len(texts), lambda: feed.put(texts)))

        try:
            rates, driver_cpu = timed_runs(args, plan, Prompts(tokenizer, args), generate, load)
        finally:
            job.stop()
        served = _served_per_replica(env)
    finally:
        env.close()
    each = {"engine_start_s_each": [round(engine.engine_start_s, 1) for engine in engines]} if engines else {}
    return {
        "rate": statistics.median(rates),
        "engine_start_s": round(start_s, 1),
        **each,
        "served_per_replica": served,
        "capacity": plan.capacity(max_num_seqs),
        "engine_max_num_seqs": max_num_seqs,
        "driver_cpu": driver_cpu,
    }


def measure_ray_plan(args: argparse.Namespace, model: str, plan: Plan, load: GpuLoad) -> dict[str, Any]:
    """The same workload in a ``RemoteEnvironment``: replica and task actors on a local Ray instance.

    This process builds the prompts (with the model's tokenizer; it runs no engine), feeds each
    run through a Ray queue and counts the output tokens that come back through another. Ray's
    copy of the workers' output goes to stderr (stdout holds the JSON lines), and a Ray instance
    started here is shut down afterwards, its GPUs released.
    """
    from ray_feed import RayFeed, ship_by_value

    from sage_core import RemoteEnvironment

    tokenizer, max_num_seqs = _engine_facts([], model, args)
    prompts = Prompts(tokenizer, args)
    capacity = plan.capacity(max_num_seqs)
    ray_module = sys.modules.get("ray")  # not imported here: RemoteEnvironment picks the address Ray binds first
    own_ray = ray_module is None or not ray_module.is_initialized()
    with contextlib.redirect_stdout(sys.stderr):
        env = RemoteEnvironment(f"bench-llm-{plan.config}")
        try:
            ship_by_value(llm_vllm)  # the Generate map travels to the task actor; bench/ is not on the workers' path
            env.register_service("llm", **service_registration(args, model, plan))
            began = time.perf_counter()
            env.services.start()
            start_s = time.perf_counter() - began
            with RayFeed(report=operator.attrgetter("token_ids")) as feed:
                env.from_source(feed.source()).map(Generate(_sampling(args)), capacity=capacity, ordered=False).sink(feed.sink())
                job = env.submit(autostop=False)
                try:
                    rates, driver_cpu = timed_runs(args, plan, prompts, lambda texts: _tokens(feed.run(texts, job=job)), load)
                finally:
                    job.stop()
                served = _served_per_replica(env)
        finally:
            env.close()
            if own_ray:
                import ray

                ray.shutdown()
    figures = {"rate": statistics.median(rates), "engine_start_s": round(start_s, 1)}
    if served:
        figures["served_per_replica"] = served
    return figures | {"capacity": capacity, "engine_max_num_seqs": max_num_seqs, "driver_cpu": driver_cpu}


# --------------------------------------------------------------------------- shared by every plan


class Prompts:
    """Fresh random prompts of ``--prompt-tokens`` token ids, as text that encodes back to them."""

    def __init__(self, tokenizer: Any, args: argparse.Namespace) -> None:
        import numpy as np

        self.tokenizer = tokenizer
        self.length = args.prompt_tokens
        self.rng = np.random.default_rng(args.seed)
        self.vocab = (len(tokenizer.all_special_ids) + 1, len(tokenizer))

    def ids(self) -> list[int]:
        """One prompt's token ids (no special tokens)."""
        return self.rng.integers(self.vocab[0], self.vocab[1], self.length).tolist()

    def texts(self, count: int) -> list[str]:
        """``count`` prompts as text."""
        return [_as_text(self.tokenizer, self.ids()) for _ in range(count)]


def timed_runs(
    args: argparse.Namespace, plan: Plan, prompts: Prompts, generate: Callable[[list[str]], int], load: GpuLoad
) -> tuple[list[float], float]:
    """One untimed run, then ``args.runs`` timed ones of ``plan.prompts`` fresh prompts each.

    ``generate(texts)`` sends one run through the flow and returns its output tokens. Returns the
    runs' output tokens per second and this process's CPU seconds per wall second while they ran
    (the prompts are built outside the timed windows, GPU load is sampled inside them).
    """
    _check_round_trip(prompts.tokenizer, prompts.ids())
    generate(prompts.texts(plan.prompts))  # warm-up, untimed
    rates: list[float] = []
    cpu_s = wall_s = 0.0
    for _ in range(args.runs):
        texts = prompts.texts(plan.prompts)
        with load.sampling():
            cpu, begin = time.process_time(), time.perf_counter()
            tokens = generate(texts)
            elapsed = time.perf_counter() - begin
            cpu_s += time.process_time() - cpu
        wall_s += elapsed
        rates.append(tokens / elapsed)
    return rates, round(cpu_s / wall_s, 2)


def _engine_facts(engines: list[Any], model: str, args: argparse.Namespace) -> tuple[Any, int]:
    """The tokenizer and the batch size of the engines: read off them when they run in this
    process, else the model's tokenizer and the batch each engine was configured with."""
    if engines:
        return engines[0].tokenizer, min(engine.max_num_seqs for engine in engines)
    from sage_llm_vllm.engine import CUDA_MAX_NUM_SEQS
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model), args.max_num_seqs or CUDA_MAX_NUM_SEQS


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_tokens": args.new_tokens, "temperature": 0.0, "ignore_eos": True}


def _served_per_replica(env: Any) -> list[int]:
    """Calls each llm replica served (empty when the service reports no replicas)."""
    metrics = env.services.metrics()["llm"]
    return [r["served"] for group in metrics.get("backends", []) for r in group["replicas"]]
