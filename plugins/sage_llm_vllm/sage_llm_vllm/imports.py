"""Serial first imports of the model libraries.

Services start their replicas on threads in parallel; ``transformers`` builds its lazy top-level
module on first import, and a second thread importing from it meanwhile gets
``ImportError: cannot import name 'AutoTokenizer'``. Every backend of this plugin imports the model
libraries through :func:`model_library`, which holds one lock for the first import.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

_lock = threading.Lock()


def model_library(name: str) -> ModuleType:
    """``importlib.import_module(name)``, one thread at a time (``transformers``, ``sentence_transformers``)."""
    with _lock:
        module = importlib.import_module(name)
        if name == "transformers":
            module.AutoTokenizer  # noqa: B018 - resolve the lazy attribute under the lock
        return module
