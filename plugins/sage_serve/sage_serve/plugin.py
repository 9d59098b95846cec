"""The ``serve`` plugin's hook: adds ``sage serve`` to the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sage_core.plugin import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def sage_register_commands(cli: click.Group) -> None:
    """Add ``sage serve FILE.py``."""
    from sage_serve.command import serve

    cli.add_command(serve)
