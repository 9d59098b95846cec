"""Connecting to Ray: start a small local instance, or join a cluster by address.

A local instance is sized for a small machine (the CI runners have 2 cores and 24 GiB): as many
CPUs as the machine has, a 256 MiB object store, no dashboard, bound to 127.0.0.1, and token
authentication off unless ``RAY_AUTH_MODE`` is set. Ray stays connected until the process exits
(or ``ray.shutdown()``), so several environments in one process share it.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType
from typing import Any, Mapping

RAY_MISSING = 'RemoteEnvironment needs Ray, an optional dependency: pip install "sage-core[ray]"'

LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024


def import_ray() -> ModuleType:
    """The ``ray`` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"{RAY_MISSING} ({exc})") from exc
    return ray


def local_init_options(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``ray.init`` keywords for a local instance; ``overrides`` win."""
    options: dict[str, Any] = {
        "num_cpus": os.cpu_count() or 2,
        "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
        "include_dashboard": False,
        "logging_level": "WARNING",
    }
    options.update(overrides or {})
    return options


def connect(address: str | None = None, init_options: Mapping[str, Any] | None = None) -> ModuleType:
    """Make sure this process is connected to Ray; returns the ``ray`` module.

    Reuses an existing connection (``ray.init`` called by the user or an earlier environment).
    Without ``address`` a local instance is started; with one, ``ray.init(address=...)`` joins it
    (``"auto"`` finds a cluster started on this machine with ``ray start``).
    """
    if address is None:
        _prefer_loopback()
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address is None:
        logging.getLogger("sage.ray").info(
            "starting a local Ray instance on 127.0.0.1 (pass address=... to join a cluster, or 'auto' for one "
            "started with `ray start`)"
        )
        ray.init(address="local", **local_init_options(init_options))
    else:
        ray.init(address=address, **dict(init_options or {}))
    return ray


def threads_block_not_the_loop() -> None:
    """In an actor of ours: turn off Ray's warning about blocking ``ray.get`` in an async actor.

    Ray warns on any ``ray.get`` in an async actor's process (its own streaming generators call
    one at their end). Ours block only on threads of their own, never on the event loop, and
    each actor has its process to itself, so the variable changes nothing else.
    """
    os.environ["RAY_WARN_BLOCKING_GET_INSIDE_ASYNC"] = "0"


def _prefer_loopback() -> None:
    """Bind a local instance to 127.0.0.1 (Ray otherwise binds the machine's routable address).

    Ray decides this when it is first imported, from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``; a value
    the user set is kept, and nothing changes once ``ray`` has been imported.
    """
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


__all__ = ["RAY_MISSING", "connect", "import_ray", "local_init_options", "threads_block_not_the_loop"]
