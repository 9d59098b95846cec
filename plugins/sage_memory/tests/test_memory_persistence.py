"""Persistence: one manifest over the three stores, a journal, and writers killed mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from sage_memory import MemoryService

WRITER = str(Path(__file__).with_name("memory_writer.py"))


class Writer:
    """A ``memory_writer.py`` process and the writes it acknowledged."""

    def __init__(self, directory: Path, mode: str, seed: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, WRITER, str(directory), mode, str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.acks: list[dict] = []

    def read_until(self, done) -> dict:
        """Read acknowledgements until ``done(line)`` holds; returns that line."""
        for raw in self.process.stdout:
            line = json.loads(raw)
            if "ack" in line or "op" in line:
                self.acks.append(line)
            if done(line):
                return line
        msg = f"writer exited early (rc={self.process.wait()}): {self.process.stderr.read()[-2000:]}"
        raise AssertionError(msg)

    def kill(self) -> None:
        """SIGKILL: no cleanup code runs in the writer."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    """Writers started by a test; any still running at the end are killed."""
    started: list[Writer] = []
    yield started
    for writer in started:
        if writer.process.poll() is None:
            writer.kill()


def expected_state(acks: list[dict]) -> tuple[dict[str, str], set[str], set[tuple[str, str]]]:
    """From acknowledged writes: live id -> content, deleted ids, links between live memories."""
    live: dict[str, str] = {}
    deleted: set[str] = set()
    links: set[tuple[str, str]] = set()
    for line in acks:
        op = line.get("op")
        if op == "store":
            live[line["id"]] = line["content"]
        elif op == "update":
            live[line["id"]] = line["content"]
        elif op == "delete":
            live.pop(line["id"], None)
            deleted.add(line["id"])
        elif op == "link":
            links.add((line["a"], line["b"]))
    return live, deleted, {(a, b) for a, b in links if a in live and b in live}


def test_save_and_reopen_restores_all_three_stores(tmp_path: Path, unit, assert_stores_agree) -> None:
    with MemoryService(path=tmp_path) as memory:
        a = memory.store_memory("first", vector=unit(0), session_id="s", metadata={"n": 1})
        b = memory.store_memory("second", vector=unit(1), session_id="s", memory_type="fact")
        memory.link(a, b, "next")
        memory.save()
        c = memory.store_memory("after the checkpoint", vector=unit(2), session_id="t")

    assert (tmp_path / "manifest.json").exists()
    with MemoryService(path=tmp_path) as reopened:
        assert assert_stores_agree(reopened) == {a, b, c}
        assert reopened.get(a)["metadata"] == {"n": 1}
        assert reopened.get(b)["memory_type"] == "fact"
        assert reopened.neighbors(a) == [b]
        assert reopened.list_sessions() == ["s", "t"]
        assert reopened.retrieve_memories(vector=unit(1), session_id="s", top_k=1)[0]["id"] == b


def test_writes_after_the_last_checkpoint_come_back_from_the_journal(tmp_path: Path, unit) -> None:
    memory = MemoryService(path=tmp_path)
    kept = memory.store_memory("journaled only", vector=unit(0))
    memory.delete(memory.store_memory("journaled then deleted", vector=unit(1)))
    # no save() and no close(): only the journal holds these writes
    memory.stores.close()

    with MemoryService(path=tmp_path) as reopened:
        assert reopened.count() == 1
        assert reopened.get(kept)["content"] == "journaled only"


def test_checkpoint_leaves_one_generation_and_an_empty_journal(tmp_path: Path) -> None:
    with MemoryService(path=tmp_path) as memory:
        for i in range(3):
            memory.store_memory(f"m{i}")
            memory.save()
        manifest = json.loads((tmp_path / "manifest.json").read_text())

    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if n.startswith("gen-")] == [f"gen-{manifest['generation'] + 1:06d}"]
    assert [n for n in names if n.startswith("journal-")] == [f"journal-{manifest['generation'] + 1:06d}.jsonl"]
    assert os.path.getsize(tmp_path / f"journal-{manifest['generation'] + 1:06d}.jsonl") == 0


def test_a_torn_last_journal_line_is_dropped_and_writing_continues(tmp_path: Path) -> None:
    memory = MemoryService(path=tmp_path)
    kept = memory.store_memory("complete")
    memory.stores.close()
    journal = next(tmp_path.glob("journal-*.jsonl"))
    with open(journal, "ab") as handle:
        handle.write(b'0badc0de {"op": "store", "records": [')  # a write cut short by a crash

    with MemoryService(path=tmp_path) as reopened:
        assert reopened.count() == 1 and reopened.get(kept) is not None
        later = reopened.store_memory("after recovery")
    with MemoryService(path=tmp_path) as again:
        assert again.get(later)["content"] == "after recovery"


def test_a_damaged_snapshot_file_is_reported_not_loaded(tmp_path: Path) -> None:
    with MemoryService(path=tmp_path) as memory:
        memory.store_memory("precious")
    snapshot = next(p for p in tmp_path.glob("gen-*/*") if p.is_file())
    snapshot.write_bytes(snapshot.read_bytes()[:-7] + b"garbage")

    with pytest.raises(ValueError, match="missing or damaged"):
        MemoryService(path=tmp_path)


def test_reopening_with_a_different_backend_is_refused(tmp_path: Path) -> None:
    with MemoryService(path=tmp_path) as memory:
        memory.store_memory("saved with the default KV")

    with pytest.raises(ValueError, match="was saved with kv backend 'sqlite'"):
        MemoryService(path=tmp_path, kv={"backend": "memory"})


def test_writer_killed_between_kv_and_vector_writes_reloads_consistent(tmp_path: Path, writers, assert_stores_agree) -> None:
    writer = Writer(tmp_path, "pause-in-write")
    writers.append(writer)
    writer.read_until(lambda line: "paused" in line)
    writer.kill()

    live, _, _ = expected_state(writer.acks)
    with MemoryService(path=tmp_path) as reopened:
        ids = assert_stores_agree(reopened)
        contents = {reopened.get(i)["content"] for i in ids}
    assert set(live) <= ids
    assert contents == {f"acknowledged {i}" for i in range(5)} | {"in flight"}  # journaled first, so replayed


def test_writer_killed_between_store_snapshots_reloads_the_previous_manifest(tmp_path: Path, writers, assert_stores_agree) -> None:
    writer = Writer(tmp_path, "pause-in-checkpoint")
    writers.append(writer)
    writer.read_until(lambda line: "paused" in line)
    assert len(list(tmp_path.glob("gen-*/*"))) >= 1  # the KV snapshot of the unfinished generation
    writer.kill()

    live, _, _ = expected_state(writer.acks)
    with MemoryService(path=tmp_path) as reopened:
        assert assert_stores_agree(reopened) == set(live)
    assert len(list(tmp_path.glob("gen-*"))) == 1  # the unfinished generation was removed, a new one written


@pytest.mark.parametrize("seed", [1, 2])
def test_writer_killed_repeatedly_at_random_points_loses_no_acknowledged_write(
    tmp_path: Path, writers, assert_stores_agree, seed: int
) -> None:
    acks: list[dict] = []
    for round_number, stop_after in enumerate((150, 90, 240)):
        writer = Writer(tmp_path, "churn", seed=seed * 10 + round_number)
        writers.append(writer)
        writer.read_until(lambda line: line.get("op") == "opened")
        writer.read_until(lambda line, n=len(writer.acks) + stop_after: len(writer.acks) >= n)
        writer.kill()
        acks.extend(a for a in writer.acks if a.get("op") != "opened")

        live, deleted, links = expected_state(acks)
        with MemoryService(path=tmp_path) as reopened:
            ids = assert_stores_agree(reopened)
            assert set(live) <= ids, f"round {round_number}: acknowledged memories lost"
            assert not ids & deleted, f"round {round_number}: acknowledged deletes undone"
            for memory_id, content in live.items():
                assert reopened.get(memory_id)["content"] == content
            for a, b in links:
                assert b in reopened.neighbors(a)
