"""Test kit for plugin authors: contract suites, sources and sinks."""
