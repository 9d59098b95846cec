"""Contract suite for :class:`sage_core.LLM` backends (kind ``llm``), kept light on purpose."""

from __future__ import annotations

from typing import Any

import pytest

from sage_core.services.contracts import Completion, SamplingParams
from sage_core.testing._calls import call, drain


class LLMContract:
    """Subclass and define an ``llm`` fixture returning a ready model (any scope; not closed here).

    ``sampling`` is passed to every call; keep ``max_tokens`` small so the suite stays quick.
    Methods may be sync, ``async def`` or (for ``stream``) async generators.
    """

    sampling: SamplingParams = SamplingParams(max_tokens=8, temperature=0.0)

    @pytest.fixture
    def llm(self) -> Any:
        """Override: ``return MyLLM()``."""
        pytest.fail(f"{type(self).__name__} must define an llm fixture")

    def test_generate_one_prompt_returns_a_completion_with_text(self, llm: Any) -> None:
        out = call(llm.generate, "The capital of France is", sampling=self.sampling)
        assert isinstance(out, Completion)
        assert isinstance(out.text, str)

    def test_generate_a_list_returns_a_list_in_order(self, llm: Any) -> None:
        prompts = ["Hi", "Count from one to five:", "Write one long sentence about the sea and the sky:"]
        out = call(llm.generate, prompts, sampling=self.sampling)
        assert isinstance(out, list) and len(out) == len(prompts)
        assert all(isinstance(c, Completion) for c in out)
        lengths = [c.prompt_tokens for c in out]
        if all(n > 0 for n in lengths):
            assert lengths == sorted(lengths), "completions must come back in prompt order"

    def test_sampling_accepts_a_dict(self, llm: Any) -> None:
        out = call(llm.generate, "Hello", sampling={"max_tokens": 4, "temperature": 0.0})
        assert isinstance(out, Completion)

    def test_stream_yields_strings(self, llm: Any) -> None:
        pieces = drain(llm.stream("Once upon a time", sampling=self.sampling))
        assert pieces and all(isinstance(p, str) for p in pieces)

    def test_chat_answers_a_conversation(self, llm: Any) -> None:
        messages = [{"role": "user", "content": "Say hello."}]
        out = call(llm.chat, messages, sampling=self.sampling)
        assert isinstance(out, Completion) and isinstance(out.text, str)


__all__ = ["LLMContract"]
