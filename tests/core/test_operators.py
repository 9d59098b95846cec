"""The dataflow API end to end on the local runtime: every operator, classes and callables."""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from sage_core import (
    BatchFunction,
    CoMapFunction,
    FilterFunction,
    FlatMapFunction,
    JoinFunction,
    KeyByFunction,
    LocalEnvironment,
    MapFunction,
    SinkFunction,
)


class Double(MapFunction):
    def execute(self, data: int) -> int:
        return data * 2


class IsEven(FilterFunction):
    def execute(self, data: int) -> bool:
        return data % 2 == 0


class Repeat(FlatMapFunction):
    def execute(self, data: int) -> list[int]:
        return [data] * (data % 3)


class Countdown(BatchFunction):
    def __init__(self) -> None:
        self.left = 5

    def execute(self, data: object = None) -> int | None:
        if self.left == 0:
            return None
        self.left -= 1
        return self.left


def test_function_classes_and_callables_give_the_same_result(env: LocalEnvironment, collected: list) -> None:
    env.from_batch(range(20)).map(Double).filter(lambda x: x % 4 == 0).map(lambda x: x + 1).sink(collected.append)
    env.submit()
    assert sorted(collected) == [x * 2 + 1 for x in range(20) if (x * 2) % 4 == 0]


def test_from_batch_accepts_lists_generators_and_batch_functions(env: LocalEnvironment, collected: list) -> None:
    env.from_batch([1, 2]).sink(collected.append)
    env.from_batch(i for i in (3, 4)).sink(collected.append)
    env.from_batch(Countdown).sink(collected.append)
    env.submit()
    assert sorted(collected) == [0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_flatmap_emits_zero_or_more_and_counts_empty_as_filtered(env: LocalEnvironment, collected: list) -> None:
    env.from_batch(range(6)).flatmap(Repeat, name="repeat").sink(collected.append)
    job = env.submit()
    assert sorted(collected) == [1, 2, 2, 4, 5, 5]
    ops = job.summary()["operators"]
    repeat = next(v for k, v in ops.items() if k.startswith("repeat"))
    assert repeat["in"] == 6 and repeat["filtered"] == 2 and repeat["out"] == 4 and repeat["emitted"] == 6


@pytest.mark.parametrize("parallelism", [1, 3])
def test_parallel_map_processes_every_record_once(env: LocalEnvironment, collected: list, parallelism: int) -> None:
    env.from_batch(range(10_000)).map(Double, parallelism=parallelism).filter(IsEven, parallelism=parallelism).sink(
        collected.append
    )
    env.submit()
    assert sorted(collected) == [x * 2 for x in range(10_000)]


class CountPerKey(MapFunction):
    """Per-key state held in the instance: correct only if each key always reaches this instance."""

    owners: dict = defaultdict(set)
    lock = threading.Lock()

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    def execute(self, data: tuple[str, int]) -> tuple[str, int]:
        key = data[0]
        self.counts[key] += 1
        with self.lock:
            CountPerKey.owners[key].add(self.ctx.instance)
        return key, self.counts[key]


def test_keyby_sends_equal_keys_to_the_same_instance(env: LocalEnvironment, collected: list) -> None:
    CountPerKey.owners.clear()
    records = [(f"k{i % 37}", i) for i in range(5_000)]
    env.from_batch(records).keyby(lambda r: r[0]).map(CountPerKey, parallelism=4).sink(collected.append)
    env.submit()
    assert all(len(instances) == 1 for instances in CountPerKey.owners.values())
    assert len({i for s in CountPerKey.owners.values() for i in s}) > 1, "keys should spread over instances"
    final = {}
    for key, count in collected:
        final[key] = max(final.get(key, 0), count)
    expected = defaultdict(int)
    for key, _ in records:
        expected[key] += 1
    assert final == expected


class KeyFirst(KeyByFunction):
    def execute(self, data: tuple) -> str:
        return data[0]


class Pair(JoinFunction):
    def execute(self, key: str, left: tuple, right: tuple) -> tuple:
        return key, left[1], right[1]


def test_keyed_join_pairs_every_match(env: LocalEnvironment, collected: list) -> None:
    orders = env.from_batch([("a", 1), ("b", 2), ("a", 3)]).keyby(KeyFirst)
    users = env.from_batch([("a", "alice"), ("b", "bob"), ("c", "carol")]).keyby(KeyFirst)
    orders.join(users, Pair, parallelism=2).sink(collected.append)
    env.submit()
    assert sorted(collected) == [("a", 1, "alice"), ("a", 3, "alice"), ("b", 2, "bob")]


class Tag(CoMapFunction):
    def map0(self, data: int) -> str:
        return f"left:{data}"

    def map1(self, data: int) -> str:
        return f"right:{data}"


def test_comap_maps_each_input_with_its_own_function(env: LocalEnvironment, collected: list) -> None:
    left = env.from_batch([1, 2])
    right = env.from_batch([3])
    left.connect(right).comap(Tag).sink(collected.append)
    env.submit()
    assert sorted(collected) == ["left:1", "left:2", "right:3"]


def test_broadcast_reaches_every_instance(env: LocalEnvironment, collected: list) -> None:
    class Who(MapFunction):
        def execute(self, data: int) -> tuple[int, int]:
            return data, self.ctx.instance

    env.from_batch([7]).broadcast().map(Who, parallelism=3).sink(collected.append)
    env.submit()
    assert sorted(collected) == [(7, 0), (7, 1), (7, 2)]


class Collect(SinkFunction):
    seen: list = []

    def open(self) -> None:
        Collect.seen.append("open")

    def execute(self, data: int) -> None:
        Collect.seen.append(data)

    def close(self) -> None:
        Collect.seen.append("close")


def test_function_open_and_close_bracket_the_records(env: LocalEnvironment) -> None:
    Collect.seen = []
    env.from_batch([1, 2]).sink(Collect)
    env.submit()
    assert Collect.seen == ["open", 1, 2, "close"]


def test_operator_rejects_a_non_function_with_the_fix() -> None:
    env = LocalEnvironment("bad")
    with pytest.raises(TypeError, match="pass a subclass of MapFunction"):
        env.from_batch([1]).map(42)  # type: ignore[arg-type]
