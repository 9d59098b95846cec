"""Checks on the logical graph, each a small rule; errors name the operator and say the fix."""

from __future__ import annotations

from typing import Callable, Iterator

import networkx as nx

from sage_core.compiler.logical import LogicalGraph, OpKind
from sage_core.errors import PipelineError

Rule = Callable[[LogicalGraph], Iterator[str]]


def has_source(logical: LogicalGraph) -> Iterator[str]:
    """A pipeline needs at least one source."""
    if not any(op.kind is OpKind.SOURCE for op in logical.operators()):
        yield "the pipeline has no source: start it with env.from_batch(...) or env.from_source(...)"


def is_acyclic(logical: LogicalGraph) -> Iterator[str]:
    """Records flow one way."""
    try:
        cycle = nx.find_cycle(logical.graph)
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join(u for u, _ in cycle)
    yield f"the pipeline has a cycle ({path}): operators must form a DAG"


def parallelism_positive(logical: LogicalGraph) -> Iterator[str]:
    """Parallelism and capacity are at least one."""
    for op in logical.operators():
        if not isinstance(op.parallelism, int) or op.parallelism < 1:
            yield f"{op.describe()}: parallelism={op.parallelism!r}; use an integer >= 1"
        if op.capacity is not None and (not isinstance(op.capacity, int) or op.capacity < 1):
            yield f"{op.describe()}: capacity={op.capacity!r}; use an integer >= 1 or leave it out"


def every_stream_ends_in_sink(logical: LogicalGraph) -> Iterator[str]:
    """A stream that reaches no sink would drop its records silently."""
    for op in logical.operators():
        if op.kind is not OpKind.SINK and not logical.outputs(op.id):
            yield f"{op.describe()} has no downstream operator, so its records would be lost: add .sink(...)"


def inputs_complete(logical: LogicalGraph) -> Iterator[str]:
    """Sources have no input, two-input operators have two, the others one."""
    for op in logical.operators():
        count = len(logical.inputs(op.id))
        expected = 0 if op.kind is OpKind.SOURCE else 2 if op.kind in (OpKind.COMAP, OpKind.JOIN) else 1
        if count != expected:
            yield f"{op.describe()} has {count} inputs, expected {expected}"


def joins_are_keyed(logical: LogicalGraph) -> Iterator[str]:
    """A keyed join needs both inputs partitioned by key."""
    for op in logical.operators():
        if op.kind is not OpKind.JOIN:
            continue
        for upstream, edge in logical.inputs(op.id):
            if logical.spec(upstream).kind is not OpKind.KEYBY:
                yield (
                    f"{op.describe()}: input {edge.slot} ({upstream}) is not keyed; "
                    f"call .keyby(key_function) on both streams before .join(...)"
                )


RULES: tuple[Rule, ...] = (
    has_source,
    is_acyclic,
    parallelism_positive,
    inputs_complete,
    every_stream_ends_in_sink,
    joins_are_keyed,
)


def validate(logical: LogicalGraph) -> None:
    """Raise :class:`PipelineError` listing every problem found, or return."""
    problems = [problem for rule in RULES for problem in rule(logical)]
    if problems:
        raise PipelineError("invalid pipeline:\n  - " + "\n  - ".join(problems))
