"""SAGE sampling settings (``sage_core.SamplingParams`` or a dict) to vLLM's ``SamplingParams``."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Mapping

from sage_core import SamplingParams

_SAGE_FIELDS = {f.name for f in dataclasses.fields(SamplingParams)}


def sampling_kwargs(sampling: Any) -> dict[str, Any]:
    """The settings as keyword arguments: SAGE's fields, plus any extra vLLM key a dict carries.

    ``None`` means SAGE's defaults (greedy, 128 tokens). A dict may name vLLM-only settings such as
    ``min_tokens`` or ``repetition_penalty``; they pass through unchanged.
    """
    if sampling is None:
        sampling = SamplingParams()
    if isinstance(sampling, SamplingParams):
        values = dataclasses.asdict(sampling)
    elif isinstance(sampling, Mapping):
        defaults = dataclasses.asdict(SamplingParams())
        values = {**defaults, **dict(sampling)}
    else:
        msg = f"sampling must be a sage_core.SamplingParams, a dict or None, not {type(sampling).__name__}"
        raise ValueError(msg)
    if values.get("top_k") is not None and values["top_k"] < 0:
        values["top_k"] = 0  # SAGE's -1 and vLLM's 0 both mean "no top-k"
    stop = values.get("stop")
    values["stop"] = [stop] if isinstance(stop, str) else list(stop or [])
    if values.get("seed") is None:
        values.pop("seed", None)
    return values


def to_vllm(sampling: Any, output_kind: Any) -> Any:
    """vLLM ``SamplingParams`` for ``sampling``, returning outputs as ``output_kind``.

    Unknown keys and out-of-range values raise ``ValueError`` naming the key and the valid ones.
    Equal settings share one object (vLLM copies it per request), so a flow sending the same
    settings with every call builds them once.
    """
    values = sampling_kwargs(sampling)
    try:
        key = (tuple(sorted((k, _frozen(v)) for k, v in values.items())), output_kind)
        hash(key)
    except TypeError:
        return _build(values, output_kind)
    return _cached(key)


@functools.lru_cache(maxsize=256)
def _cached(key: tuple[Any, Any]) -> Any:
    items, output_kind = key
    return _build({k: list(v) if isinstance(v, tuple) else v for k, v in items}, output_kind)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _build(values: dict[str, Any], output_kind: Any) -> Any:
    from vllm import SamplingParams as VllmSamplingParams

    accepted = _vllm_keys(VllmSamplingParams)
    unknown = sorted(set(values) - accepted)
    if unknown:
        valid = ", ".join(sorted(_SAGE_FIELDS | (accepted - {"output_kind"})))
        msg = f"sampling: unknown key(s) {', '.join(unknown)}; valid keys: {valid}"
        raise ValueError(msg)
    try:
        return VllmSamplingParams(**values, output_kind=output_kind)
    except Exception as exc:  # vLLM's validation errors are not all ValueErrors
        msg = f"sampling: {exc}"
        raise ValueError(msg) from exc


@functools.lru_cache(maxsize=None)
def _vllm_keys(cls: type) -> frozenset[str]:
    params = inspect.signature(cls).parameters
    return frozenset(name for name in params if not name.startswith("_"))


__all__ = ["sampling_kwargs", "to_vllm"]
