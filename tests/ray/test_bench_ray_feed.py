"""The Ray plumbing of ``bench/llm_multi_gpu.py``'s ``ray-replicasN`` line, run for real on CPU.

Records go from this process to the flow's source actor through one Ray queue and come back from
the sink actor through another; the map calls a replicated service asynchronously (the hashing
embedder standing in for the GPU llm service), as the benchmark's ``Generate`` map does. The last
test runs the benchmark's line itself, small, on two GPUs (skipped without them).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sage_core import MapFunction, RemoteEnvironment
from sage_core.builtin.hashing_embedder import HashingEmbedder

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import llm_vllm
from ray_feed import RayFeed, ship_by_value

pytestmark = pytest.mark.ray

DIM = 64


@pytest.fixture
def remote_env(ray_cluster: Any) -> Iterator[RemoteEnvironment]:
    """A RemoteEnvironment on the test cluster, closed after the test."""
    env = RemoteEnvironment("bench-ray-feed", address=ray_cluster.address)
    yield env
    env.close()


def _rows(vectors: list[Any], expected: np.ndarray) -> list[int]:
    """Which expected row each returned vector is (the hashing embedder is deterministic)."""
    scores = np.stack(vectors) @ expected.T
    assert np.allclose(scores.max(axis=1), 1.0, atol=1e-5), "a returned vector matches no fed text"
    return sorted(int(i) for i in scores.argmax(axis=1))


def test_every_fed_record_comes_back_once_per_run_through_a_replicated_service(remote_env: RemoteEnvironment) -> None:
    ship_by_value(llm_vllm)  # the bench's Embed map, as the benchmark ships its Generate map
    remote_env.register_service("embed", kind="embedding", backend="hashing", options={"dim": DIM}, replicas=2)
    texts = [f"record {i} of the feed" for i in range(300)]
    expected = HashingEmbedder(dim=DIM).embed(texts)
    with RayFeed(chunk=64) as feed:
        remote_env.from_source(feed.source()).map(llm_vllm.Embed, capacity=128, ordered=False).sink(feed.sink())
        job = remote_env.submit(autostop=False)
        first = feed.run(texts[:150], timeout_s=60, job=job)
        second = feed.run(texts[150:], timeout_s=60, job=job)
        job.stop()
        served = [r["served"] for g in remote_env.services.metrics()["embed"]["backends"] for r in g["replicas"]]
    assert _rows(first, expected) == list(range(150))
    assert _rows(second, expected) == list(range(150, 300))
    assert len(served) == 2 and sum(served) == 300 and min(served) > 0


class Slow(MapFunction):
    """Takes 50 ms per record."""

    def execute(self, data: Any) -> Any:
        time.sleep(0.05)
        return data


def test_results_missing_at_the_timeout_raise_an_error_naming_the_count(remote_env: RemoteEnvironment) -> None:
    with RayFeed() as feed:
        remote_env.from_source(feed.source()).map(Slow).sink(feed.sink())
        job = remote_env.submit(autostop=False)
        with pytest.raises(TimeoutError, match=r"only \d+ of 40 results came back through the Ray queue within 0.5 s"):
            feed.run(list(range(40)), timeout_s=0.5, job=job)
        with pytest.raises(RuntimeError, match=r"an earlier run timed out .* start a new flow with a new RayFeed"):
            feed.run([0], timeout_s=5, job=job)
        job.stop()


def _reject(data: Any) -> Any:
    raise ValueError(f"record {data} is rejected")


def test_a_failed_job_ends_the_wait_at_once_with_its_error(remote_env: RemoteEnvironment) -> None:
    with RayFeed() as feed:
        remote_env.from_source(feed.source()).map(_reject).sink(feed.sink())
        job = remote_env.submit(autostop=False)
        with pytest.raises(RuntimeError, match=r"the job ended \(failed\) after 0 of 1 results: .*record 3 is rejected"):
            feed.run([3], timeout_s=120, job=job)  # waiting out the 120 s would raise TimeoutError instead


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_ray_line_generates_on_one_engine_actor_per_gpu(tmp_path: Path) -> None:
    from sage_core.services.devices import gpu_count

    if importlib.util.find_spec("vllm") is None or gpu_count() < 2:
        pytest.skip(f"needs vLLM and 2 NVIDIA GPUs ({gpu_count()} visible)")
    from sage_llm_vllm.models import LlamaShape, build_random_llama

    shape = LlamaShape(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2)
    model = build_random_llama(tmp_path / "model", shape)
    flags = ["--prompts", "32", "--prompt-tokens", "16", "--new-tokens", "8", "--runs", "1", "--eager", "--gpu-share", "0.2", "--max-num-seqs", "32"]
    command = [sys.executable, str(BENCH / "llm_vllm.py"), "--gpu", "--gpus", "2", "--configs", "ray-replicas2", "--model", str(model)]
    done = subprocess.run([*command, *flags], capture_output=True, text=True, timeout=840, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    [line] = [json.loads(text) for text in done.stdout.splitlines()]  # stdout holds the JSON line only
    assert "error" not in line, line
    assert line["config"] == "ray-replicas2" and line["prompts"] == 64 and line["output_tokens_per_s"] > 0
    assert len(line["served_per_replica"]) == 2 and sum(line["served_per_replica"]) == 64 * 2  # warm-up + 1 timed run
    assert min(line["served_per_replica"]) > 0 and isinstance(line["driver_cpu"], float)
