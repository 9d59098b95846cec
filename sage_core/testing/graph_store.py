"""Contract suite for :class:`sage_core.GraphStore` backends (kind ``graph``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from sage_core.testing._calls import call


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

    def test_remove_node_drops_its_edges_and_reports_existence(self, chain: Any) -> None:
        assert call(chain.remove_node, "b") is True
        assert call(chain.remove_node, "b") is False
        assert call(chain.neighbors, "a", hops=3, relation="next") == []
        assert call(chain.count) == 4

    def test_save_and_load_round_trip(self, chain: Any, make_graph: Callable[[], Any], tmp_path: Path) -> None:
        path = str(tmp_path / "graph.bin")
        call(chain.save, path)
        fresh = make_graph()
        try:
            call(fresh.add_node, "stale")
            call(fresh.load, path)
            assert call(fresh.count) == 5 and not call(fresh.has_node, "stale")
            assert call(fresh.neighbors, "a", hops=3, relation="next") == ["b", "c", "d"]
        finally:
            call(fresh.close)


__all__ = ["GraphStoreContract"]
