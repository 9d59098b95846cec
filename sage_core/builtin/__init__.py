"""Built-in CPU defaults, registered exactly like third-party plugins."""
