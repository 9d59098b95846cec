"""Plugin system: hookspecs, what plugins register (specs, sharding rules), the manager that loads them."""
