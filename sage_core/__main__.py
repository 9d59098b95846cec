"""``python -m sage_core`` runs the ``sage`` command line."""

from sage_core.cli import main

main()
