"""Data streams: each operator call appends a node to the environment's logical graph.

Nothing runs here; ``env.submit()`` compiles the graph and hands it to a runtime.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable

from sage_core.api.collect import MAX_BUFFERED, Collected, CollectSink
from sage_core.api.functions import (
    BaseFunction,
    CoMapFunction,
    FilterFunction,
    FlatMapFunction,
    JoinFunction,
    KeyByFunction,
    MapFunction,
    SinkFunction,
)
from sage_core.compiler.logical import EdgeSpec, OperatorSpec, OpKind, Partitioning

if TYPE_CHECKING:
    from sage_core.api.environment import BaseEnvironment


class DataStream:
    """A stream of records produced by one operator."""

    def __init__(self, env: "BaseEnvironment", op: OperatorSpec, partitioning: Partitioning | None = None) -> None:
        self.env = env
        self.op = op
        self._partitioning = partitioning

    # ------------------------------------------------------------------ one input, one output

    def map(
        self,
        function: type[MapFunction] | MapFunction | Callable[[Any], Any],
        *,
        parallelism: int = 1,
        capacity: int | None = None,
        ordered: bool = True,
        name: str | None = None,
    ) -> "DataStream":
        """One record out per record in.

        A function returning a ``Future`` (from ``call_service_async``), or a list of them, keeps up to
        ``capacity`` records in flight (default 256) and emits each result when it completes;
        ``ordered=False`` emits in completion order.
        """
        return self._then(OpKind.MAP, function, MapFunction, parallelism, name, capacity=capacity, ordered=ordered)

    def filter(
        self,
        function: type[FilterFunction] | FilterFunction | Callable[[Any], bool],
        *,
        parallelism: int = 1,
        name: str | None = None,
    ) -> "DataStream":
        """Keep the records for which the function returns true."""
        return self._then(OpKind.FILTER, function, FilterFunction, parallelism, name)

    def flatmap(
        self,
        function: type[FlatMapFunction] | FlatMapFunction | Callable[[Any], Any],
        *,
        parallelism: int = 1,
        name: str | None = None,
    ) -> "DataStream":
        """Zero or more records out per record in (the function returns an iterable)."""
        return self._then(OpKind.FLATMAP, function, FlatMapFunction, parallelism, name)

    def keyby(
        self, function: type[KeyByFunction] | KeyByFunction | Callable[[Any], Any], *, name: str | None = None
    ) -> "DataStream":
        """Partition by key: records with equal keys reach the same instance of the next operator."""
        return self._then(OpKind.KEYBY, function, KeyByFunction, self.op.parallelism, name)

    def sink(
        self,
        function: type[SinkFunction] | SinkFunction | Callable[[Any], Any],
        *,
        parallelism: int = 1,
        name: str | None = None,
    ) -> None:
        """Consume the stream."""
        self._then(OpKind.SINK, function, SinkFunction, parallelism, name)

    def collect(self, *, max_buffered: int = MAX_BUFFERED) -> Collected:
        """Bring this stream's records back to the driver, in order of arrival, on any runtime.

        Returns a :class:`~sage_core.api.collect.Collected`: after ``env.submit()`` its ``records``
        hold every record; with ``submit(autostop=False)`` iterate it to consume records as they
        come. At most ``max_buffered`` batches wait in between (the sink then waits: backpressure).
        """
        channel = self.env.collect_channel(max_buffered)
        collected = Collected(channel)
        self.sink(CollectSink(channel), name="collect")
        self.env.collectors.append(collected)
        return collected

    def print(self, prefix: str = "") -> None:
        """Sink that prints every record."""
        self.sink(lambda record: print(f"{prefix}{record}"), name="print")

    # ------------------------------------------------------------------ distribution

    def broadcast(self) -> "DataStream":
        """Send every record to every instance of the next operator."""
        return DataStream(self.env, self.op, Partitioning.BROADCAST)

    def rebalance(self) -> "DataStream":
        """Spread batches round-robin over the next operator's instances."""
        return DataStream(self.env, self.op, Partitioning.ROUND_ROBIN)

    # ------------------------------------------------------------------ two inputs

    def connect(self, other: "DataStream") -> "ConnectedStreams":
        """Pair with another stream for ``comap`` or a keyed ``join``."""
        return ConnectedStreams(self, other)

    def join(
        self,
        other: "DataStream",
        function: type[JoinFunction] | JoinFunction | Callable[[Any, Any, Any], Any],
        *,
        parallelism: int = 1,
        name: str | None = None,
    ) -> "DataStream":
        """Keyed join with ``other``; both streams must come out of ``keyby``."""
        return self.connect(other).join(function, parallelism=parallelism, name=name)

    # ------------------------------------------------------------------ helpers

    def _then(
        self,
        kind: OpKind,
        function: Any,
        expected: type[BaseFunction],
        parallelism: int,
        name: str | None,
        **settings: Any,
    ) -> "DataStream":
        check_function(function, expected, kind)
        self.env.logical.require(self.op.id)
        spec = self.env.logical.add(kind, function, parallelism=parallelism, name=name, **settings)
        self.env.logical.connect(self.op.id, spec.id, EdgeSpec(partitioning=self._partitioning))
        return DataStream(self.env, spec)


class ConnectedStreams:
    """Two streams feeding one two-input operator."""

    def __init__(self, first: DataStream, second: DataStream) -> None:
        if first.env is not second.env:
            msg = "connect(): both streams must belong to the same environment"
            raise ValueError(msg)
        self.first = first
        self.second = second

    def comap(
        self,
        function: type[CoMapFunction] | CoMapFunction | tuple[Callable[[Any], Any], Callable[[Any], Any]],
        *,
        parallelism: int = 1,
        name: str | None = None,
    ) -> DataStream:
        """Map each input with its own function: ``map0`` for the first stream, ``map1`` for the second."""
        if isinstance(function, tuple):
            if len(function) != 2 or not all(callable(f) for f in function):
                msg = "comap(): pass a CoMapFunction or a pair of callables (first stream, second stream)"
                raise TypeError(msg)
        else:
            check_function(function, CoMapFunction, OpKind.COMAP, allow_callable=False)
        return self._two_input(OpKind.COMAP, function, parallelism, name)

    def join(
        self,
        function: type[JoinFunction] | JoinFunction | Callable[[Any, Any, Any], Any],
        *,
        parallelism: int = 1,
        name: str | None = None,
    ) -> DataStream:
        """Keyed join: ``function(key, left, right)`` for every pair of records with equal keys."""
        check_function(function, JoinFunction, OpKind.JOIN)
        return self._two_input(OpKind.JOIN, function, parallelism, name)

    def _two_input(self, kind: OpKind, function: Any, parallelism: int, name: str | None) -> DataStream:
        env = self.first.env
        for stream in (self.first, self.second):
            env.logical.require(stream.op.id)
        spec = env.logical.add(kind, function, parallelism=parallelism, name=name)
        for slot, stream in enumerate((self.first, self.second)):
            env.logical.connect(stream.op.id, spec.id, EdgeSpec(slot=slot, partitioning=stream._partitioning))
        return DataStream(env, spec)


def check_function(function: Any, expected: type[BaseFunction], kind: OpKind, *, allow_callable: bool = True) -> None:
    """Reject what cannot run as an operator's function, saying what is accepted."""
    if inspect.isclass(function) and issubclass(function, BaseFunction):
        return
    if isinstance(function, BaseFunction) or (allow_callable and callable(function)):
        return
    accepted = f"a subclass of {expected.__name__}, an instance of one"
    accepted += ", or a plain callable" if allow_callable else ""
    msg = f"{kind.value}(): got {function!r}; pass {accepted}"
    raise TypeError(msg)
