"""A pipeline whose map calls the llm service asynchronously keeps many requests in flight."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from sage_core import LocalEnvironment, MapFunction


class Generate(MapFunction):
    """Sends one prompt to the llm service and hands the pipeline the Future."""

    def execute(self, data: str) -> Future:
        return self.call_service_async["llm"].generate(data, sampling={"max_tokens": 8, "ignore_eos": True})


def test_pipeline_map_with_capacity_completes_every_prompt(llm_env: LocalEnvironment) -> None:
    prompts = [f"story {i} of the old city" for i in range(48)]
    results: list[Any] = []
    llm_env.from_batch(prompts).map(Generate, capacity=32, ordered=False).sink(results.append)
    job = llm_env.submit(autostop=True)
    job.wait(timeout=120)
    assert len(results) == len(prompts)
    assert all(len(r.token_ids) == 8 and r.prompt_tokens == 6 for r in results)
