"""Plugin system: hookspecs, the manager, built-in default plugins."""
