"""The logical graph: operators as the user wrote them, as pure data on a networkx DiGraph.

Nodes are operator ids carrying an :class:`OperatorSpec`; edges carry an :class:`EdgeSpec` with the
input slot (0 or 1 for two-input operators) and how records are distributed.
"""

from __future__ import annotations

import inspect
import re
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

    @property
    def label(self) -> str:
        """How errors and logs name the operator: kind, the user's function, id (``map parse (parse)``)."""
        return f"{self.kind.value} {function_name(self.function)} ({self.id})"

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

    def add(self, kind: OpKind, function: Any, **settings: Any) -> OperatorSpec:
        """Add an operator with a readable, stable id: the ``name`` given, else the function's name
        (the kind for a lambda), deduplicated with a suffix (``parse``, ``parse_2``)."""
        base = settings.pop("name", None) or default_id(kind, function)
        op_id, n = base, 1
        while op_id in self.graph:
            n += 1
            op_id = f"{base}_{n}"
        spec = OperatorSpec(id=op_id, kind=kind, function=function, **settings)
        self.graph.add_node(spec.id, spec=spec)
        return spec

    def __bool__(self) -> bool:
        return self.graph.number_of_nodes() > 0

    def require(self, op_id: str) -> None:
        """Raise unless ``op_id`` is an operator of this graph (not of a job already submitted)."""
        if op_id not in self.graph:
            msg = (
                f"operator {op_id!r} belongs to a job already submitted: each submit() runs the streams built "
                "since the previous one; build this stream again from a source"
            )
            raise ValueError(msg)

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


def function_name(function: Any) -> str:
    """The user's function as code names it: ``Parser``, ``parse_record``, ``<lambda>``, ``list.append``."""
    if isinstance(function, (tuple, list)):
        return "(" + ", ".join(function_name(f) for f in function) + ")"
    target = function if inspect.isclass(function) or callable(function) and hasattr(function, "__qualname__") else type(function)
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)


def default_id(kind: OpKind, function: Any) -> str:
    """An operator id from its function's name (snake_case), or the kind for lambdas and anonymous callables."""
    name = function_name(function).rsplit(".", 1)[-1]
    if not name.isidentifier():
        return kind.value
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def describe_function(function: Any) -> str:
    """``module.name at file:line`` for a user's function or class, as far as it can be found."""
    target = function if inspect.isclass(function) or inspect.isroutine(function) else type(function)
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
    try:
        _, line = inspect.getsourcelines(target)
        return f"{name} at {inspect.getsourcefile(target)}:{line}"
    except (OSError, TypeError):
        return name
