"""What a replica hosted in another process sends back: its methods' signatures and its errors.

Shared by the process replicas (:mod:`sage_core.services.process_replica`) and the Ray runtime's
replica actors. Routing binds a call's arguments to the backend method's signature (shards pick
ids that way), so a stand-in for a remote backend carries the signatures in a
:class:`SignatureView`; exceptions that would not survive pickling travel as a ``RuntimeError``
describing them.
"""

from __future__ import annotations

import inspect
import pickle
import traceback
from typing import Any, Callable

Dumps = Callable[[Any], bytes]
Loads = Callable[[bytes], Any]


class SignatureView:
    """Answers ``inspect.signature(view.method)`` with a remote backend's signatures."""

    def __init__(self, signatures: dict[str, inspect.Signature]) -> None:
        for name, signature in signatures.items():

            def method(*args: Any, **kwargs: Any) -> Any:
                raise TypeError("a signature view cannot be called")

            method.__signature__ = signature  # type: ignore[attr-defined]
            method.__name__ = name
            setattr(self, name, method)


def method_signatures(backend: Any, methods: dict[str, str], dumps: Dumps = pickle.dumps) -> dict[str, inspect.Signature]:
    """The signatures of the backend's ``methods`` that ``dumps`` can send (the others are left out)."""
    out: dict[str, inspect.Signature] = {}
    for name in methods:
        try:
            signature = inspect.signature(getattr(backend, name))
            dumps(signature)
        except Exception:
            continue
        out[name] = signature
    return out


def portable_exception(exc: BaseException, dumps: Dumps = pickle.dumps, loads: Loads = pickle.loads) -> BaseException:
    """``exc`` itself when it survives a ``dumps``/``loads`` round trip, else a ``RuntimeError`` describing it."""
    try:
        loads(dumps(exc))
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"{type(exc).__name__}: {exc}\n{text}")
    return exc


__all__ = ["SignatureView", "method_signatures", "portable_exception"]
