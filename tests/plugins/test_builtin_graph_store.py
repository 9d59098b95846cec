"""The built-in networkx graph store passes the graph contract suite."""

from __future__ import annotations

import pytest

from sage_core.builtin.graph_store import NetworkxGraphStore
from sage_core.testing import GraphStoreContract


class TestNetworkxGraphStore(GraphStoreContract):
    @pytest.fixture
    def make_graph(self):
        return NetworkxGraphStore


def test_two_relations_between_the_same_nodes_are_kept_apart() -> None:
    graph = NetworkxGraphStore()
    graph.add_edge("a", "b", relation="cites")
    graph.add_edge("a", "b", relation="follows")
    assert graph.neighbors("a", relation="cites") == ["b"]
    graph.remove_node("b")
    assert graph.neighbors("a") == []


def test_negative_hops_and_non_string_nodes_are_rejected() -> None:
    graph = NetworkxGraphStore()
    with pytest.raises(ValueError, match="hops"):
        graph.neighbors("a", hops=-1)
    with pytest.raises(ValueError, match="strings"):
        graph.add_node(3)


def test_node_attributes_survive_save_and_load(tmp_path) -> None:
    path = str(tmp_path / "g.json")
    graph = NetworkxGraphStore(path=path)
    graph.add_node("a", label="first")
    graph.close()
    again = NetworkxGraphStore(path=path)
    assert again._graph.nodes["a"]["label"] == "first"
