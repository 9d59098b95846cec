"""Lazy package exports (PEP 562): names resolve to their module's attribute on first access."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``, whose ``exports`` map a name to its module.

    Use in a package's ``__init__``: ``__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)``.
    A name is imported on first access and then cached in the package's namespace, so importing
    the package stays cheap.
    """
    names = sorted(exports)
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return list(namespace.get("__all__", names))

    return __getattr__, __dir__, names


__all__ = ["lazy_exports"]
