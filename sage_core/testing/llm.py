"""Contract suite for :class:`sage_core.plugin.LLM` backends (kind ``llm``), kept light on purpose.

Generation is slow and not exactly reproducible under batching, so the suite checks shapes,
order, eight threads calling at once (each gets the completion of its own prompt: the prompt's
token count matches), and that unknown sampling settings raise ``ValueError``.
"""

from __future__ import annotations

from typing import Any

import pytest

from sage_core.services.contracts import Completion, SamplingParams
from sage_core.testing._calls import call, drain, raises_value_error
from sage_core.testing._threads import THREADS, run_concurrently


@pytest.mark.timeout(300)
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

    def test_concurrent_callers_each_get_their_own_completion(self, llm: Any) -> None:
        prompts = [" ".join(["word"] * (2 + 3 * t)) for t in range(THREADS)]
        alone = [call(llm.generate, p, sampling=self.sampling).prompt_tokens for p in prompts]
        got: dict[int, Completion] = {}

        def caller(t: int) -> Any:
            def work() -> None:
                got[t] = call(llm.generate, prompts[t], sampling=self.sampling)

            return work

        run_concurrently([caller(t) for t in range(THREADS)], timeout=240)
        assert all(isinstance(got[t], Completion) for t in range(THREADS))
        assert [got[t].prompt_tokens for t in range(THREADS)] == alone, "a concurrent caller got another prompt's completion"

    def test_unknown_sampling_setting_raises_value_error(self, llm: Any) -> None:
        with raises_value_error():
            call(llm.generate, "Hello", sampling={"max_tokens": 4, "no_such_setting": 1})


__all__ = ["LLMContract"]
