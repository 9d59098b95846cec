"""Contract suite for :class:`sage_core.KVStore` backends (kind ``kv``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from sage_core.testing._calls import call


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

    def test_put_then_get_returns_the_value(self, kv: Any) -> None:
        call(kv.put, "a", {"n": 1, "tags": ["x", "y"], "nested": {"ok": True}})
        assert call(kv.get, "a") == {"n": 1, "tags": ["x", "y"], "nested": {"ok": True}}

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

    def test_keys_filters_by_prefix_and_sorts(self, kv: Any) -> None:
        for key in ["user:2", "user:1", "doc:1", "user:10"]:
            call(kv.put, key, key)
        assert call(kv.keys, "user:") == ["user:1", "user:10", "user:2"]
        assert call(kv.keys) == ["doc:1", "user:1", "user:10", "user:2"]

    def test_count_tracks_puts_and_deletes(self, kv: Any) -> None:
        for i in range(5):
            call(kv.put, f"k{i}", i)
        call(kv.delete, "k0")
        assert call(kv.count) == 4

    def test_stored_value_is_isolated_from_later_mutation(self, kv: Any) -> None:
        value = {"items": [1, 2]}
        call(kv.put, "a", value)
        value["items"].append(3)
        assert call(kv.get, "a") == {"items": [1, 2]}

    def test_non_json_value_raises_value_error(self, kv: Any) -> None:
        with pytest.raises(ValueError):
            call(kv.put, "a", object())
        assert call(kv.count) == 0

    def test_save_and_load_round_trip(self, kv: Any, make_kv: Callable[[], Any], tmp_path: Path) -> None:
        call(kv.put, "a", [1, 2, 3])
        call(kv.put, "b", {"x": "y"})
        path = str(tmp_path / "kv.bin")
        call(kv.save, path)
        fresh = make_kv()
        try:
            call(fresh.put, "stale", 0)
            call(fresh.load, path)
            assert call(fresh.keys) == ["a", "b"]
            assert call(fresh.get, "b") == {"x": "y"}
        finally:
            call(fresh.close)

    def test_loading_a_corrupt_file_raises_value_error(self, kv: Any, tmp_path: Path) -> None:
        path = tmp_path / "corrupt.bin"
        path.write_bytes(b"\x00\x01 definitely not a store")
        with pytest.raises(ValueError):
            call(kv.load, str(path))


__all__ = ["KVStoreContract"]
