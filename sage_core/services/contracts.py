"""The contracts that service backends implement, one Protocol per service kind.

A config entry ``{kind: vdb, backend: faiss}`` picks a backend; the flow only ever sees the
contract, so backends swap without code changes. Each contract has a suite in
:mod:`sage_core.testing` that checks what its docstrings promise. Conventions shared by every contract:

* **Ids** (vector ids, keys, node ids, memory ids) are ``str``; any other type is a ``ValueError``.
  An unknown id is answered (``None``, ``False``, ``0``, ``[]``), not raised, unless a method
  says otherwise.
* **Vectors** are numpy arrays of real numbers, stored as ``float32``: a method taking
  ``vectors``/``query`` accepts one vector (1-D) or a batch (2-D, one row per vector). Other real
  dtypes are cast to ``float32`` or refused with ``ValueError``; NaN, infinity, a non-numeric dtype
  or a wrong dimension is a ``ValueError`` for the whole call (nothing of it is stored).
* **Bad input** raises ``ValueError`` saying what was wrong, before anything changes; the backend
  keeps working (the service layer hands the error to that caller only).
* **Threads.** The service layer calls one backend object from several threads at once: its
  ``workers`` threads (4 by default) run sync methods, and each :func:`~sage_core.plugin.batchable`
  method has batching threads of its own, so reads and writes overlap even with ``workers: 1``.
  Every method must be thread-safe: no lost write, no torn read (an answer shows a write whole or
  not at all), no exception. Guard shared state with a lock (:class:`~sage_core.plugin.ReadWriteLock`
  lets reads overlap). The store suites run eight threads writing and reading at once.
* **Batching.** A method marked :func:`~sage_core.plugin.batchable` on an argument receives
  concurrent callers' values stacked along the first axis (arrays) or concatenated (lists) in one
  call and must return one result per input row, in order; the service layer splits them back. A
  stacked call that raises is retried in halves, so a batchable method must be safe to call again
  with part of its input. Which methods the built-in backends mark is said per method below.
* **Async.** Methods may be ``async def`` (streaming methods async generators): the service layer
  runs them on the replica's event loop, so thousands can be in flight without a thread each.
* **Writes** (the kind's ``write_methods``) reach every replica and every fallback backend, so a
  write must give the same result on every copy that receives the same arguments.
* **Persistence.** ``save(path)`` writes a snapshot atomically: a reader of ``path`` finds the
  previous snapshot or the new one whole, even if the process dies at any point of the save
  (write a temporary file in the same folder, fsync, rename it over ``path``). ``load(path)``
  replaces the whole contents with the snapshot; a corrupt or truncated file is a ``ValueError``
  that leaves the contents as they were. On a sharded ``vdb`` or ``kv`` service each shard saves
  to and loads from its own file, ``PATH.shardI-of-N``.
* ``close()`` releases resources (GPU memory, files). The service layer calls it once, after
  waiting for the calls in flight, and calls nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator, Mapping, Protocol, Sequence, Union, runtime_checkable

import numpy as np

MetadataFilter = Mapping[str, Any]
"""The vector-store filter: ``{"source": "a.txt", "lang": ["en", "fr"]}``.

An item matches when, for every key of the filter (keys are ANDed), its metadata has the key and
the stored value equals the filter's value (Python ``==``, so ``1`` matches ``1.0``) or, for a
list value, one of the list's items (an empty list matches nothing). An item without the key never
matches, not even a filter value of ``None``. An empty filter (``{}``) or ``None`` is no filter;
a filter that is not a mapping (a string such as ``"colour=red"``) is a ``ValueError``. Filters are exact, also for an approximate index:
every matching item can be found and no other is returned. The built-in stores share one
implementation, :class:`sage_core.plugin.MetadataIndex`.
"""


@dataclass(frozen=True)
class Hit:
    """One search result: the id, a similarity score (higher is closer) and the stored metadata.

    The score is on the metric's own scale, so scores from different stores of one metric compare
    (a sharded search merges its shards' hits by score): ``cosine`` gives the cosine similarity
    (-1 to 1), ``ip`` the inner product, ``l2`` the negated squared Euclidean distance (0 for the
    query itself, below 0 for anything else). ``metadata`` is a copy of what is stored.
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
    """Vector search over string ids, ``float32`` vectors and metadata dicts (kind ``vdb``).

    Writes are ``add``, ``upsert``, ``delete`` and ``load``. Metadata is a JSON-like dict per
    vector, copied on the way in and out (changing the caller's dict, or a dict that ``get`` or
    ``search`` returned, never changes the store). Checked by
    :class:`sage_core.testing.VectorStoreContract`, at 5,000 vectors against brute force.
    """

    dim: int | None
    """Vector dimension: the ``dim`` option, or learnt from the first vectors added (``None`` until
    then). Vectors or queries of another dimension are a ``ValueError``."""

    def add(
        self,
        vectors: np.ndarray,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Insert one row per vector; returns the ids in row order.

        ``ids``: one unique ``str`` per row, or ``None`` for fresh unique ids (on a service with
        several copies of its data, replicas, shards or fallbacks, the service layer assigns them
        before the call, so every copy stores the same ones).
        ``metadata``: one dict (or ``None``, stored as ``{}``) per row. An id already stored, an id
        repeated in the call, or a count of ids or metadata other than the rows is a ``ValueError``
        and nothing is added; use :meth:`upsert` to replace. A deleted id may be added again.
        """

    def upsert(
        self,
        vectors: np.ndarray,
        ids: Sequence[str],
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Insert new ids and replace stored ones: vector and metadata together (``None`` stores
        ``{}``), so no reader sees the new vector with the old metadata or the reverse.

        Returns ``ids``. Search, ``get`` and filters see only the new vector and metadata afterwards.
        """

    def search(
        self, query: np.ndarray, top_k: int = 10, filter: MetadataFilter | None = None
    ) -> Sequence[Hit] | Sequence[Sequence[Hit]]:
        """The ``top_k`` stored vectors closest to ``query``: a list of :class:`Hit` for one query
        (1-D), one such list per row for a batch (2-D; a batch of zero rows gives ``[]``).

        Each list comes best first: scores never increase along it, on the scale :class:`Hit`
        states. ``top_k`` must be an int >= 1 (else ``ValueError``); above the number of stored (or
        matching) vectors it returns them all, and an empty store returns ``[]``. ``filter``
        (:data:`MetadataFilter`) limits the hits to matching items, exactly. A deleted id is never
        returned. An exact store returns the true top ``k``; an approximate one (declare
        ``exact = False`` and your ``min_recall`` in the kit) must reach that recall@10 and still
        return every stored vector among the top 10 of a search for itself.

        Batchable on ``query``: the built-in stores mark it ``@batchable(arg="query")``, so
        concurrent single-vector searches become one 2-D search (a batchable search must answer a
        2-D query row by row). They return :class:`sage_core.plugin.Hits` /
        :class:`sage_core.plugin.HitBatch`, which read as ``list[Hit]`` / ``list[list[Hit]]``
        (and compare equal to them) without making a ``Hit`` until one is read; a plain list of
        :class:`Hit` fulfils the contract too.
        """

    def get(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """``{"id", "vector", "metadata"}`` per id, in the order asked, ``None`` for an unknown id.

        ``vector`` is the stored ``float32`` vector as added (not normalised), a copy.
        """

    def delete(self, ids: Sequence[str]) -> int:
        """Remove ids from search, ``get``, filters and ``count``; returns how many were stored
        (unknown ids are skipped)."""

    def count(self) -> int:
        """Number of stored vectors."""

    def save(self, path: str) -> None:
        """Write every vector, id and metadata dict to the file ``path`` atomically: a crash at
        any point of the save leaves the previous snapshot at ``path`` loadable."""

    def load(self, path: str) -> None:
        """Replace the whole contents with what :meth:`save` wrote (items stored before and not
        in the file are gone); searches answer as they did on the saved store. A corrupt or
        truncated file is a ``ValueError`` and the store keeps its contents."""

    def close(self) -> None:
        """Release resources (the built-in store saves to its ``path`` option first, if set)."""


@runtime_checkable
class Embedder(Protocol):
    """Texts to vectors (kind ``embedding``); stateless, so ``replicas`` share load and it does not
    shard. Checked by :class:`sage_core.testing.EmbedderContract`."""

    dim: int
    """Output dimension, a positive int."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A ``float32`` matrix of shape ``(len(texts), dim)``, row ``i`` for ``texts[i]``, each row
        L2-normalised (so the inner product of two rows is their cosine similarity).

        The same text gives the same vector (within the suite's ``atol``) alone, in a small batch
        or in a batch of 5,000, whatever it is batched with. An empty list gives ``(0, dim)``; a
        non-string item is a ``ValueError`` (check with :func:`embed_texts`, which also accepts one
        ``str``: the built-in embedders then return one 1-D vector). Batchable on ``texts``: the
        built-in embedders mark it ``@batchable(arg="texts")``.
        """

    def close(self) -> None:
        """Release resources (model weights, GPU memory)."""


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
    """Text generation (kind ``llm``); stateless, so ``replicas`` share load and it does not shard.

    Methods may be ``async`` and ``stream`` an async generator (an engine that batches internally,
    such as vLLM's, then sees every concurrent request at once; none is ``@batchable``). Checked,
    lightly, by :class:`sage_core.testing.LLMContract`.
    """

    def generate(self, prompts: str | Sequence[str], sampling: SamplingLike = None) -> Completion | list[Completion]:
        """Complete one prompt (returns a :class:`Completion`) or a list (returns a list, in order).

        ``sampling`` is a :class:`SamplingParams`, a dict of its fields or ``None`` (defaults); an
        unknown field is a ``ValueError``. Concurrent callers each get their own prompt's completion.
        """

    def chat(self, messages: Sequence[Message], sampling: SamplingLike = None) -> Completion:
        """Answer a conversation (:data:`Message` dicts, oldest first), using the model's chat
        template when it has one."""

    def stream(self, prompt: str, sampling: SamplingLike = None) -> Iterator[str] | AsyncIterator[str]:
        """Yield the text of one completion piece by piece (``str`` pieces) as tokens are produced."""

    def close(self) -> None:
        """Release resources (the engine, GPU memory)."""


@runtime_checkable
class KVStore(Protocol):
    """Key-value storage of JSON values under ``str`` keys (kind ``kv``).

    Writes are ``put``, ``delete`` and ``load`` (the built-in stores add ``put_many(items)``: all
    items stored, or none when one is invalid). Nothing is batchable. A non-``str`` key is a
    ``ValueError`` for ``put``, ``get`` and ``delete``. Checked by :class:`sage_core.testing.KVStoreContract`, at
    5,000 keys against a dict.
    """

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``, replacing any previous value.

        ``value`` is JSON: ``dict`` (``str`` keys), ``list``, ``str``, ``int``, ``float``, ``bool``
        or ``None``, nested. Anything else (a set, bytes, an object, NaN or infinity, at any
        depth) is a ``ValueError`` and the previous value stays. The value is copied: changing the
        caller's object afterwards does not change the store.
        """

    def get(self, key: str, default: Any = None) -> Any:
        """A copy of the value under ``key`` (each JSON type as it was put: ``1`` stays an ``int``,
        ``1.0`` a ``float``), or ``default`` when the key is not stored."""

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it existed."""

    def keys(self, prefix: str = "") -> list[str]:
        """Keys that start with ``prefix``, taken literally (``%`` and ``_`` are not wildcards),
        sorted by code point as Python's ``sorted`` does; ``""`` lists every key."""

    def count(self) -> int:
        """Number of keys."""

    def save(self, path: str) -> None:
        """Write every key and value to the file ``path`` atomically: a crash at any point of the
        save leaves the previous snapshot at ``path`` loadable."""

    def load(self, path: str) -> None:
        """Replace the whole contents with what :meth:`save` wrote (keys not in the file are gone).
        A corrupt or truncated file is a ``ValueError`` and the store keeps its contents."""

    def close(self) -> None:
        """Release resources (the built-in ``memory`` store saves to its ``path`` option first, if set)."""


@runtime_checkable
class GraphStore(Protocol):
    """A directed graph of ``str`` node ids with edges labelled by a ``str`` relation (kind ``graph``).

    Writes are ``add_node``, ``add_edge``, ``remove_node`` and ``load``. A non-``str`` node id or
    relation is a ``ValueError``. Nothing is batchable, and the kind does not shard (an edge may
    join two shards). Checked by :class:`sage_core.testing.GraphStoreContract`, on a random graph
    of 5,000 nodes against a breadth-first search.
    """

    def add_node(self, node: str, **attrs: Any) -> None:
        """Add a node, or update the attributes of an existing one."""

    def add_edge(self, source: str, target: str, relation: str = "related") -> None:
        """Add an edge ``source -> target`` labelled ``relation``, creating missing nodes.

        Adding the same ``(source, target, relation)`` again changes nothing; another relation
        between the same nodes is another edge.
        """

    def neighbors(self, node: str, hops: int = 1, relation: str | None = None) -> list[str]:
        """Nodes within ``hops`` edges of ``node``, following edges in either direction.

        Nearest first (every node at distance 1, then 2, ...; the built-in store sorts the nodes
        of one distance), each node once, ``node`` itself excluded. ``relation`` follows only edges
        with that label (in both directions). ``hops`` is an int >= 0 (0 gives ``[]``); anything
        else is a ``ValueError``. An unknown node gives ``[]``.
        """

    def remove_node(self, node: str) -> bool:
        """Remove a node and every edge touching it; returns whether it existed. A node added
        again later starts with no edges."""

    def has_node(self, node: str) -> bool:
        """Whether the node exists."""

    def count(self) -> int:
        """Number of nodes."""

    def save(self, path: str) -> None:
        """Write every node (with its attributes) and edge to the file ``path`` atomically: a
        crash at any point of the save leaves the previous snapshot at ``path`` loadable."""

    def load(self, path: str) -> None:
        """Replace the whole graph with what :meth:`save` wrote (nodes not in the file are gone).
        A corrupt or truncated file is a ``ValueError`` and the graph stays as it was."""

    def close(self) -> None:
        """Release resources (the built-in store saves to its ``path`` option first, if set)."""


@runtime_checkable
class Memory(Protocol):
    """Long-term memory over KV, vector and graph stores (kind ``memory``); see the memory plugin.

    Memories belong to one session each and never show in another session's answers. A memory
    is a dict with ``id``, ``content``, ``metadata``, ``created_at`` and ``updated_at`` (Unix
    seconds; a later memory has a later ``created_at``). Writes are ``store_memory``, ``update``,
    ``delete``, ``link`` and ``clear_session``; nothing is batchable and the kind does not shard.
    The contract has no ``save``/``load``. Checked by :class:`sage_core.testing.MemoryContract`,
    at 5,000 memories over ten sessions.
    """

    def store_memory(
        self,
        content: str,
        vector: np.ndarray | None = None,
        session_id: str = "default",
        memory_type: str = "conversation",
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Store one memory and return its new ``str`` id, embedding ``content`` when no
        ``vector`` is given. A non-``str`` content, or a vector of another dimension than the
        memory's or holding NaN, is a ``ValueError``."""

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
        """Up to ``top_k`` memories of ``session_id``, best first (``score`` never increases),
        each a memory dict with its ``score``.

        A memory is found first by its own content. ``memory_type`` keeps that type only;
        ``time_range`` ``(start, end)`` keeps ``start <= created_at <= end`` (inclusive; ``start >
        end`` is a ``ValueError``); ``hops > 0`` adds memories linked to the hits within that many
        links. ``top_k`` below 1 is a ``ValueError``. Deleted memories never come back.
        """

    def get(self, memory_id: str) -> dict[str, Any] | None:
        """One memory dict (without ``score``), or ``None`` for an unknown id."""

    def update(self, memory_id: str, content: str | None = None, metadata: Mapping[str, Any] | None = None) -> bool:
        """Change a memory's content (re-embedded, so retrieval finds it by the new content)
        and/or replace its metadata; ``updated_at`` moves on. Returns whether it existed."""

    def delete(self, memory_id: str) -> bool:
        """Remove a memory from ``get``, retrieval and its links; returns whether it existed."""

    def link(self, a: str, b: str, relation: str = "related") -> None:
        """Relate two memories of the same session; an unknown id is a ``ValueError``."""

    def neighbors(self, memory_id: str, hops: int = 1) -> list[str]:
        """Ids of memories linked to ``memory_id`` within ``hops`` links (either direction), nearest
        first; ``[]`` for a memory without links."""

    def list_sessions(self) -> list[str]:
        """Every session id with at least one memory, sorted."""

    def clear_session(self, session_id: str) -> int:
        """Delete every memory of a session; returns how many there were. The session then leaves
        :meth:`list_sessions`."""

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
