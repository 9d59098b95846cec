"""The demo's LLM served as a plain chat model ``chat``: the conversation in, the model's tokens out.

    sage serve examples/chat_serve.py                                        # CPU defaults
    SAGE_RAG_CONFIG=examples/rag_gpu.yaml sage serve examples/chat_serve.py    # the same on a GPU

Only the ``llm`` service of the config is started. The smallest served pipeline with a real model:
one step renders the conversation with the model's chat template and starts the LLM's token
stream; the response sink carries it to the client (``bench/serve.py --vllm`` compares it with
``vllm serve``). :class:`ChatTemplate` is shared with ``examples/rag_serve.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the rag package beside this script

from sage_core import Answer, ChatEndpoint, ChatRequest, LocalEnvironment, MapFunction  # noqa: E402

from rag.settings import DEFAULT_CONFIG, read_config, resolve_models  # noqa: E402

MAX_TOKENS = 48


class ChatTemplate:
    """Renders a conversation as the prompt the model's chat template makes, and counts its tokens.

    With a vLLM model directory the tokenizer's own template is used, so streaming the prompt
    gives the tokens ``llm.chat`` would; without one, a plain transcript (token count unknown).
    """

    def __init__(self, model_dir: str | None) -> None:
        self.tokenizer: Any = None
        if model_dir:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def render(self, messages: Sequence[Mapping[str, str]]) -> tuple[str, int | None]:
        """The prompt and its token count (``None`` when unknown)."""
        turns = [{"role": m["role"], "content": m["content"]} for m in messages]
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            return "".join(f"{m['role']}: {m['content']}\n" for m in turns) + "assistant:", None
        prompt = self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return prompt, len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])


def llm_model_dir(config: Mapping[str, Any]) -> str | None:
    """The vLLM model directory of the ``llm`` service (``None`` for another backend)."""
    llm = config["services"]["llm"]
    return llm.get("options", {}).get("model") if llm.get("backend") == "vllm" else None


class StreamChat(MapFunction):
    """ChatRequest → Answer: the LLM's token stream for the conversation (greedy, 48 tokens unless asked)."""

    def __init__(self, model_dir: str | None, max_tokens: int = MAX_TOKENS) -> None:
        self.model_dir = model_dir
        self.defaults = {"max_tokens": max_tokens, "temperature": 0.0}
        self.template: ChatTemplate | None = None

    def open(self) -> None:
        """Load the chat template."""
        self.template = ChatTemplate(self.model_dir)

    def execute(self, request: ChatRequest) -> Answer:
        """Start the LLM's stream; the response sink reads it."""
        assert self.template is not None
        prompt, prompt_tokens = self.template.render(request.messages)
        stream = self.call_service["llm"].stream(prompt=prompt, sampling={**self.defaults, **request.sampling})
        return Answer(request.id, stream=stream, prompt_tokens=prompt_tokens)


if __name__ == "__main__":  # `sage serve` runs the file as __main__; vLLM's child processes skip this
    config = resolve_models(read_config(os.environ.get("SAGE_RAG_CONFIG", DEFAULT_CONFIG)))
    config = {**config, "services": {"llm": config["services"]["llm"]}}
    env = LocalEnvironment("chat-serve", config=config)
    chat = ChatEndpoint(env, "chat")
    chat.requests().map(StreamChat(llm_model_dir(config)), name="generate").sink(chat.replies(), name="replies")
    env.submit()
