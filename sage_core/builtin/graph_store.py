"""Built-in plugin: a graph store on networkx (backend ``networkx`` of kind ``graph``).

A ``MultiDiGraph`` whose edge keys are relations, so two nodes may be linked by several relations.
``neighbors`` walks edges in both directions, breadth first; nodes at the same distance come
sorted. Option ``path`` (:class:`NetworkxGraphOptions`). Files are JSON (nodes with their
attributes, edges with their relation), written atomically.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable

import networkx as nx
from pydantic import BaseModel, ConfigDict

from sage_core.plugin import BackendSpec, BackendUnavailable, hookimpl
from sage_core.builtin._files import atomic_write

FILE_FORMAT = "sage-graph/1"


@hookimpl
def sage_backends(register: Callable[[BackendSpec], None]) -> None:
    """Offer the networkx graph store."""
    register(
        BackendSpec(
            kind="graph", name="networkx", factory=NetworkxGraphStore, description="in-memory networkx",
            options=NetworkxGraphOptions,
        )
    )


class NetworkxGraphOptions(BaseModel):
    """Options of the ``networkx`` graph store (``services.<name>.options``); its constructor takes the same names."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: str | None = None
    """A JSON file: loaded at start when it exists, saved on close."""


class NetworkxGraphStore:
    """A thread-safe directed multigraph of string node ids with relation-labelled edges."""

    def __init__(self, path: str | None = None, device: str = "cpu") -> None:
        if not str(device).startswith(("cpu", "auto")):
            msg = f"the networkx graph store runs on cpu only, not {device!r}; set device: cpu (or auto)"
            raise BackendUnavailable(msg)
        self.path = path
        self._graph = nx.MultiDiGraph()
        self._lock = threading.RLock()
        self._closed = False
        if path and Path(path).exists():
            self.load(path)

    def add_node(self, node: str, **attrs: Any) -> None:
        """Add a node or update its attributes."""
        with self._lock:
            self._graph.add_node(_check_node(node), **attrs)

    def add_edge(self, source: str, target: str, relation: str = "related") -> None:
        """Add an edge labelled ``relation`` (both nodes are created when missing)."""
        if not isinstance(relation, str):
            msg = f"relation must be a string, got {type(relation).__name__}"
            raise ValueError(msg)
        with self._lock:
            self._graph.add_edge(_check_node(source), _check_node(target), key=relation)

    def neighbors(self, node: str, hops: int = 1, relation: str | None = None) -> list[str]:
        """Nodes within ``hops`` edges either way, nearest first (sorted within a distance)."""
        if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
            msg = f"neighbors: hops must be an int >= 0, got {hops!r}"
            raise ValueError(msg)
        with self._lock:
            graph = self._graph
            if _check_node(node) not in graph:
                return []
            seen, frontier, found = {node}, [node], []
            for _ in range(hops):
                reached: set[str] = set()
                for current in frontier:
                    for _, other, key in graph.out_edges(current, keys=True):
                        if relation is None or key == relation:
                            reached.add(other)
                    for other, _, key in graph.in_edges(current, keys=True):
                        if relation is None or key == relation:
                            reached.add(other)
                frontier = sorted(reached - seen)
                if not frontier:
                    break
                seen.update(frontier)
                found.extend(frontier)
            return found

    def remove_node(self, node: str) -> bool:
        """Remove a node and its edges; returns whether it existed."""
        with self._lock:
            if _check_node(node) not in self._graph:
                return False
            self._graph.remove_node(node)
            return True

    def has_node(self, node: str) -> bool:
        """Whether the node exists."""
        with self._lock:
            return _check_node(node) in self._graph

    def count(self) -> int:
        """Number of nodes."""
        with self._lock:
            return self._graph.number_of_nodes()

    def save(self, path: str) -> None:
        """Write the graph as JSON, atomically."""
        with self._lock:
            data = {
                "format": FILE_FORMAT,
                "nodes": [[n, attrs] for n, attrs in self._graph.nodes(data=True)],
                "edges": [[s, t, k] for s, t, k in self._graph.edges(keys=True)],
            }
        try:
            payload = json.dumps(data).encode()
        except (TypeError, ValueError) as exc:
            msg = f"save: node attributes must be JSON-serialisable ({exc})"
            raise ValueError(msg) from exc
        atomic_write(path, lambda handle: handle.write(payload))

    def load(self, path: str) -> None:
        """Replace the graph with a file written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_bytes().decode())
            if data.get("format") != FILE_FORMAT:
                raise ValueError(f"no {FILE_FORMAT!r} header")
            graph = nx.MultiDiGraph()
            graph.add_nodes_from((n, attrs) for n, attrs in data["nodes"])
            graph.add_edges_from((s, t, k) for s, t, k in data["edges"])
        except FileNotFoundError:
            raise
        except (OSError, ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
            msg = f"load: {path} is not a graph store file ({type(exc).__name__}: {exc})"
            raise ValueError(msg) from exc
        with self._lock:
            self._graph = graph

    def close(self) -> None:
        """Save to ``path`` when one was configured. Idempotent."""
        if not self._closed:
            self._closed = True
            if self.path:
                self.save(self.path)


def _check_node(node: str) -> str:
    if not isinstance(node, str):
        msg = f"node ids must be strings, got {type(node).__name__} {node!r}"
        raise ValueError(msg)
    return node


__all__ = ["NetworkxGraphOptions", "NetworkxGraphStore", "sage_backends"]
