"""Hybrid retrieval: vector similarity, graph expansion over links, and recency, weighted by config."""

from __future__ import annotations

import numpy as np
import pytest

from sage_core import ConfigError
from sage_memory import MemoryService


def similar(similarity: float, axis: int, dim: int = 16) -> np.ndarray:
    """A unit vector whose cosine similarity with basis vector 0 is exactly ``similarity``."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[0], vector[axis] = similarity, np.sqrt(1 - similarity**2)
    return vector


@pytest.fixture
def linked(memory: MemoryService, unit):
    """A query-like memory linked to an unrelated-looking one, among closer distractors (similarity 0.4)."""
    anchor = memory.store_memory("how do I bake bread?", vector=unit(0))
    answer = memory.store_memory("preheat the oven to 220 C", vector=unit(9))  # orthogonal to the query
    memory.link(anchor, answer, "answered_by")
    distractors = [memory.store_memory(f"bread fact {i}", vector=similar(0.4, 1 + i)) for i in range(6)]
    return memory, anchor, answer, distractors


def test_graph_expansion_returns_a_linked_memory_that_vector_search_misses(linked, unit) -> None:
    """The answer shares nothing with the query; only its link to the best hit brings it back."""
    memory, anchor, answer, _ = linked

    vector_only = [r["id"] for r in memory.retrieve_memories(vector=unit(0), top_k=3, hops=0)]
    expanded = memory.retrieve_memories(vector=unit(0), top_k=3, hops=1)

    assert vector_only[0] == anchor and answer not in vector_only
    assert [r["id"] for r in expanded][:2] == [anchor, answer]  # 0.5 through its link beats the 0.4 distractors
    linked_result = expanded[1]
    assert linked_result["content"] == "preheat the oven to 220 C"
    assert linked_result["score"] == pytest.approx(0.5 * 1.0, abs=1e-4)  # graph_weight * anchor similarity


def test_graph_expansion_reaches_further_with_more_hops_and_decays(linked, unit) -> None:
    memory, anchor, answer, _ = linked
    follow_up = memory.store_memory("let it rest for an hour", vector=unit(10))
    memory.link(answer, follow_up, "then")

    one_hop = {r["id"]: r["score"] for r in memory.retrieve_memories(vector=unit(0), top_k=3, hops=1)}
    two_hops = {r["id"]: r["score"] for r in memory.retrieve_memories(vector=unit(0), top_k=3, hops=2)}

    assert follow_up not in one_hop
    assert two_hops[follow_up] == pytest.approx(two_hops[answer] * 0.5, abs=1e-4)


@pytest.mark.parametrize(("graph_weight", "link_first"), [(0.5, True), (0.0, False)])
def test_graph_weight_from_config_decides_whether_a_link_outranks_a_similar_memory(unit, graph_weight, link_first) -> None:
    with MemoryService(retrieval={"graph_weight": graph_weight}) as memory:
        anchor = memory.store_memory("q", vector=unit(0))
        answer = memory.store_memory("a", vector=unit(9))
        memory.link(anchor, answer)
        near = memory.store_memory("near", vector=similar(0.3, 1))

        ranked = [r["id"] for r in memory.retrieve_memories(vector=unit(0), top_k=2, hops=1)]

    assert ranked == ([anchor, answer, near] if link_first else [anchor, near, answer])


def test_graph_expansion_respects_memory_type_and_time_filters(linked, clock, unit) -> None:
    memory, anchor, answer, _ = linked
    other_type = memory.store_memory("a tool call", vector=unit(11), memory_type="tool")
    memory.link(anchor, other_type)

    results = memory.retrieve_memories(vector=unit(0), top_k=2, hops=1, memory_type="conversation")
    future = memory.retrieve_memories(vector=unit(0), top_k=2, hops=1, time_range=(clock() + 60, clock() + 120))

    assert other_type not in {r["id"] for r in results}
    assert answer in {r["id"] for r in results}
    assert future == []


def test_recency_weight_prefers_the_newer_of_two_equally_similar_memories(clock, unit) -> None:
    config = {"recency_weight": 0.5, "recency_half_life_s": 0.05}
    with MemoryService(retrieval=config, clock=clock) as memory:
        older = memory.store_memory("same", vector=unit(0))
        clock.advance(0.1)
        newer = memory.store_memory("same", vector=unit(0))

        ranked = memory.retrieve_memories(vector=unit(0), top_k=2)

    assert [r["id"] for r in ranked] == [newer, older]
    assert ranked[0]["score"] > ranked[1]["score"] + 0.2


def test_without_recency_weight_similarity_alone_orders_results(clock, unit) -> None:
    with MemoryService(retrieval={"recency_weight": 0.0}, clock=clock) as memory:
        closest_but_oldest = memory.store_memory("close", vector=unit(0))
        clock.advance(1)
        memory.store_memory("farther", vector=unit(0, noise=0.5))

        ranked = memory.retrieve_memories(vector=unit(0), top_k=2)

    assert ranked[0]["id"] == closest_but_oldest


def test_unknown_retrieval_setting_is_rejected_with_the_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"retrieval\.graph_wieght: unknown key \(did you mean 'graph_weight'\?\); valid keys: candidate_factor"):
        MemoryService(retrieval={"graph_wieght": 1.0})
