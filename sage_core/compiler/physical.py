"""The physical graph: operators expanded to parallel instances, chained into tasks.

Consecutive operators joined by a forward edge of equal parallelism (one output, one input) become
one *chain*: a task runs them back to back, with no queue between them. Every other edge becomes a
:class:`Channel` with a partitioning. Both runtimes execute this same graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from sage_core.compiler.logical import (
    EdgeSpec,
    LogicalGraph,
    OperatorSpec,
    OpKind,
    Partitioning,
)
from sage_core.compiler.validate import validate


@dataclass(frozen=True)
class Chain:
    """Operators executed back to back by each of ``parallelism`` tasks."""

    id: str
    operators: tuple[str, ...]
    parallelism: int

    def task_ids(self) -> list[str]:
        """``chain#instance`` for each parallel task."""
        return [f"{self.id}#{i}" for i in range(self.parallelism)]


@dataclass(frozen=True)
class Channel:
    """Records from every task of ``source`` to the tasks of ``target``, into input ``slot``.

    ``keyed`` channels carry ``(key, record)`` pairs (the upstream chain ends with a keyby).
    """

    source: str
    target: str
    partitioning: Partitioning
    slot: int
    keyed: bool


@dataclass(frozen=True)
class PhysicalGraph:
    """Chains (in topological order) and the channels between them."""

    logical: LogicalGraph
    chains: dict[str, Chain]
    channels: tuple[Channel, ...]

    def operator(self, op_id: str) -> OperatorSpec:
        """The logical operator ``op_id``."""
        return self.logical.spec(op_id)

    def inputs(self, chain_id: str) -> list[Channel]:
        """Channels into ``chain_id``."""
        return [c for c in self.channels if c.target == chain_id]

    def outputs(self, chain_id: str) -> list[Channel]:
        """Channels out of ``chain_id``."""
        return [c for c in self.channels if c.source == chain_id]

    def task_count(self) -> int:
        """Number of physical tasks (threads locally, actors on Ray)."""
        return sum(chain.parallelism for chain in self.chains.values())

    def task_graph(self) -> nx.DiGraph:
        """One node per task, one edge per pair of tasks a channel connects."""
        graph = nx.DiGraph()
        for chain in self.chains.values():
            for i, task in enumerate(chain.task_ids()):
                graph.add_node(task, chain=chain.id, instance=i)
        for channel in self.channels:
            sources = self.chains[channel.source].task_ids()
            targets = self.chains[channel.target].task_ids()
            for i, task in enumerate(sources):
                reach = [targets[i]] if channel.partitioning is Partitioning.FORWARD else targets
                for target in reach:
                    graph.add_edge(task, target, partitioning=channel.partitioning.value)
        return graph

    def to_dot(self) -> str:
        """Graphviz source of the chains and channels."""
        from sage_core.compiler.export import to_dot

        return to_dot(self)

    def to_mermaid(self) -> str:
        """Mermaid flowchart source of the chains and channels."""
        from sage_core.compiler.export import to_mermaid

        return to_mermaid(self)


def compile_graph(logical: LogicalGraph) -> PhysicalGraph:
    """Validate ``logical`` and lower it to a :class:`PhysicalGraph`."""
    validate(logical)
    chain_of: dict[str, list[str]] = {}
    order: list[list[str]] = []
    for op_id in nx.topological_sort(logical.graph):
        upstream = _chainable_upstream(logical, op_id)
        if upstream is None:
            chain = [op_id]
            order.append(chain)
        else:
            chain = chain_of[upstream]
            chain.append(op_id)
        chain_of[op_id] = chain
    chains = {}
    for ops in order:
        chain = Chain(id="+".join(ops), operators=tuple(ops), parallelism=logical.spec(ops[0]).parallelism)
        chains[chain.id] = chain
    chain_id = {op: "+".join(ops) for op, ops in chain_of.items()}
    channels = []
    for source, target, data in logical.graph.edges(data=True):
        if chain_id[source] == chain_id[target]:
            continue
        edge: EdgeSpec = data["edge"]
        channels.append(
            Channel(
                source=chain_id[source],
                target=chain_id[target],
                partitioning=resolve_partitioning(logical, source, target, edge),
                slot=edge.slot,
                keyed=logical.spec(source).kind is OpKind.KEYBY,
            )
        )
    return PhysicalGraph(logical=logical, chains=chains, channels=tuple(channels))


def resolve_partitioning(logical: LogicalGraph, source: str, target: str, edge: EdgeSpec) -> Partitioning:
    """The edge's explicit partitioning, hash after a keyby, else forward or round-robin."""
    if logical.spec(source).kind is OpKind.KEYBY:
        return Partitioning.HASH
    if edge.partitioning is not None:
        return edge.partitioning
    same = logical.spec(source).parallelism == logical.spec(target).parallelism
    return Partitioning.FORWARD if same else Partitioning.ROUND_ROBIN


def _chainable_upstream(logical: LogicalGraph, op_id: str) -> str | None:
    inputs = logical.inputs(op_id)
    if len(inputs) != 1 or logical.spec(op_id).kind is OpKind.SOURCE:
        return None
    upstream, edge = inputs[0]
    if len(logical.outputs(upstream)) != 1:
        return None
    if resolve_partitioning(logical, upstream, op_id, edge) is not Partitioning.FORWARD:
        return None
    return upstream
