"""Reference answers for the graph-store suite: a random graph kept beside the store, and its
breadth-first search with the contract's meaning (either direction, nearest first)."""

from __future__ import annotations

from typing import Any, Callable, Hashable

import numpy as np

from sage_core.testing._calls import call

RELATIONS = ("a", "b")


class RandomGraph:
    """``n`` nodes ``g0..``, about ``2n`` edges of relation ``a`` or ``b``, some given twice."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.nodes = [f"g{i}" for i in range(n)]
        pairs = rng.integers(0, n, size=(2 * n, 2))
        relations = rng.integers(0, len(RELATIONS), size=2 * n)
        self.edges = [(self.nodes[s], self.nodes[t], RELATIONS[r]) for (s, t), r in zip(pairs.tolist(), relations.tolist()) if s != t]
        self.edges += self.edges[:: 20]  # repeated edges must not repeat neighbours
        self.removed: list[str] = []
        self._adjacent: dict[str | None, dict[str, set[str]]] = {}

    def fill(self, graph: Any) -> None:
        """Add every node, then every edge, to ``graph``."""
        for node in self.nodes:
            call(graph.add_node, node, seed="random")
        for source, target, relation in self.edges:
            call(graph.add_edge, source, target, relation=relation)

    def filled(self, make_graph: Callable[[], Any]) -> Any:
        """A new graph holding this one."""
        graph = make_graph()
        self.fill(graph)
        return graph

    def remove(self, nodes: list[str]) -> None:
        """Forget ``nodes`` and their edges, as ``remove_node`` must."""
        gone = set(nodes)
        self.nodes = [n for n in self.nodes if n not in gone]
        self.edges = [e for e in self.edges if e[0] not in gone and e[1] not in gone]
        self.removed += nodes
        self._adjacent.clear()

    def sample(self, count: int, seed: int) -> list[str]:
        """``count`` distinct nodes picked at random."""
        picked = np.random.default_rng(seed).choice(len(self.nodes), size=min(count, len(self.nodes)), replace=False)
        return [self.nodes[i] for i in picked.tolist()]

    def levels(self, node: str, hops: int, relation: str | None) -> list[set[str]]:
        """The nodes at distance 1, 2, ... ``hops`` from ``node``, edges taken either way."""
        adjacent = self._adjacency(relation)
        seen, frontier, out = {node}, {node}, []
        for _ in range(hops):
            frontier = {o for n in frontier for o in adjacent.get(n, ())} - seen
            if not frontier:
                break
            seen |= frontier
            out.append(frontier)
        return out

    def _adjacency(self, relation: str | None) -> dict[str, set[str]]:
        adjacent = self._adjacent.get(relation)
        if adjacent is None:
            adjacent = self._adjacent[relation] = {}
            for source, target, kind in self.edges:
                if relation is None or kind == relation:
                    adjacent.setdefault(source, set()).add(target)
                    adjacent.setdefault(target, set()).add(source)
        return adjacent

    def summary(self, names: list[str]) -> Hashable:
        """What :func:`graph_summary` gives for a store holding this graph."""
        present = set(self.nodes)
        return (len(self.nodes),) + tuple(
            (name, tuple(sorted(self._adjacency(None).get(name, ()))))
            for name in names
            if name in present
        )


def graph_summary(graph: Any, names: list[str]) -> Hashable:
    """The node count, then each present name of ``names`` with its sorted one-hop neighbours."""
    return (call(graph.count),) + tuple(
        (name, tuple(sorted(call(graph.neighbors, name)))) for name in names if call(graph.has_node, name)
    )


def assert_neighbors_match(graph: Any, reference: RandomGraph, nodes: list[str]) -> None:
    """``neighbors`` of each node, hops 1 to 3, all relations and relation ``a``, equals the reference."""
    for node in nodes:
        for hops in (1, 2, 3):
            for relation in (None, "a"):
                got = call(graph.neighbors, node, hops=hops, relation=relation)
                levels = reference.levels(node, hops, relation)
                where = f"neighbors({node!r}, hops={hops}, relation={relation!r})"
                assert len(got) == len(set(got)), f"{where} lists a node twice"
                want = set().union(*levels) if levels else set()
                assert set(got) == want, (
                    f"{where}: missing {sorted(want - set(got))[:5]}, unexpected {sorted(set(got) - want)[:5]}"
                )
                distance = {n: d for d, level in enumerate(levels) for n in level}
                assert [distance[n] for n in got] == sorted(distance[n] for n in got), f"{where} is not nearest first"


__all__ = ["RandomGraph", "assert_neighbors_match", "graph_summary"]
