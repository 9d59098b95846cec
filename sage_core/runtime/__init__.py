"""Runtimes that execute a physical graph."""
