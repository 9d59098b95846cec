"""What the demo shows and writes: progress bars, each answer with its sources, the closing summary,
and the ``--out`` JSON (per question: the top-k source ids and scores, so two runs compare as sets)."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rag.compare import SourceDifference, compare_runs
from rag.gpu import GpuSampler
from rag.pipeline import Exchange


def progress_bar(console: Console) -> Progress:
    """The bar used for ingestion and answering (description, bar, n/total, elapsed)."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


class AnswerPrinter:
    """The pipeline's listener: prints each answer with its sources above the progress bar."""

    def __init__(self, progress: Progress, task: Any, *, quiet: bool = False) -> None:
        self.progress = progress
        self.task = task
        self.quiet = quiet
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def answered(self, exchange: Exchange) -> None:
        """Record the exchange, print it (unless quiet) and advance the bar."""
        with self._lock:
            self.exchanges.append(exchange)
        if not self.quiet:
            expected = set(exchange.question.passages)
            sources = ", ".join(f"[green]{i}[/green]" if i in expected else i for i in exchange.source_ids)
            self.progress.console.print(
                f"[bold cyan]{exchange.question.id}[/] {exchange.question.question}\n"
                f"    [bold]→[/] {exchange.answer or '[dim](empty answer)[/dim]'}\n"
                f"    [dim]sources:[/dim] {sources}",
                highlight=False,
            )
        self.progress.advance(self.task)


@dataclass
class RunFigures:
    """Timings and counts of one demo run, filled in as the phases end."""

    config: str
    services: dict[str, str]
    passages: int = 0
    asked: int = 0
    start_s: float = 0.0
    ingest_s: float = 0.0
    index_s: float = 0.0
    answer_s: float = 0.0
    total_s: float = 0.0
    exchanges: list[Exchange] = field(default_factory=list)
    failed: int = 0

    @property
    def questions(self) -> int:
        """Questions answered."""
        return len(self.exchanges)

    def hit_rate(self) -> tuple[int, int]:
        """How many answered questions had an expected passage among the retrieved ones, out of how many."""
        hits = sum(bool(set(e.question.passages) & set(e.source_ids)) for e in self.exchanges)
        return hits, len(self.exchanges)

    def evidence_rate(self) -> tuple[int, int]:
        """How many answers quote their question's evidence (a strict, verbatim check), out of how many."""
        quoted = sum(e.question.evidence.lower() in e.answer.lower() for e in self.exchanges)
        return quoted, len(self.exchanges)

    def tokens(self) -> tuple[int, int]:
        """Prompt tokens and generated tokens over every answer."""
        completions = [e.completion for e in self.exchanges if e.completion is not None]
        return sum(c.prompt_tokens for c in completions), sum(len(c.token_ids) for c in completions)

    def timings(self) -> dict[str, float]:
        """The figures of the summary as one flat mapping (also written to ``--out``)."""
        prompt, generated = self.tokens()
        latencies = [e.latency_s for e in self.exchanges if e.latency_s is not None]
        hits, total = self.hit_rate()
        quoted, _ = self.evidence_rate()
        return {
            "services_start_s": round(self.start_s, 3),
            "ingest_s": round(self.ingest_s, 3),
            "ingest_index_s": round(self.index_s, 3),
            "ingest_passages_per_s": round(self.passages / self.ingest_s, 2) if self.ingest_s else 0.0,
            "answer_s": round(self.answer_s, 3),
            "questions_per_s": round(self.questions / self.answer_s, 3) if self.answer_s else 0.0,
            "output_tokens_per_s": round(generated / self.answer_s, 2) if self.answer_s else 0.0,
            "prompt_tokens_per_s": round(prompt / self.answer_s, 2) if self.answer_s else 0.0,
            "latency_p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies else 0.0,
            "latency_p95_s": round(float(np.percentile(latencies, 95)), 3) if latencies else 0.0,
            "total_s": round(self.total_s, 3),
            "top_k_hit_rate": round(hits / total, 4) if total else 0.0,
            "answer_evidence_rate": round(quoted / total, 4) if total else 0.0,
        }


def print_summary(console: Console, figures: RunFigures, gpu: GpuSampler, service_metrics: dict[str, Any]) -> None:
    """The closing summary: services, timings and throughput, retrieval, and the GPU's figures."""
    services = Table(title="Services", title_justify="left")
    for column in ("service", "backend", "served by", "calls", "p50 ms", "errors"):
        services.add_column(column)
    for name, placement in figures.services.items():
        metrics = service_metrics.get(name, {})
        served = ", ".join(f"{k} ({v})" for k, v in metrics.get("served_by", {}).items()) or "-"
        p50 = metrics.get("latency_ms", {}).get("p50")
        services.add_row(name, placement, served, str(metrics.get("calls", 0)), "-" if p50 is None else f"{p50:.1f}", str(metrics.get("errors", 0)))
    console.print(services)

    t = figures.timings()
    prompt, generated = figures.tokens()
    hits, total = figures.hit_rate()
    timings = Table(title=f"Timings ({figures.config})", title_justify="left")
    timings.add_column("phase")
    timings.add_column("seconds", justify="right")
    timings.add_column("throughput")
    timings.add_row("services start", f"{t['services_start_s']:.1f}", "engines and models loaded once")
    timings.add_row(
        "ingestion", f"{t['ingest_s']:.1f}",
        f"{figures.passages} passages, {t['ingest_passages_per_s']:.1f} passages/s (index {t['ingest_index_s']:.2f} s)",
    )
    timings.add_row(
        "answering", f"{t['answer_s']:.1f}",
        f"{figures.questions} questions, {t['questions_per_s']:.2f} q/s; {generated} tokens out "
        f"({t['output_tokens_per_s']:.1f}/s), {prompt} prompt tokens ({t['prompt_tokens_per_s']:.0f}/s)",
    )
    timings.add_row("per question", f"{t['latency_p50_s']:.1f}", f"latency p50; p95 {t['latency_p95_s']:.1f} s")
    timings.add_row("total", f"{t['total_s']:.1f}", "")
    console.print(timings)
    quoted, _ = figures.evidence_rate()
    console.print(f"Retrieval: an answer passage was in the top {_top_k(figures)} for {hits} of {total} questions.")
    console.print(f"Answers: {quoted} of {total} quote the reference evidence word for word (a strict check).")
    if figures.failed:
        console.print(f"[red]{figures.failed} question(s) failed[/red]; see the log above.")
    _print_gpu(console, gpu)


def results_document(figures: RunFigures, gpu: GpuSampler) -> dict[str, Any]:
    """The run as the ``--out`` JSON holds it: figures, and per question sources (with scores), answer, reference."""
    rows = []
    for e in sorted(figures.exchanges, key=lambda e: e.question.id):
        rows.append(
            {
                "id": e.question.id,
                "question": e.question.question,
                "sources": e.source_ids,
                "scores": [round(float(h.score), 6) for h in e.hits],
                "expected": list(e.question.passages),
                "hit": bool(set(e.question.passages) & set(e.source_ids)),
                "evidence_quoted": e.question.evidence.lower() in e.answer.lower(),
                "answer": e.answer,
                "reference": e.question.answer,
                "latency_s": None if e.latency_s is None else round(e.latency_s, 3),
            }
        )
    return {
        "config": figures.config,
        "services": figures.services,
        "device": gpu.gpu_name or "cpu",
        "timings": figures.timings(),
        "gpu": {name: [asdict(g) for g in gpus] for name, gpus in gpu.phases.items()} if gpu.available else None,
        "questions": rows,
    }


def write_results(path: Path, document: Mapping[str, Any]) -> None:
    """Write a :func:`results_document` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


BASELINE_ROWS = (
    ("services start", "services_start_s"),
    ("ingestion", "ingest_s"),
    ("answering", "answer_s"),
    ("total", "total_s"),
)


def print_baseline(console: Console, document: Mapping[str, Any], baseline: Mapping[str, Any], label: str) -> list[SourceDifference]:
    """This run's timings beside a baseline run's (``--baseline``), and their sources compared as sets."""
    mine, theirs = document["timings"], baseline.get("timings", {})
    table = Table(title=f"This run ({document['device']}) vs baseline ({baseline.get('device', '?')}, {label})", title_justify="left")
    for column in ("phase", "this run, s", "baseline, s", "speed-up"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for name, key in BASELINE_ROWS:
        now, before = mine.get(key), theirs.get(key)
        speedup = f"{before / now:.1f}x" if now and before else "-"
        table.add_row(name, _seconds(now), _seconds(before), speedup)
    console.print(table)
    differences = compare_runs(baseline, document)
    common = {r["id"] for r in document["questions"]} & {r["id"] for r in baseline.get("questions", [])}
    ties = sum(d.near_tie for d in differences)
    console.print(
        f"Sources vs baseline: {len(common) - len(differences)} of {len(common)} questions have the same top-k set, "
        f"{ties} differ by a near tie, {len(differences) - ties} differ."
    )
    for d in differences:
        console.print(f"  {d.question_id}: {'near tie' if d.near_tie else 'DIFFERENT'}; baseline only {d.only_first}, this run only {d.only_second}")
    return differences


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _top_k(figures: RunFigures) -> int:
    return max((len(e.hits) for e in figures.exchanges), default=0)


def _print_gpu(console: Console, gpu: GpuSampler) -> None:
    """One row per phase, or per phase and GPU ("answering, GPU 1") when the machine has several."""
    if not gpu.available:
        console.print(f"GPU: none used ({gpu.reason}); every service ran on the CPU.")
        return
    table = Table(title=f"GPU: {gpu.gpu_name} (NVML, through the monitor plugin)", title_justify="left")
    for column in ("phase", "memory used (peak)", "utilization mean / max", "memory by process at the peak"):
        table.add_column(column)
    several = max((len(gpus) for gpus in gpu.phases.values()), default=0) > 1
    for name, gpus in gpu.phases.items():
        for figures in gpus:
            processes = "; ".join(f"{label}: {gib:.2f} GiB" for label, gib in figures.processes_gib.items()) or "-"
            table.add_row(
                f"{name}, GPU {figures.index}" if several else name,
                f"{figures.memory_used_peak_gib:.1f} / {figures.memory_total_gib:.0f} GiB",
                f"{figures.utilization_mean_pct:.0f}% / {figures.utilization_max_pct:.0f}%",
                processes,
            )
    console.print(table)
