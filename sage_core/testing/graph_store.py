"""Contract suite for :class:`sage_core.plugin.GraphStore` backends (kind ``graph``).

Besides the semantics on a small chain, it checks on a random graph of 5,000 nodes that
``neighbors`` equals a reference breadth-first search (hops 1 to 3, with and without a relation
filter, nearest first), that removing nodes removes them from every answer, a save/load round
trip and a save crashed part-way; then eight threads adding, removing and reading at once; and
bad input.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

import pytest

from sage_core.testing._calls import call
from sage_core.testing._crash import (
    assert_crash_mid_save_keeps_a_snapshot,
    assert_cut_snapshots_load_whole_or_not_at_all,
)
from sage_core.testing._graphs import RandomGraph, assert_neighbors_match, graph_summary
from sage_core.testing._threads import run_concurrently

SCALE = 5_000


@pytest.mark.timeout(120)
class GraphStoreContract:
    """Subclass and define a ``make_graph`` fixture returning a zero-argument factory of empty graphs.

    Graphs are closed after each test.
    """

    @pytest.fixture
    def make_graph(self) -> Callable[[], Any]:
        """Override: ``return lambda: MyGraph()``."""
        pytest.fail(f"{type(self).__name__} must define a make_graph fixture returning a graph factory")

    @pytest.fixture
    def graph(self, make_graph: Callable[[], Any]) -> Iterator[Any]:
        """A fresh empty graph, closed after the test."""
        created = make_graph()
        yield created
        call(created.close)

    @pytest.fixture
    def chain(self, graph: Any) -> Any:
        """a -> b -> c -> d (relation ``next``) plus a -cites-> e."""
        for source, target in [("a", "b"), ("b", "c"), ("c", "d")]:
            call(graph.add_edge, source, target, relation="next")
        call(graph.add_edge, "a", "e", relation="cites")
        return graph

    @pytest.fixture
    def large(self, graph: Any) -> RandomGraph:
        """The graph filled with a random graph of :data:`SCALE` nodes (repeated edges included)."""
        reference = RandomGraph(SCALE, seed=1)
        reference.fill(graph)
        return reference

    # ------------------------------------------------------------------ semantics

    def test_add_node_then_has_node_and_count(self, graph: Any) -> None:
        call(graph.add_node, "n1", label="first")
        call(graph.add_node, "n1", label="again")
        assert call(graph.has_node, "n1") is True
        assert call(graph.has_node, "n2") is False
        assert call(graph.count) == 1

    def test_add_edge_creates_missing_nodes(self, graph: Any) -> None:
        call(graph.add_edge, "x", "y")
        assert call(graph.has_node, "x") and call(graph.has_node, "y")
        assert call(graph.count) == 2

    def test_neighbors_one_hop_follow_edges_in_either_direction(self, chain: Any) -> None:
        assert sorted(call(chain.neighbors, "b")) == ["a", "c"]

    def test_neighbors_within_two_hops_come_nearest_first_without_the_node(self, chain: Any) -> None:
        found = call(chain.neighbors, "a", hops=2)
        assert "a" not in found
        assert set(found[:2]) == {"b", "e"}
        assert found[2:] == ["c"]

    def test_neighbors_can_follow_one_relation_only(self, chain: Any) -> None:
        assert call(chain.neighbors, "a", hops=3, relation="next") == ["b", "c", "d"]
        assert call(chain.neighbors, "a", relation="cites") == ["e"]
        assert call(chain.neighbors, "a", relation="unknown") == []

    def test_a_repeated_edge_gives_one_neighbor(self, graph: Any) -> None:
        for _ in range(3):
            call(graph.add_edge, "x", "y", relation="r")
        call(graph.add_edge, "y", "x", relation="r")
        assert call(graph.neighbors, "x") == ["y"] and call(graph.count) == 2

    def test_remove_node_drops_its_edges_and_reports_existence(self, chain: Any) -> None:
        assert call(chain.remove_node, "b") is True
        assert call(chain.remove_node, "b") is False
        assert call(chain.neighbors, "a", hops=3, relation="next") == []
        assert call(chain.count) == 4
        call(chain.add_node, "b")
        assert call(chain.neighbors, "b") == [], "a re-added node must not get its old edges back"

    # ------------------------------------------------------------------ at scale

    def test_neighbors_match_breadth_first_search_at_scale(self, graph: Any, large: RandomGraph) -> None:
        assert call(graph.count) == len(large.nodes)
        assert all(call(graph.has_node, node) for node in large.nodes[::25])
        assert_neighbors_match(graph, large, large.sample(150, seed=2))

    def test_removed_nodes_leave_every_answer_at_scale(self, graph: Any, large: RandomGraph) -> None:
        removed = large.sample(500, seed=3)
        assert [call(graph.remove_node, node) for node in removed] == [True] * len(removed)
        large.remove(removed)
        assert call(graph.count) == len(large.nodes)
        assert not any(call(graph.has_node, node) for node in removed[:100])
        assert_neighbors_match(graph, large, large.sample(150, seed=4))

    # ------------------------------------------------------------------ concurrency

    def test_concurrent_writers_and_readers_lose_nothing_and_never_tear(self, graph: Any) -> None:
        writes = _ConcurrentWrites(graph)
        run_concurrently([writes.writer(t) for t in range(6)], [writes.reader] * 2)
        writes.assert_nothing_lost()

    # ------------------------------------------------------------------ persistence

    def test_save_and_load_round_trip_at_scale(
        self, graph: Any, large: RandomGraph, make_graph: Callable[[], Any], tmp_path: Path
    ) -> None:
        path = str(tmp_path / "graph.bin")
        call(graph.save, path)
        fresh = make_graph()
        try:
            call(fresh.add_node, "stale")
            call(fresh.load, path)
            assert call(fresh.count) == len(large.nodes) and not call(fresh.has_node, "stale")
            assert_neighbors_match(fresh, large, large.sample(100, seed=5))
        finally:
            call(fresh.close)

    def test_crash_mid_save_leaves_the_previous_snapshot_loadable(self, make_graph: Callable[[], Any], tmp_path: Path) -> None:
        old, new = RandomGraph(80, seed=6), RandomGraph(80, seed=7)
        new.remove(new.nodes[:10])
        first = old.filled(make_graph)
        path = str(tmp_path / "graph.bin")
        call(first.save, path)
        call(first.close)
        names = sorted(set(old.nodes) | set(new.nodes) | set(new.removed))

        def read_back(where: str) -> Hashable:
            store = make_graph()
            try:
                call(store.load, where)
                return graph_summary(store, names)
            finally:
                call(store.close)

        assert_crash_mid_save_keeps_a_snapshot(
            lambda: new.filled(make_graph), read_back, path, str(tmp_path / "scratch.bin"),
            old.summary(names), new.summary(names),
        )

    def test_a_snapshot_cut_short_loads_whole_or_not_at_all(self, make_graph: Callable[[], Any], tmp_path: Path) -> None:
        saved = RandomGraph(300, seed=8)
        store = saved.filled(make_graph)
        path = str(tmp_path / "graph.bin")
        call(store.save, path)
        call(store.close)
        names = [*saved.nodes, "other"]

        def fresh() -> Any:
            graph = make_graph()
            call(graph.add_edge, "g0", "other")
            return graph

        assert_cut_snapshots_load_whole_or_not_at_all(path, fresh, lambda g: graph_summary(g, names), saved.summary(names))

    def test_loading_a_corrupt_file_raises_value_error_and_keeps_the_graph(self, chain: Any, tmp_path: Path) -> None:
        path = tmp_path / "corrupt.bin"
        path.write_bytes(b"\x00\x01 definitely not a graph")
        with pytest.raises(ValueError):
            call(chain.load, str(path))
        assert call(chain.count) == 5

    # ------------------------------------------------------------------ bad input

    @pytest.mark.parametrize("node", [1, None, b"a", ("a",)], ids=repr)
    def test_non_string_node_ids_raise_value_error(self, graph: Any, node: Any) -> None:
        for method, args in [("add_node", (node,)), ("add_edge", (node, "x")), ("add_edge", ("x", node)), ("neighbors", (node,))]:
            with pytest.raises(ValueError):
                call(getattr(graph, method), *args)
        assert call(graph.count) == 0

    def test_bad_hops_or_relation_raise_value_error(self, chain: Any) -> None:
        for hops in (-1, 1.5, "2"):
            with pytest.raises(ValueError):
                call(chain.neighbors, "a", hops=hops)
        with pytest.raises(ValueError):
            call(chain.add_edge, "a", "b", relation=3)

    def test_unknown_nodes_are_answered_not_raised(self, chain: Any) -> None:
        assert call(chain.has_node, "nope") is False
        assert call(chain.remove_node, "nope") is False
        assert call(chain.neighbors, "nope", hops=2) == []
        assert call(chain.count) == 5


class _ConcurrentWrites:
    """Four writers build chains of their own nodes and remove every fifth; two link their nodes
    to a shared hub; readers walk from the hub, which must never fail nor list a node twice."""

    LENGTH = 200

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        call(graph.add_node, "hub")

    def writer(self, t: int) -> Callable[[], None]:
        def work() -> None:
            nodes = [f"t{t}-{i:03d}" for i in range(self.LENGTH)]
            if t < 4:
                for a, b in itertools.pairwise(nodes):
                    call(self.graph.add_edge, a, b, relation="next")
                for node in nodes[::5]:
                    assert call(self.graph.remove_node, node) is True, f"{node} was not there to remove"
            else:
                for node in nodes:
                    call(self.graph.add_edge, node, "hub", relation="hub")

        return work

    def reader(self) -> None:
        found = call(self.graph.neighbors, "hub", hops=2)
        assert len(found) == len(set(found)) and "hub" not in found, "neighbors listed a node twice or the node itself"
        call(self.graph.count)

    def assert_nothing_lost(self) -> None:
        chains = [[f"t{t}-{i:03d}" for i in range(self.LENGTH)] for t in range(4)]
        kept = [node for nodes in chains for i, node in enumerate(nodes) if i % 5]
        assert call(self.graph.count) == 1 + len(kept) + 2 * self.LENGTH, "count after concurrent writes is wrong"
        linked = sorted(f"t{t}-{i:03d}" for t in (4, 5) for i in range(self.LENGTH))
        assert sorted(call(self.graph.neighbors, "hub")) == linked, "edges to the hub written concurrently are lost"
        for nodes in chains:
            for i in range(1, self.LENGTH - 1, 5):
                want = sorted(nodes[j] for j in (i - 1, i + 1) if j % 5)
                assert sorted(call(self.graph.neighbors, nodes[i])) == want, f"{nodes[i]}: edges lost or a removed node kept"


__all__ = ["GraphStoreContract"]
