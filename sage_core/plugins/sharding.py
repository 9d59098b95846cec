"""How a kind's methods spread over shards, and how the shards' answers merge into one result.

A :class:`~sage_core.plugins.specs.ServiceKind` declares one :class:`ShardRule` per method that
can run on a service configured with ``shards: N``; the rules are built from the constructors of
this module, the same ones the built-in kinds use::

    from sage_core.plugins.sharding import broadcast, by_items, by_key, by_keys, fan_out, top_k, total

    ServiceKind("docs", DocStore, write_methods=("put", "put_many", "drop"), sharding={
        "put": by_key("doc_id"),                 # one shard, chosen by the key's hash
        "put_many": by_items("docs"),            # a mapping split by its keys' shards
        "get_many": by_keys("doc_ids"),          # a key list split; answers back in the caller's order
        "search": fan_out(top_k("limit")),       # every shard; the best ``limit`` of the union
        "count": fan_out(total),                 # every shard; the sum
        "drop": broadcast(),                     # every shard; the first shard's answer
    })

Routing: a key (a ``str``) lives on shard :func:`stable_shard` ``(key, N)``, the same in every
process. A call whose keys are not all strings goes whole to shard 0 (so non-string keys stay
together, and a backend that rejects them says so). Writes and reads follow the same rules; which
methods write is the kind's ``write_methods``. A method without a rule fails on a sharded service
with an error naming the kind, the method and the methods that shard; a kind without rules cannot
be configured with ``shards`` > 1.

A rule sees the call's arguments bound to the backend method's signature (defaults filled in), so
``by_key("key")`` finds ``key`` however the caller passed it. Each part goes to one shard's replicas
(reads to one replica, writes to all of them).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import operator
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

Merge = Callable[[list[Any], Mapping[str, Any]], Any]
"""``merge(answers, arguments)``: the shards' answers (in shard order) and the call's arguments -> the result."""


def stable_shard(key: str, shards: int) -> int:
    """The shard of ``key``: CRC-32 of its UTF-8 bytes modulo ``shards`` (same in every process)."""
    return zlib.crc32(key.encode("utf-8")) % shards


@dataclass(frozen=True)
class Part:
    """One piece of a sharded call: the shard it goes to and the arguments it carries.

    ``positions`` are the indices, in the caller's key list, of the keys this part carries (rules
    that split a key list set them to put the answers back in order); ``None`` for a whole call.
    """

    shard: int
    arguments: dict[str, Any]
    positions: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ShardRule:
    """How one method runs on a sharded service: ``split`` the call into parts, ``merge`` their answers.

    * ``split(arguments, shards)``: the call's bound arguments and the number of shards -> the
      :class:`Part` s to send (at least one).
    * ``merge(answers, parts, arguments)``: each part's answer, in the order of ``parts`` -> the
      caller's result.
    * ``assign_keys(arguments)`` (optional): on a service holding several copies of its data
      (replicas, shards or fallbacks), runs once before any copy sees the call and returns the
      arguments with the keys the caller left out filled in, so that every copy stores the same keys.

    The constructors of this module cover the built-in kinds; build a rule directly only for
    something else.
    """

    split: Callable[[Mapping[str, Any], int], list[Part]]
    merge: Callable[[list[Any], list[Part], Mapping[str, Any]], Any]
    assign_keys: Callable[[dict[str, Any]], dict[str, Any]] | None = None


# ---------------------------------------------------------------------- rules


def by_key(arg: str = "key") -> ShardRule:
    """Send the call to the shard of its key (the argument ``arg``); its answer is the result."""
    return ShardRule(functools.partial(_split_by_key, arg), _only_answer)


def by_keys(
    arg: str = "ids",
    *,
    aligned: Sequence[str] = (),
    merge: Merge | None = None,
    new_keys_for: str | None = None,
    row_ndim: int = 1,
) -> ShardRule:
    """Split the key list ``arg`` by shard; each shard gets its keys and their rows of ``aligned``.

    ``aligned`` names arguments with one row per key (a list, or an array along its first axis; a
    1-D array with a single key is that key's row). A single ``str`` key is a one-key list. The
    result is each key's answer at the key's position in the call (each shard answers a list, one
    entry per key it got), unless ``merge`` combines the shards' answers otherwise (e.g.
    :func:`total` for a count of deleted keys).

    ``new_keys_for``: when the caller gives no keys, one fresh key (``uuid4().hex``) per row of that
    argument is made before the call reaches any copy of the data, so replicas, shards and
    fallbacks all store the same keys (``add(vectors)`` of the vector store). ``row_ndim`` is the
    number of dimensions of one row (``np.ndim``): 1 for a vector (a 1-D array is one row, a matrix
    one per line), 0 for a string (a list of strings is one row per string).
    """
    return ShardRule(
        functools.partial(_split_by_keys, arg, tuple(aligned)),
        _in_caller_order if merge is None else functools.partial(_merge_answers, merge),
        None if new_keys_for is None else functools.partial(_assign_keys, arg, new_keys_for, row_ndim),
    )


def by_items(arg: str = "items", merge: Merge | None = None) -> ShardRule:
    """Split ``arg`` (a mapping, or ``(key, value)`` pairs) by the shard of each key.

    Each shard gets a ``dict`` of its items; the result is :func:`first` shard's answer unless
    ``merge`` says otherwise (e.g. :func:`total` for a count of items written).
    """
    return ShardRule(functools.partial(_split_by_items, arg), functools.partial(_merge_answers, merge or first))


def fan_out(merge: Merge) -> ShardRule:
    """Send the call to every shard; ``merge(answers, arguments)`` makes the result (e.g. :func:`top_k`)."""
    return ShardRule(_split_to_every_shard, functools.partial(_merge_answers, merge))


def broadcast() -> ShardRule:
    """Send the call to every shard (a write every shard must see); the result is shard 0's answer."""
    return fan_out(first)


def shard_files(arg: str = "path") -> ShardRule:
    """Send the call to every shard, each with its own file: ``PATH.shardI-of-N`` for the path ``arg``."""
    return ShardRule(functools.partial(_split_per_shard_file, arg), functools.partial(_merge_answers, first))


# ---------------------------------------------------------------------- merges


def first(answers: list[Any], arguments: Mapping[str, Any]) -> Any:
    """The first shard's answer (the others answered the same write)."""
    return answers[0]


def total(answers: list[Any], arguments: Mapping[str, Any]) -> Any:
    """The sum of the answers (counts)."""
    return sum(answers)


def concat(answers: list[Any], arguments: Mapping[str, Any]) -> list[Any]:
    """The answers' lists joined, in shard order."""
    return list(itertools.chain.from_iterable(answers))


def concat_sorted(answers: list[Any], arguments: Mapping[str, Any]) -> list[Any]:
    """The answers' lists joined and sorted (key listings)."""
    return sorted(itertools.chain.from_iterable(answers))


def top_k(
    k: str = "top_k",
    *,
    default: int = 10,
    score: Callable[[Any], Any] = operator.attrgetter("score"),
    queries: str | None = None,
    query_ndim: int = 1,
) -> Merge:
    """The ``k`` best hits of every shard's list together, by ``score(hit)``, highest first.

    ``k`` names the argument holding how many (``default`` when it is empty). ``queries`` names
    the argument holding the query when a call may carry several: a value with more than
    ``query_ndim`` dimensions (``np.ndim``; a matrix of vectors with the default 1, a list of
    strings with 0) is a batch, each shard answers one list per query, and the lists are merged
    row by row. Equal scores keep shard order: make ``score`` a total order (e.g. the score, then
    the id) where the result must not depend on how the data is sharded.
    """
    return functools.partial(_merge_top_k, k, default, score, queries, query_ndim)


# ---------------------------------------------------------------------- helpers


def _shard_of(key: Any, shards: int) -> int:
    return stable_shard(key, shards) if isinstance(key, str) else 0


def _split_by_key(arg: str, arguments: Mapping[str, Any], shards: int) -> list[Part]:
    return [Part(_shard_of(arguments.get(arg), shards), dict(arguments))]


def _split_by_keys(arg: str, aligned: tuple[str, ...], arguments: Mapping[str, Any], shards: int) -> list[Part]:
    keys = arguments.get(arg)
    call = dict(arguments)
    if isinstance(keys, (str, tuple, np.ndarray)):
        call[arg] = keys = [keys] if isinstance(keys, str) else list(keys)
    if not isinstance(keys, list) or not keys or not all(isinstance(key, str) for key in keys):
        return [Part(0, call)]
    positions: dict[int, list[int]] = {}
    for position, key in enumerate(keys):
        positions.setdefault(stable_shard(key, shards), []).append(position)
    rows = {name: call[name] for name in aligned if call.get(name) is not None}
    for name, value in rows.items():
        if len(keys) == 1 and isinstance(value, np.ndarray) and value.ndim == 1:
            rows[name] = value.reshape(1, -1)
    parts = []
    for shard, where in positions.items():
        sub = {**call, arg: [keys[p] for p in where]}
        for name, value in rows.items():
            sub[name] = value[where] if isinstance(value, np.ndarray) else [value[p] for p in where]
        parts.append(Part(shard, sub, tuple(where)))
    return parts


def _split_by_items(arg: str, arguments: Mapping[str, Any], shards: int) -> list[Part]:
    items = arguments.get(arg) or {}
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    if not pairs:
        return [Part(0, dict(arguments))]
    by_shard: dict[int, dict[Any, Any]] = {}
    for key, value in pairs:
        by_shard.setdefault(_shard_of(key, shards), {})[key] = value
    return [Part(shard, {**arguments, arg: part}) for shard, part in by_shard.items()]


def _split_to_every_shard(arguments: Mapping[str, Any], shards: int) -> list[Part]:
    return [Part(shard, dict(arguments)) for shard in range(shards)]


def _split_per_shard_file(arg: str, arguments: Mapping[str, Any], shards: int) -> list[Part]:
    return [Part(i, {**arguments, arg: f"{arguments[arg]}.shard{i}-of-{shards}"}) for i in range(shards)]


def _only_answer(answers: list[Any], parts: list[Part], arguments: Mapping[str, Any]) -> Any:
    return answers[0]


def _merge_answers(merge: Merge, answers: list[Any], parts: list[Part], arguments: Mapping[str, Any]) -> Any:
    return merge(answers, arguments)


def _in_caller_order(answers: list[Any], parts: list[Part], arguments: Mapping[str, Any]) -> Any:
    if parts[0].positions is None:  # the whole call went to one shard
        return answers[0]
    out: list[Any] = [None] * sum(len(part.positions or ()) for part in parts)
    for part, answer in zip(parts, answers):
        for position, value in zip(part.positions or (), answer):
            out[position] = value
    return out


def _assign_keys(arg: str, rows_arg: str, row_ndim: int, arguments: dict[str, Any]) -> dict[str, Any]:
    if arguments.get(arg) is not None:
        return arguments
    try:
        shape = np.shape(arguments.get(rows_arg))
    except ValueError:  # ragged rows: the backend reports them
        return arguments
    if len(shape) not in (row_ndim, row_ndim + 1):
        return arguments
    rows = 1 if len(shape) == row_ndim else shape[0]
    return {**arguments, arg: [uuid.uuid4().hex for _ in range(rows)]}


def _merge_top_k(
    k: str, default: int, score: Callable[[Any], Any], queries: str | None, query_ndim: int,
    answers: list[Any], arguments: Mapping[str, Any],
) -> list[Any]:
    count = int(arguments.get(k) or default)
    if queries is None or np.ndim(arguments.get(queries)) <= query_ndim:
        return heapq.nlargest(count, itertools.chain.from_iterable(answers), key=score)
    return [heapq.nlargest(count, itertools.chain.from_iterable(rows), key=score) for rows in zip(*answers)]


__all__ = [
    "Merge",
    "Part",
    "ShardRule",
    "broadcast",
    "by_items",
    "by_key",
    "by_keys",
    "concat",
    "concat_sorted",
    "fan_out",
    "first",
    "shard_files",
    "stable_shard",
    "top_k",
    "total",
]
