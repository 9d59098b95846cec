"""The contracts that service backends implement, one Protocol per service kind.

A config entry ``{kind: vdb, backend: faiss}`` picks a backend; the flow only ever sees the
contract, so backends swap without code changes. Conventions shared by every contract:

* Ids are strings. Vectors are ``float32`` numpy arrays; a method taking ``vectors``/``query``
  accepts one vector (1-D) or a batch (2-D).
* Methods marked :func:`sage_core.plugin.batchable` receive concurrent callers' requests stacked into one
  call and return one result per input row.
* Methods may be ``async def`` (and streaming methods async generators): the service layer runs
  them on the replica's event loop, so thousands can be in flight without a thread each.
* Bad input raises ``ValueError`` with a message that says what was wrong; the service stays alive.
* ``close()`` releases resources (GPU memory, files); the service layer calls it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator, Mapping, Protocol, Sequence, Union, runtime_checkable

import numpy as np

MetadataFilter = Mapping[str, Any]
"""Equality filter on metadata: ``{"source": "a.txt"}``; a list value means "one of"."""


@dataclass(frozen=True)
class Hit:
    """One search result: the id, a similarity score (higher is closer) and the stored metadata.

    For the ``l2`` metric the score is the negated squared distance, so ordering is the same for
    every metric.
    """

    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """The result of one generation: the text, its token ids and why it stopped."""

    text: str
    token_ids: tuple[int, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int = 0


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings passed through to the LLM backend."""

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False


SamplingLike = Union[SamplingParams, Mapping[str, Any], None]
"""A :class:`SamplingParams`, a dict of its fields, or ``None`` for the defaults."""


@runtime_checkable
class VectorStore(Protocol):
    """Vector search over ids, vectors and metadata (kind ``vdb``)."""

    dim: int | None
    """Vector dimension; ``None`` until the first vectors arrive when not configured."""

    def add(
        self,
        vectors: np.ndarray,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Insert vectors (new ids generated when ``ids`` is None); an existing id is an error."""

    def upsert(
        self,
        vectors: np.ndarray,
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Insert or replace vectors by id."""

    def search(
        self, query: np.ndarray, top_k: int = 10, filter: MetadataFilter | None = None
    ) -> Sequence[Hit] | Sequence[Sequence[Hit]]:
        """Nearest neighbours: the hits of one query (1-D), a sequence of them per row for a batch (2-D).

        Batchable on ``query``. ``top_k`` above the number of (matching) vectors returns them all.
        The built-in stores return :class:`sage_core.plugin.Hits` / :class:`sage_core.plugin.HitBatch`, which read
        as ``list[Hit]`` / ``list[list[Hit]]`` (and compare equal to them) but make no ``Hit``
        object until one is read; a plain list of :class:`Hit` fulfils the contract too.
        """

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """``{"id", "vector", "metadata"}`` per id, ``None`` for an unknown id."""

    def delete(self, ids: Sequence[str]) -> int:
        """Remove ids; returns how many existed."""

    def count(self) -> int:
        """Number of stored vectors."""

    def save(self, path: str) -> None:
        """Persist everything to ``path`` atomically."""

    def load(self, path: str) -> None:
        """Replace the contents with what :meth:`save` wrote; a corrupt file raises ``ValueError``."""

    def close(self) -> None:
        """Release resources."""


@runtime_checkable
class Embedder(Protocol):
    """Texts to vectors (kind ``embedding``)."""

    dim: int
    """Output dimension."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A ``float32`` matrix with one row per text (L2-normalised). Batchable on ``texts``."""

    def close(self) -> None:
        """Release resources."""


def embed_texts(texts: Any) -> tuple[bool, list[str]]:
    """An :meth:`Embedder.embed` argument checked: whether it was one ``str``, and the texts as a list.

    A non-string item is a ``ValueError`` naming its position.
    """
    single = isinstance(texts, str)
    items = [texts] if single else list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            msg = f"embed: texts must be strings, item {position} is {type(text).__name__}"
            raise ValueError(msg)
    return single, items


Message = Mapping[str, str]
"""A chat message: ``{"role": "user", "content": "..."}``."""


@runtime_checkable
class LLM(Protocol):
    """Text generation (kind ``llm``). Methods may be ``async``; ``stream`` may be an async generator."""

    def generate(self, prompts: str | Sequence[str], sampling: SamplingLike = None) -> Completion | list[Completion]:
        """Complete one prompt (returns a Completion) or several (returns a list, in order)."""

    def chat(self, messages: Sequence[Message], sampling: SamplingLike = None) -> Completion:
        """Answer a conversation, using the model's chat template when it has one."""

    def stream(self, prompt: str, sampling: SamplingLike = None) -> Iterator[str] | AsyncIterator[str]:
        """Yield the text of one completion piece by piece as tokens are produced."""

    def close(self) -> None:
        """Release resources."""


@runtime_checkable
class KVStore(Protocol):
    """Key-value storage of JSON-serialisable values (kind ``kv``)."""

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` (replacing any previous value)."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it existed."""

    def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""

    def count(self) -> int:
        """Number of keys."""

    def save(self, path: str) -> None:
        """Persist to ``path`` atomically."""

    def load(self, path: str) -> None:
        """Replace the contents with what :meth:`save` wrote."""

    def close(self) -> None:
        """Release resources."""


@runtime_checkable
class GraphStore(Protocol):
    """A directed graph of string node ids with labelled edges (kind ``graph``)."""

    def add_node(self, node: str, **attrs: Any) -> None:
        """Add a node or update its attributes."""

    def add_edge(self, source: str, target: str, relation: str = "related") -> None:
        """Add an edge (both nodes are created when missing)."""

    def neighbors(self, node: str, hops: int = 1, relation: str | None = None) -> list[str]:
        """Nodes within ``hops`` edges, either direction, nearest first; the node itself excluded."""

    def remove_node(self, node: str) -> bool:
        """Remove a node and its edges; returns whether it existed."""

    def has_node(self, node: str) -> bool:
        """Whether the node exists."""

    def count(self) -> int:
        """Number of nodes."""

    def save(self, path: str) -> None:
        """Persist to ``path`` atomically."""

    def load(self, path: str) -> None:
        """Replace the contents with what :meth:`save` wrote."""

    def close(self) -> None:
        """Release resources."""


@runtime_checkable
class Memory(Protocol):
    """Long-term memory over KV, vector and graph stores (kind ``memory``); see the memory plugin."""

    def store_memory(
        self,
        content: str,
        vector: np.ndarray | None = None,
        session_id: str = "default",
        memory_type: str = "conversation",
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Store one memory and return its id (embedding ``content`` when no vector is given)."""

    def retrieve_memories(
        self,
        query: str | None = None,
        vector: np.ndarray | None = None,
        session_id: str = "default",
        top_k: int = 5,
        memory_type: str | None = None,
        time_range: tuple[float, float] | None = None,
        hops: int = 0,
    ) -> list[dict[str, Any]]:
        """Best memories of one session: dicts with id, score, content, metadata, created_at, updated_at."""

    def get(self, memory_id: str) -> dict[str, Any] | None:
        """One memory, or ``None``."""

    def update(self, memory_id: str, content: str | None = None, metadata: Mapping[str, Any] | None = None) -> bool:
        """Change a memory's content (re-embedded) and/or metadata; returns whether it existed."""

    def delete(self, memory_id: str) -> bool:
        """Remove a memory from every store; returns whether it existed."""

    def link(self, a: str, b: str, relation: str = "related") -> None:
        """Relate two memories of the same session."""

    def neighbors(self, memory_id: str, hops: int = 1) -> list[str]:
        """Ids of memories linked to ``memory_id`` within ``hops``."""

    def list_sessions(self) -> list[str]:
        """Every session id with at least one memory."""

    def clear_session(self, session_id: str) -> int:
        """Delete a session's memories; returns how many."""

    def close(self) -> None:
        """Release resources."""


__all__ = [
    "Completion",
    "Embedder",
    "embed_texts",
    "GraphStore",
    "Hit",
    "KVStore",
    "LLM",
    "Memory",
    "Message",
    "MetadataFilter",
    "SamplingLike",
    "SamplingParams",
    "VectorStore",
]
