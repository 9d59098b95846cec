"""SAGE serve: pipelines behind an OpenAI-compatible HTTP API, ``sage serve FILE.py``.

Requests become records of one long-running job through the core's request source and response
sink (:mod:`sage_core.serving`); this package is the web front end (FastAPI + uvicorn).
"""

from __future__ import annotations

from sage_core.plugin import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "create_app": "sage_serve.app",
    "ServedEnvironment": "sage_serve.served",
    "load_served": "sage_serve.loader",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
__all__ += ["__version__"]
