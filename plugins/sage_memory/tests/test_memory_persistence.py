"""Persistence: one manifest over the three stores, a journal, and writers killed mid-way."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from sage_memory import MemoryService

WRITER = str(Path(__file__).with_name("memory_writer.py"))


class Writer:
    """A ``memory_writer.py`` process, the writes it acknowledged and the one it had in flight."""

    def __init__(self, directory: Path, mode: str, seed: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, WRITER, str(directory), mode, str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.acked: list[dict] = []
        self.in_flight: dict | None = None
        self.paused: str | None = None

    def read_until(self, done: Callable[["Writer"], bool]) -> None:
        """Read the writer's reports until ``done(self)`` holds."""
        for raw in self.process.stdout:
            self._take(json.loads(raw))
            if done(self):
                return
        msg = f"writer exited early (rc={self.process.wait()}): {self.process.stderr.read()[-2000:]}"
        raise AssertionError(msg)

    def kill(self) -> None:
        """SIGKILL (no cleanup code runs in the writer), then read what it reported before dying."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        for raw in self.process.stdout:
            self._take(json.loads(raw))
        self.process.stdout.close()
        self.process.stderr.close()

    def _take(self, line: dict) -> None:
        if "intent" in line:
            self.in_flight = line["intent"]
        elif "ack" in line:
            if line["ack"]["op"] != "opened":
                self.acked.append(line["ack"])
            self.in_flight = None
        elif "paused" in line:
            self.paused = line["paused"]


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    """Writers started by a test; any still running at the end are killed."""
    started: list[Writer] = []
    yield started
    for writer in started:
        if writer.process.poll() is None:
            writer.kill()


def replay(ops: list[dict]) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """What acknowledged writes leave behind: memory id -> content, and links between live memories."""
    contents: dict[str, str] = {}
    links: set[tuple[str, str]] = set()
    for op in ops:
        if op["op"] == "store":
            contents.update(zip(op["ids"], op["contents"]))
        elif op["op"] == "update":
            contents[op["id"]] = op["content"]
        elif op["op"] == "delete":
            contents.pop(op["id"], None)
        elif op["op"] == "link":
            links.add((op["a"], op["b"]))
    return contents, {(a, b) for a, b in links if a in contents and b in contents}


def assert_reloaded_state(memory: MemoryService, acked: list[dict], in_flight: dict | None, ids: set[str]) -> None:
    """The reloaded memory holds exactly the acknowledged writes, plus all or nothing of the one in flight."""
    actual = {memory_id: memory.get(memory_id)["content"] for memory_id in ids}
    expected, links = replay(acked)
    if in_flight is not None and in_flight["op"] == "store":
        extra = {memory_id: actual.pop(memory_id) for memory_id in set(actual) - set(expected)}
        assert sorted(extra.values()) in ([], sorted(in_flight["contents"])), "a batch store was half applied"
        assert actual == expected
    else:
        done = replay(acked + [in_flight])[0] if in_flight else expected
        assert actual in (expected, done), "acknowledged writes lost, or the write in flight half applied"
    for a, b in links:
        assert b in memory.neighbors(a), f"acknowledged link {a} -> {b} lost"


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
    del memory  # as if the process had died: its directory lock goes with it
    gc.collect()

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
    del memory
    gc.collect()
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


def test_a_directory_in_use_by_another_memory_is_refused(tmp_path: Path) -> None:
    with MemoryService(path=tmp_path):
        with pytest.raises(RuntimeError, match="in use by another MemoryService"):
            MemoryService(path=tmp_path)
    with MemoryService(path=tmp_path) as after_close:
        assert after_close.count() == 0


def test_reopening_with_a_different_backend_is_refused(tmp_path: Path) -> None:
    with MemoryService(path=tmp_path) as memory:
        memory.store_memory("saved with the default KV")

    with pytest.raises(ValueError, match="was saved with kv backend 'sqlite'"):
        MemoryService(path=tmp_path, kv={"backend": "memory"})


def test_writer_killed_between_kv_and_vector_writes_reloads_consistent(tmp_path: Path, writers, assert_stores_agree) -> None:
    writer = Writer(tmp_path, "pause-in-write")
    writers.append(writer)
    writer.read_until(lambda w: w.paused is not None)
    writer.kill()

    assert writer.in_flight == {"op": "store", "contents": ["in flight"], "session": "s0"}
    with MemoryService(path=tmp_path) as reopened:
        ids = assert_stores_agree(reopened)
        assert_reloaded_state(reopened, writer.acked, writer.in_flight, ids)
        contents = {reopened.get(i)["content"] for i in ids}
    assert contents == {f"acknowledged {i}" for i in range(5)} | {"in flight"}  # journaled first, so replayed


def test_writer_killed_between_store_snapshots_reloads_the_previous_manifest(tmp_path: Path, writers, assert_stores_agree) -> None:
    writer = Writer(tmp_path, "pause-in-checkpoint")
    writers.append(writer)
    writer.read_until(lambda w: w.paused is not None)
    assert len(list(tmp_path.glob("gen-*/*"))) >= 1  # the KV snapshot of the unfinished generation
    writer.kill()

    with MemoryService(path=tmp_path) as reopened:
        ids = assert_stores_agree(reopened)
        assert_reloaded_state(reopened, writer.acked, writer.in_flight, ids)
        assert len(ids) == 20
    assert len(list(tmp_path.glob("gen-*"))) == 1  # the unfinished generation was removed, a new one written


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_writer_killed_repeatedly_at_random_points_keeps_exactly_the_acknowledged_writes(
    tmp_path: Path, writers, assert_stores_agree, seed: int
) -> None:
    acked: list[dict] = []
    for round_number, stop_after in enumerate((150, 90, 240)):
        writer = Writer(tmp_path, "churn", seed=seed * 10 + round_number)
        writers.append(writer)
        writer.read_until(lambda w, n=stop_after: len(w.acked) >= n)
        writer.kill()
        acked.extend(writer.acked)

        with MemoryService(path=tmp_path) as reopened:
            ids = assert_stores_agree(reopened)
            assert_reloaded_state(reopened, acked, writer.in_flight, ids)
            if writer.in_flight is not None:  # settle the in-flight write for the next round's expectations
                acked.extend(_settled(writer.in_flight, reopened, ids, acked))


def _settled(in_flight: dict, memory: MemoryService, ids: set[str], acked: list[dict]) -> list[dict]:
    """The in-flight write as an acknowledged one when the reloaded memory shows it applied, else nothing."""
    op = in_flight["op"]
    if op == "store":
        extra = sorted(ids - set(replay(acked)[0]))
        return [{**in_flight, "ids": extra, "contents": [memory.get(i)["content"] for i in extra]}] if extra else []
    applied = {
        "delete": lambda: in_flight["id"] not in ids,
        "update": lambda: in_flight["id"] in ids and memory.get(in_flight["id"])["content"] == in_flight["content"],
        "link": lambda: in_flight["b"] in memory.neighbors(in_flight["a"]),
        "checkpoint": lambda: False,
    }[op]()
    return [in_flight] if applied else []
