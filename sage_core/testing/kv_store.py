"""Contract suite for :class:`sage_core.plugin.KVStore` backends (kind ``kv``).

Besides the semantics on a few keys, it checks at 5,000 keys that ``get``, ``keys`` (every prefix
operator case: none, common, literal ``%``/``_``, non-ASCII, absent) and ``count`` agree with a
dict, overwrites and deletes, a save/load round trip and a save crashed part-way; then eight
threads writing, overwriting, deleting and reading at once; and bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

import numpy as np
import pytest

from sage_core.testing._calls import call
from sage_core.testing._crash import (
    assert_crash_mid_save_keeps_a_snapshot,
    assert_cut_snapshots_load_whole_or_not_at_all,
)
from sage_core.testing._threads import run_concurrently

SCALE = 5_000
PREFIXES = ("", "user:", "user:1", "doc:", "a%", "a_", "ключ", "zzz")
"""``keys(prefix)`` cases: everything, a common prefix, a longer one, SQL wildcards taken
literally, a non-ASCII prefix, a prefix no key has."""


@pytest.mark.timeout(120)
class KVStoreContract:
    """Subclass and define a ``make_kv`` fixture returning a zero-argument factory of empty stores.

    Stores are closed after each test.
    """

    @pytest.fixture
    def make_kv(self) -> Callable[[], Any]:
        """Override: ``return lambda: MyKV()``."""
        pytest.fail(f"{type(self).__name__} must define a make_kv fixture returning a store factory")

    @pytest.fixture
    def kv(self, make_kv: Callable[[], Any]) -> Iterator[Any]:
        """A fresh empty store, closed after the test."""
        created = make_kv()
        yield created
        call(created.close)

    @pytest.fixture
    def large(self, kv: Any) -> dict[str, Any]:
        """The store filled with :func:`scale_items`; returns them."""
        items = scale_items()
        for key, value in items.items():
            call(kv.put, key, value)
        return items

    # ------------------------------------------------------------------ semantics

    def test_put_then_get_returns_the_value(self, kv: Any) -> None:
        call(kv.put, "a", {"n": 1, "tags": ["x", "y"], "nested": {"ok": True}})
        assert call(kv.get, "a") == {"n": 1, "tags": ["x", "y"], "nested": {"ok": True}}

    def test_every_json_type_round_trips(self, kv: Any) -> None:
        values = [0, -7, 2**53, 0.1, -1.5e300, "", "é 漢字 🙂", True, False, None, [], {}, [1, [2, [3]]], {"a": {"b": None}}]
        for i, value in enumerate(values):
            call(kv.put, f"k{i}", value)
        got = [call(kv.get, f"k{i}") for i in range(len(values))]
        assert got == values and [type(v) for v in got] == [type(v) for v in values]

    def test_get_of_missing_key_returns_default(self, kv: Any) -> None:
        assert call(kv.get, "missing") is None
        assert call(kv.get, "missing", default=7) == 7

    def test_put_replaces_the_previous_value(self, kv: Any) -> None:
        call(kv.put, "a", 1)
        call(kv.put, "a", "two")
        assert call(kv.get, "a") == "two"
        assert call(kv.count) == 1

    def test_delete_says_whether_the_key_existed(self, kv: Any) -> None:
        call(kv.put, "a", 1)
        assert call(kv.delete, "a") is True
        assert call(kv.delete, "a") is False
        assert call(kv.get, "a") is None
        assert call(kv.keys) == []

    def test_keys_filters_by_prefix_and_sorts(self, kv: Any) -> None:
        for key in ["user:2", "user:1", "doc:1", "user:10"]:
            call(kv.put, key, key)
        assert call(kv.keys, "user:") == ["user:1", "user:10", "user:2"]
        assert call(kv.keys) == ["doc:1", "user:1", "user:10", "user:2"]

    def test_stored_value_is_isolated_from_later_mutation(self, kv: Any) -> None:
        value = {"items": [1, 2]}
        call(kv.put, "a", value)
        value["items"].append(3)
        got = call(kv.get, "a")
        got["items"].append(4)
        assert call(kv.get, "a") == {"items": [1, 2]}

    # ------------------------------------------------------------------ at scale

    def test_get_keys_and_count_agree_with_a_dict_at_scale(self, kv: Any, large: dict[str, Any]) -> None:
        assert call(kv.count) == len(large)
        for prefix in PREFIXES:
            want = sorted(k for k in large if k.startswith(prefix))
            assert call(kv.keys, prefix) == want, f"keys({prefix!r}) differs from the sorted keys with that prefix"
        wrong = [k for k, v in large.items() if call(kv.get, k) != v]
        assert not wrong, f"{len(wrong)} of {len(large)} keys give another value, e.g. {wrong[:5]}"

    def test_overwrites_and_deletes_at_scale(self, kv: Any, large: dict[str, Any]) -> None:
        keys = sorted(large)
        order = np.random.default_rng(3).permutation(len(keys))
        deleted, replaced = [keys[i] for i in order[:500]], [keys[i] for i in order[500:1000]]
        assert [call(kv.delete, k) for k in deleted] == [True] * 500
        assert call(kv.delete, deleted[0]) is False
        for key in replaced:
            call(kv.put, key, {"replaced": key})
        expected = {k: v for k, v in large.items() if k not in set(deleted)} | {k: {"replaced": k} for k in replaced}
        assert call(kv.count) == len(expected)
        assert call(kv.keys) == sorted(expected)
        assert [call(kv.get, k, default="gone") for k in deleted[:50]] == ["gone"] * 50
        stale = [k for k in replaced if call(kv.get, k) != {"replaced": k}]
        assert not stale, f"{len(stale)} of {len(replaced)} keys put again still give their old value, e.g. {stale[:5]}"

    # ------------------------------------------------------------------ concurrency

    def test_concurrent_writers_and_readers_lose_nothing_and_never_tear(self, kv: Any) -> None:
        writes = _ConcurrentWrites(kv)
        run_concurrently([writes.writer(t) for t in range(4)] + [writes.overwriter(u) for u in range(2)], [writes.reader] * 2)
        writes.assert_nothing_lost()

    # ------------------------------------------------------------------ persistence

    def test_save_and_load_round_trip_at_scale(self, kv: Any, large: dict[str, Any], make_kv: Callable[[], Any], tmp_path: Path) -> None:
        path = str(tmp_path / "kv.bin")
        call(kv.save, path)
        fresh = make_kv()
        try:
            call(fresh.put, "stale", 0)
            call(fresh.load, path)
            assert call(fresh.keys) == sorted(large), "load must replace the contents with the saved keys"
            assert call(fresh.count) == len(large)
            assert all(call(fresh.get, k) == v for k, v in large.items())
        finally:
            call(fresh.close)

    def test_crash_mid_save_leaves_the_previous_snapshot_loadable(self, make_kv: Callable[[], Any], tmp_path: Path) -> None:
        old = {f"k{i}": {"i": i, "text": "old" * 20} for i in range(60)}
        new = {f"k{i}": {"i": i, "text": "new"} for i in range(30, 90)}
        first = _filled(make_kv, old)
        path = str(tmp_path / "kv.bin")
        call(first.save, path)
        call(first.close)

        def read_back(where: str) -> Hashable:
            store = make_kv()
            try:
                call(store.load, where)
                return _summary(store)
            finally:
                call(store.close)

        assert_crash_mid_save_keeps_a_snapshot(
            lambda: _filled(make_kv, new), read_back, path, str(tmp_path / "scratch.bin"), _summary_of(old), _summary_of(new)
        )

    def test_a_snapshot_cut_short_loads_whole_or_not_at_all(self, make_kv: Callable[[], Any], tmp_path: Path) -> None:
        items = {f"k{i}": {"i": i, "text": "saved" * 10} for i in range(300)}
        store = _filled(make_kv, items)
        path = str(tmp_path / "kv.bin")
        call(store.save, path)
        call(store.close)
        fresh = lambda: _filled(make_kv, {"k0": "other"})
        assert_cut_snapshots_load_whole_or_not_at_all(path, fresh, _summary, _summary_of(items))

    def test_loading_a_corrupt_file_raises_value_error_and_keeps_the_store(self, kv: Any, tmp_path: Path) -> None:
        call(kv.put, "kept", 1)
        path = tmp_path / "corrupt.bin"
        path.write_bytes(b"\x00\x01 definitely not a store")
        with pytest.raises(ValueError):
            call(kv.load, str(path))
        assert call(kv.keys) == ["kept"] and call(kv.get, "kept") == 1

    # ------------------------------------------------------------------ bad input

    @pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), float("inf"), b"bytes"], ids=repr)
    def test_non_json_value_raises_value_error_and_stores_nothing(self, kv: Any, value: Any) -> None:
        call(kv.put, "a", "before")
        with pytest.raises(ValueError):
            call(kv.put, "a", value)
        with pytest.raises(ValueError):
            call(kv.put, "b", {"nested": [value]})
        assert call(kv.keys) == ["a"] and call(kv.get, "a") == "before"

    @pytest.mark.parametrize("key", [1, None, b"a", ("a",)], ids=repr)
    def test_non_string_key_raises_value_error(self, kv: Any, key: Any) -> None:
        with pytest.raises(ValueError):
            call(kv.put, key, 1)
        with pytest.raises(ValueError):
            call(kv.get, key)
        with pytest.raises(ValueError):
            call(kv.delete, key)
        assert call(kv.count) == 0


def scale_items() -> dict[str, Any]:
    """5,000 keys over several prefixes (``%``, ``_`` and non-ASCII among them) with varied JSON values."""
    families = ("user:", "doc:", "a%", "a_", "ключ", "b")
    items: dict[str, Any] = {}
    for i in range(SCALE):
        key = f"{families[i % len(families)]}{i}"
        items[key] = [i, f"v{i}", {"even": i % 2 == 0, "half": i / 2}] if i % 3 else f"value {i}"
    return items


class _ConcurrentWrites:
    """On a store already holding 2,000 keys, writers put their own keys then delete every fifth;
    overwriters rewrite shared keys with a version held twice in the value; readers check values
    are whole and key listings sorted."""

    BASE, WRITES, SHARED, VERSIONS = 2_000, 300, 8, 100

    def __init__(self, kv: Any) -> None:
        self.kv = kv
        for i in range(self.BASE):
            call(kv.put, f"base:{i:04d}", i)
        for j in range(self.SHARED):
            call(kv.put, f"shared:{j}", {"version": 0, "again": 0})

    def writer(self, t: int) -> Callable[[], None]:
        def work() -> None:
            for i in range(self.WRITES):
                call(self.kv.put, f"w{t}:{i:04d}", {"writer": t, "i": i})
            for i in range(0, self.WRITES, 5):
                assert call(self.kv.delete, f"w{t}:{i:04d}") is True, f"w{t}:{i:04d} was not there to delete"

        return work

    def overwriter(self, u: int) -> Callable[[], None]:
        def work() -> None:
            for version in range(1, self.VERSIONS + 1):
                for j in range(u, self.SHARED, 2):
                    call(self.kv.put, f"shared:{j}", {"version": version, "again": version})

        return work

    def reader(self) -> None:
        for j in range(self.SHARED):
            value = call(self.kv.get, f"shared:{j}")
            assert value is not None and value["version"] == value["again"], f"shared:{j} read torn: {value}"
        listed = call(self.kv.keys, "w1:")
        assert listed == sorted(set(listed)), "keys() is not sorted and unique during concurrent writes"

    def assert_nothing_lost(self) -> None:
        expected = {f"w{t}:{i:04d}": {"writer": t, "i": i} for t in range(4) for i in range(self.WRITES) if i % 5}
        expected |= {f"shared:{j}": {"version": self.VERSIONS, "again": self.VERSIONS} for j in range(self.SHARED)}
        expected |= {f"base:{i:04d}": i for i in range(self.BASE)}
        assert call(self.kv.count) == len(expected), "count after concurrent writes is wrong (lost or extra writes)"
        missing = sorted(set(expected) - set(call(self.kv.keys)))
        assert not missing, f"{len(missing)} keys written concurrently are lost, e.g. {missing[:5]}"
        wrong = [k for k, v in expected.items() if call(self.kv.get, k) != v]
        assert not wrong, f"keys hold another value after concurrent writes, e.g. {wrong[:5]}"


def _filled(make_kv: Callable[[], Any], items: dict[str, Any]) -> Any:
    store = make_kv()
    for key, value in items.items():
        call(store.put, key, value)
    return store


def _summary(store: Any) -> Hashable:
    return _summary_of({key: call(store.get, key) for key in call(store.keys)})


def _summary_of(items: dict[str, Any]) -> Hashable:
    return tuple(sorted((key, json.dumps(value, sort_keys=True)) for key, value in items.items()))


__all__ = ["KVStoreContract", "scale_items"]
