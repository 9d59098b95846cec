"""Built-in CPU defaults (numpy vector store, KV and graph stores, hashing embedder, the kinds), registered exactly like third-party plugins."""
