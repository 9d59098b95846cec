"""Options, errors and settings of the vLLM backends that need no running engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from sage_core.plugin import BackendUnavailable, ConfigError, get_plugin_manager
from sage_core.services.backend_options import tier_options
from sage_core.services.config import parse_service
from sage_llm_vllm import VLLMService
from sage_llm_vllm.engine import EngineSettings, cuda_available
from sage_llm_vllm.sampling import sampling_kwargs, to_vllm

no_gpu = pytest.mark.skipif(cuda_available(), reason="a GPU is present here")


def test_missing_model_option_says_it_is_required_and_never_downloaded() -> None:
    with pytest.raises(ValueError, match="option 'model' is required.*nothing is downloaded"):
        VLLMService("cpu")


def test_model_path_that_does_not_exist_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match=f"model path '{missing}' does not exist"):
        VLLMService("cpu", model=missing)


def test_model_path_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        VLLMService("cpu", model=weights)


def test_model_directory_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no config.json"):
        VLLMService("cpu", model=tmp_path)


def test_unknown_device_is_rejected(tiny_llama: Path) -> None:
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        VLLMService("tpu", model=tiny_llama)


@no_gpu
def test_cuda_without_a_gpu_is_unavailable_so_a_fallback_can_serve(tiny_llama: Path) -> None:
    with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
        VLLMService("cuda", model=tiny_llama)


def test_cuda_engine_gets_serving_batch_defaults(tiny_llama: Path) -> None:
    args = EngineSettings(model=str(tiny_llama), device="cuda:0").to_engine_args()
    assert (args.max_num_seqs, args.max_num_batched_tokens) == (1024, 16384)


def test_configured_batch_sizes_win_over_the_cuda_defaults(tiny_llama: Path) -> None:
    args = EngineSettings(model=str(tiny_llama), device="cuda", max_num_seqs=64, max_num_batched_tokens=4096).to_engine_args()
    assert (args.max_num_seqs, args.max_num_batched_tokens) == (64, 4096)


def test_cpu_engine_keeps_vllm_batch_defaults_and_passes_engine_options(tiny_llama: Path) -> None:
    settings = EngineSettings(
        model=str(tiny_llama), device="cpu", dtype="float32", max_model_len=256, enforce_eager=True,
        enable_prefix_caching=False, engine_args={"max_logprobs": 3},
    )
    args = settings.to_engine_args()
    assert args.max_num_seqs is None and args.max_num_batched_tokens is None
    assert (args.dtype, args.max_model_len, args.enforce_eager) == ("float32", 256, True)
    assert (args.enable_prefix_caching, args.max_logprobs) == (False, 3)


def test_unknown_engine_argument_is_a_value_error(tiny_llama: Path) -> None:
    with pytest.raises(ValueError, match="engine_args has an argument this vLLM does not know"):
        EngineSettings(model=str(tiny_llama), device="cpu", engine_args={"no_such_flag": 1}).to_engine_args()


def test_sampling_params_map_to_vllm_fields() -> None:
    from vllm.sampling_params import RequestOutputKind

    params = to_vllm(
        {"max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": -1, "stop": "END", "seed": 3, "ignore_eos": True},
        RequestOutputKind.FINAL_ONLY,
    )
    assert (params.max_tokens, params.temperature, params.top_p, params.seed) == (7, 0.5, 0.9, 3)
    assert params.top_k == 0 and params.stop == ["END"] and params.ignore_eos
    assert params.output_kind == RequestOutputKind.FINAL_ONLY


def test_no_sampling_means_sage_defaults() -> None:
    assert sampling_kwargs(None)["max_tokens"] == 128
    assert sampling_kwargs(None)["temperature"] == 0.0


def test_unknown_sampling_key_names_the_valid_ones() -> None:
    from vllm.sampling_params import RequestOutputKind

    with pytest.raises(ValueError, match=r"unknown key\(s\) max_tokenz; valid keys: .*max_tokens"):
        to_vllm({"max_tokenz": 3}, RequestOutputKind.FINAL_ONLY)


def test_out_of_range_sampling_value_is_a_value_error() -> None:
    from vllm.sampling_params import RequestOutputKind

    with pytest.raises(ValueError, match="sampling: .*temperature"):
        to_vllm({"temperature": -1.0}, RequestOutputKind.FINAL_ONLY)


def test_plugin_offers_every_backend_through_the_entry_point() -> None:
    plugins = get_plugin_manager()
    offered = {(b.kind, b.name): b.plugin for b in plugins.backends()}
    for key in [("llm", "vllm"), ("embedding", "vllm"), ("embedding", "sentence_transformers"), ("embedding", "model2vec")]:
        assert offered.get(key) == "vllm", f"{key} not offered by the vllm plugin: {offered}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "/models/m", "max_num_seqs": 0}, r"services\.llm\.options\.max_num_seqs: Input should be greater than or equal to 1"),
        ({"model": "/models/m", "tensor_parallel": 2},
         r"services\.llm\.options\.tensor_parallel: unknown key \(did you mean 'tensor_parallel_size'\?\); valid keys: dtype, "),
        ({"model": "/models/m", "gpu_memory_utilization": 1.5}, r"services\.llm\.options\.gpu_memory_utilization: Input should be less than or equal to 1"),
    ],
)
def test_config_options_are_checked_by_the_backend_model_before_any_engine_starts(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_service("llm", {"kind": "llm", "backend": "vllm", "options": options}, get_plugin_manager())


def test_an_embedding_fallback_inherits_only_the_options_it_takes() -> None:
    plugins = get_plugin_manager()
    config = parse_service(
        "embed",
        {"kind": "embedding", "backend": "vllm", "options": {"enforce_eager": True, "model": "/models/e"}, "fallback": ["sentence_transformers", "model2vec"]},
        plugins,
    )
    primary, transformers, static = tier_options("services.embed", config, plugins)
    assert primary.options["enforce_eager"] is True and primary.options["start_timeout_s"] == 900.0
    assert transformers.options == {"model": Path("/models/e"), "batch_size": 64} and transformers.dropped == ("enforce_eager",)
    assert static.options == {"model": Path("/models/e")} and static.dropped == ("enforce_eager",)
