"""Reference answers for the vector-store suite: data, brute-force search and the filter's meaning."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

SCALE = 5_000
"""Vectors the scale checks store: enough for an index's graph or lists to have real structure."""

COLOURS = ("red", "green", "blue")


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` random L2-normalised float32 vectors (distinct, so no score ties)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def item_metadata(i: int) -> dict[str, Any]:
    """Metadata of item ``i``: a str, an int, a bool, a unique name, and a key only every 50th
    has (``1`` or ``None``, alternately)."""
    meta: dict[str, Any] = {"colour": COLOURS[i % 3], "group": i % 7, "even": i % 2 == 0, "name": f"n{i}"}
    if i % 50 == 0:
        meta["rare"] = 1 if i % 100 == 0 else None
    return meta


FILTER_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("equal str", {"colour": "red"}),
    ("equal int", {"group": 3}),
    ("equal bool", {"even": False}),
    ("equal, one match", {"name": "n4321"}),
    ("equal, no match", {"colour": "purple"}),
    ("one of two", {"group": [1, 5]}),
    ("one of three", {"group": [2, 4, 6]}),
    ("one of one", {"group": [3]}),
    ("one of, some absent", {"name": ["n7", "n4999", "missing"]}),
    ("one of none", {"group": []}),
    ("two keys (and)", {"colour": "blue", "even": True}),
    ("one of and equal", {"group": [0, 6], "colour": "green"}),
    ("key on some rows only", {"rare": 1}),
    ("None, key on some rows only", {"rare": None}),
    ("no keys", {}),
)
"""Every operator of the contract's ``MetadataFilter``: equality, a list meaning "one of", keys
ANDed, a missing key never matching (not even ``None``), and the empty filter matching everything."""


def matches(metadata: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """The contract's filter: every key present and equal (a list value: equal to one of its items)."""
    for key, wanted in filter.items():
        if key not in metadata:
            return False
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(metadata[key] == option for option in options):
            return False
    return True


def similarities(hits: Sequence[Any], query: np.ndarray, vectors: np.ndarray, row_of: Mapping[str, int], atol: float) -> np.ndarray:
    """The cosine similarity of each hit, checking its score is on a documented scale.

    A score is the similarity (metrics ``cosine`` and ``ip`` on unit vectors) or the negated squared
    distance (``l2``, which is ``2·similarity - 2`` on unit vectors); one result uses one scale.
    """
    unknown = [h.id for h in hits if h.id not in row_of]
    assert not unknown, f"search returned ids that were never stored or were deleted: {unknown[:5]}"
    truth = vectors[[row_of[h.id] for h in hits]] @ query
    scores = np.array([h.score for h in hits], dtype=np.float64)
    if np.allclose(scores, truth, atol=atol, rtol=0):
        return truth
    assert np.allclose(scores, 2 * truth - 2, atol=atol, rtol=0), (
        "scores are neither the similarity (cosine, ip) nor -distance² (l2) of the hit's vector: "
        f"first hits {[(h.id, round(float(h.score), 4)) for h in hits[:3]]}, similarities {np.round(truth[:3], 4).tolist()}"
    )
    return truth


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Row numbers of the exact top ``k`` by similarity, best first, one row per query."""
    candidates = np.arange(len(vectors)) if rows is None else rows
    scores = queries @ vectors[candidates].T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return candidates[order]


__all__ = ["FILTER_CASES", "SCALE", "brute_force", "item_metadata", "matches", "similarities", "unit_vectors"]
