"""An example third-party plugin: a ``text`` service kind with an ``upper`` backend, and a command."""

from __future__ import annotations

from typing import Any, Protocol

from sage_core.plugin import BackendSpec, ServiceKind, hookimpl


class TextTransform(Protocol):
    """Contract of the ``text`` kind: transform a string."""

    def transform(self, text: str) -> str:
        """The transformed text."""


class Upper:
    """Backend ``upper``: upper-cases text."""

    def __init__(self, device: str = "cpu", suffix: str = "") -> None:
        self.suffix = suffix

    def transform(self, text: str) -> str:
        """``text`` in capitals, plus the configured suffix."""
        return text.upper() + self.suffix


@hookimpl
def sage_services(register: Any) -> None:
    """Offer the ``text`` kind."""
    register(ServiceKind(name="text", contract=TextTransform, description="string transforms"))


@hookimpl
def sage_backends(register: Any) -> None:
    """Offer the ``upper`` backend."""
    register(BackendSpec(kind="text", name="upper", factory=Upper, description="upper-cases text"))


@hookimpl
def sage_register_commands(cli: Any) -> None:
    """Add ``sage shout``."""

    @cli.command()
    def shout() -> None:
        """Print a greeting in capitals."""
        print(Upper().transform("hello from a plugin"))
