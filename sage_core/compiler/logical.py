"""The logical graph: operators as the user wrote them, as pure data on a networkx DiGraph.

Nodes are operator ids carrying an :class:`OperatorSpec`; edges carry an :class:`EdgeSpec` with the
input slot (0 or 1 for two-input operators) and how records are distributed.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import networkx as nx


class OpKind(str, Enum):
    """What an operator does with its records."""

    SOURCE = "source"
    MAP = "map"
    FILTER = "filter"
    FLATMAP = "flatmap"
    KEYBY = "keyby"
    SINK = "sink"
    COMAP = "comap"
    JOIN = "join"


class Partitioning(str, Enum):
    """How an edge distributes records over the downstream operator's instances."""

    FORWARD = "forward"
    ROUND_ROBIN = "round_robin"
    HASH = "hash"
    BROADCAST = "broadcast"


@dataclass(frozen=True)
class OperatorSpec:
    """One operator: its kind, the user's function (class or callable) and its settings."""

    id: str
    kind: OpKind
    function: Any
    parallelism: int = 1
    capacity: int | None = None
    ordered: bool = True
    source_kind: str | None = None
    """For sources: ``"iterable"``, ``"batch_function"`` or ``"source_function"``."""
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """The id, shown in errors, graphs and metrics."""
        return self.id

    def describe(self) -> str:
        """The operator and where its function was defined, for error messages."""
        return f"{self.kind.value} {self.id!r} ({describe_function(self.function)})"


@dataclass(frozen=True)
class EdgeSpec:
    """An edge into input ``slot`` of its target, distributing records by ``partitioning``."""

    slot: int = 0
    partitioning: Partitioning | None = None
    """``None``: forward when parallelisms match, round-robin otherwise (decided by the compiler)."""


class LogicalGraph:
    """A mutable builder the API appends to; the compiler reads ``graph`` and never changes it."""

    def __init__(self) -> None:
        self.graph: nx.DiGraph = nx.DiGraph()
        self._counter = 0

    def add(self, kind: OpKind, function: Any, **settings: Any) -> OperatorSpec:
        """Add an operator with a fresh id such as ``map_3``."""
        self._counter += 1
        base = settings.pop("name", None) or kind.value
        spec = OperatorSpec(id=f"{base}_{self._counter}", kind=kind, function=function, **settings)
        self.graph.add_node(spec.id, spec=spec)
        return spec

    def connect(self, source: str, target: str, edge: EdgeSpec | None = None) -> None:
        """Add an edge from ``source`` to ``target``."""
        self.graph.add_edge(source, target, edge=edge or EdgeSpec())

    def spec(self, op_id: str) -> OperatorSpec:
        """The operator with id ``op_id``."""
        return self.graph.nodes[op_id]["spec"]

    def operators(self) -> list[OperatorSpec]:
        """Every operator, in insertion order."""
        return [data["spec"] for _, data in self.graph.nodes(data=True)]

    def inputs(self, op_id: str) -> list[tuple[str, EdgeSpec]]:
        """Upstream operator ids and edges of ``op_id``, by slot."""
        edges = [(u, d["edge"]) for u, _, d in self.graph.in_edges(op_id, data=True)]
        return sorted(edges, key=lambda e: e[1].slot)

    def outputs(self, op_id: str) -> list[tuple[str, EdgeSpec]]:
        """Downstream operator ids and edges of ``op_id``."""
        return [(v, d["edge"]) for _, v, d in self.graph.out_edges(op_id, data=True)]


def describe_function(function: Any) -> str:
    """``module.name at file:line`` for a user's function or class, as far as it can be found."""
    target = function if inspect.isclass(function) or inspect.isroutine(function) else type(function)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
    try:
        _, line = inspect.getsourcelines(target)
        return f"{name} at {inspect.getsourcefile(target)}:{line}"
    except (OSError, TypeError):
        return name
