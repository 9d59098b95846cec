"""Text renderings of a physical graph: Graphviz DOT and Mermaid. They read only the graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sage_core.compiler.physical import PhysicalGraph


def _label(graph: "PhysicalGraph", chain_id: str) -> str:
    chain = graph.chains[chain_id]
    ops = " → ".join(chain.operators)
    return f"{ops} ×{chain.parallelism}" if chain.parallelism > 1 else ops


def _node(chain_id: str) -> str:
    return "n_" + "".join(ch if ch.isalnum() else "_" for ch in chain_id)


def to_dot(graph: "PhysicalGraph") -> str:
    """Graphviz source: one box per chain, one labelled arrow per channel."""
    lines = ["digraph sage {", "  rankdir=LR;", "  node [shape=box];"]
    for chain_id in graph.chains:
        lines.append(f'  {_node(chain_id)} [label="{_label(graph, chain_id)}"];')
    for channel in graph.channels:
        lines.append(f'  {_node(channel.source)} -> {_node(channel.target)} [label="{channel.partitioning.value}"];')
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(graph: "PhysicalGraph") -> str:
    """Mermaid flowchart source: one node per chain, one labelled arrow per channel."""
    lines = ["flowchart LR"]
    for chain_id in graph.chains:
        lines.append(f'  {_node(chain_id)}["{_label(graph, chain_id)}"]')
    for channel in graph.channels:
        lines.append(f"  {_node(channel.source)} -->|{channel.partitioning.value}| {_node(channel.target)}")
    return "\n".join(lines)
