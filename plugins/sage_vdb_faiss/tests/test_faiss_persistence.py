"""Save and load: one zip file written atomically, checked on load (format, version, dimension,
metric, consistency); a truncated or corrupt file is a ValueError that leaves the store intact."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

CONFIGS = {
    "flat": {"index": "Flat"},
    "hnsw": {"index": "HNSW16"},
    "ivf_trained": {"index": "IVF8,Flat", "train_min": 200, "nprobe": 8},
    "ivf_buffering": {"index": "IVF8,Flat", "train_min": 5000},
}


@pytest.fixture
def saved(make_vdb, data, tmp_path):
    """A flat store of 600 vectors saved to ``store.faiss.zip``: (path, store)."""
    store = make_vdb(16)
    store.add(data, ids=[f"d{i}" for i in range(600)], metadata=[{"i": i} for i in range(600)])
    path = tmp_path / "store.faiss.zip"
    store.save(str(path))
    return path, store


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_round_trip_keeps_ids_vectors_metadata_deletes_and_training(make_vdb, data, tmp_path, name):
    store = make_vdb(16, rebuild_ratio=0.9, **CONFIGS[name])
    store.add(data, ids=[f"d{i}" for i in range(600)], metadata=[{"i": i} for i in range(600)])
    store.delete(["d1", "d2"])
    path = str(tmp_path / "s.zip")
    store.save(path)
    loaded = make_vdb(None, **CONFIGS[name])
    loaded.load(path)
    assert loaded.dim == 16 and loaded.count() == 598
    assert loaded.stats()["trained"] == store.stats()["trained"]
    assert [h.id for h in loaded.search(data[7], top_k=5)] == [h.id for h in store.search(data[7], top_k=5)]
    assert loaded.get(["d1"]) == [None]
    got = loaded.get(["d9"])[0]
    assert got["metadata"] == {"i": 9}
    np.testing.assert_allclose(got["vector"], data[9], atol=1e-6)


def test_loaded_store_keeps_accepting_writes(saved, make_vdb, data):
    path, _ = saved
    store = make_vdb(16)
    store.load(str(path))
    store.upsert(data[:1], ids=["new"], metadata=[{"fresh": True}])
    assert store.count() == 601
    assert store.search(data[0], top_k=1, filter={"fresh": True})[0].id == "new"


def test_save_replaces_the_file_atomically_leaving_no_temporary_files(saved, data):
    path, store = saved
    store.add(data[:1] * 0.5, ids=["extra"])
    store.save(str(path))
    assert sorted(os.listdir(path.parent)) == [path.name]
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "sage-vdb-faiss" and manifest["version"] == 1 and manifest["live"] == 601


def test_failed_save_keeps_the_previous_file(saved, monkeypatch):
    path, store = saved
    before = path.read_bytes()

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        store.save(str(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == [path.name]


def test_truncated_file_is_a_value_error_and_store_is_unchanged(saved, make_vdb, data):
    path, _ = saved
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    store = make_vdb(16)
    store.add(data[:3], ids=["a", "b", "c"])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        store.load(str(path))
    assert store.count() == 3 and store.search(data[1], top_k=1)[0].id == "b"


def test_flipped_bytes_inside_the_vectors_are_a_value_error(saved, make_vdb):
    path, _ = saved
    raw = bytearray(path.read_bytes())
    offset = raw.find(b"\x93NUMPY") + 4096
    raw[offset : offset + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt"):
        make_vdb(16).load(str(path))


def _rewrite_manifest(path, **changes):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest.update(changes)
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def test_unknown_format_version_is_a_value_error(saved, make_vdb):
    path, _ = saved
    _rewrite_manifest(path, version=99)
    with pytest.raises(ValueError, match="format version 99"):
        make_vdb(16).load(str(path))


def test_manifest_disagreeing_with_contents_is_a_value_error(saved, make_vdb):
    path, _ = saved
    _rewrite_manifest(path, rows=601)
    with pytest.raises(ValueError, match="inconsistent"):
        make_vdb(16).load(str(path))


def test_dimension_mismatch_is_a_value_error(saved, make_vdb):
    path, _ = saved
    with pytest.raises(ValueError, match="holds dimension 16, this store has dimension 32"):
        make_vdb(32).load(str(path))


def test_metric_mismatch_is_a_value_error(saved, make_vdb):
    path, _ = saved
    with pytest.raises(ValueError, match="metric 'cosine'"):
        make_vdb(16, metric="l2").load(str(path))


def test_other_zip_files_and_missing_files_are_refused_clearly(make_vdb, tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a sage-vdb-faiss file"):
        make_vdb(16).load(str(other))
    with pytest.raises(FileNotFoundError):
        make_vdb(16).load(str(tmp_path / "absent.zip"))


def test_empty_store_without_dimension_round_trips(make_vdb, tmp_path, data):
    path = str(tmp_path / "empty.zip")
    make_vdb(None).save(path)
    store = make_vdb(None)
    store.load(path)
    assert store.count() == 0 and store.dim is None
    store.add(data[:2])
    assert store.dim == 16


def test_loaded_file_adopts_the_saved_index_type(saved, make_vdb):
    path, _ = saved
    store = make_vdb(16, index="HNSW32")
    store.load(str(path))
    assert store.stats()["index"] == "Flat"
